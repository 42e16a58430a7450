"""Fixtures for the audit tests: an engine on SQLite and on PostgreSQL, and a way to tamper.

The PostgreSQL variant needs ``EXDESK_TEST_DATABASE_URL`` (for instance
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets a fresh schema there,
dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from audit.keys import StaticKey
from audit.log import AuditLog
from audit.schema import trigger_names
from store.db import in_schema, make_engine, scratch_schema
from store.migrate import upgrade

PG_URL_ENV = "EXDESK_TEST_DATABASE_URL"


@dataclass(frozen=True)
class Database:
    """How to reach the test database, so other processes can open their own engine."""

    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)

    def engine(self) -> Engine:
        return make_engine(self.url, connect_args=self.connect_args)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database(f"sqlite:///{tmp_path / 'audit.db'}")
        return
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"{PG_URL_ENV} is unset; set it to a PostgreSQL URL to run this variant")
    with scratch_schema(url, "audit_test") as schema:
        yield Database(in_schema(url, schema))


@pytest.fixture
def engine(database: Database) -> Iterator[Engine]:
    engine = database.engine()
    yield engine
    engine.dispose()


class StepClock:
    """A clock that moves one millisecond per reading."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log(engine: Engine, signing_key: Ed25519PrivateKey) -> AuditLog:
    audit_log = AuditLog(engine, signer=StaticKey(signing_key), clock=StepClock())
    upgrade(engine)
    return audit_log


Tamper = Callable[..., None]


@pytest.fixture
def tamper(engine: Engine) -> Tamper:
    """Run SQL as someone with write access who first drops the append-only triggers."""

    def run(sql: str, **params: Any) -> None:
        with engine.begin() as conn:
            for table, trigger in trigger_names(engine.dialect.name):
                on = f" ON {table}" if engine.dialect.name == "postgresql" else ""
                conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger}{on}"))
            conn.execute(text(sql), params)

    return run


def fill(log: AuditLog, count: int, *, batch: int = 1) -> None:
    """Append ``count`` entries with small, varied payloads."""
    items = [
        ("agent", "finding.detected", {"order_id": f"o-{n}", "n": n, "total": n * 1.25})
        for n in range(1, count + 1)
    ]
    for start in range(0, count, batch):
        log.append_many(items[start : start + batch])
