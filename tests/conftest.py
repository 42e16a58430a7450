"""Shared fixtures: databases (SQLite always, PostgreSQL when EXDESK_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from store.db import make_engine

PG_ENV = "EXDESK_TEST_DATABASE_URL"


def pytest_report_header() -> str:
    if os.environ.get(PG_ENV):
        return f"PostgreSQL tests: on ({PG_ENV} is set)"
    return f"PostgreSQL tests: SKIPPED ({PG_ENV} is unset)"


def _pg_engine() -> Iterator[Engine]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
    schema = f"exdesk_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """An empty database: a SQLite file, and PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "exdesk.db"
        engine = make_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
    else:
        yield from _pg_engine()
