"""Engine and schema. SQLite under the data dir by default; any SQLAlchemy URL otherwise."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)

metadata = MetaData()

worlds = Table(
    "worlds",
    metadata,
    Column("world_id", String(200), primary_key=True),
    Column("body", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("world_id", String(200), primary_key=True),
    Column("order_id", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("thread_id", String(300)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("world_id", String(200), nullable=False, index=True),
    Column("order_id", String(200), nullable=False),
    Column("channel", String(50), nullable=False),
    Column("body", Text, nullable=False),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("world_id", String(200), nullable=False, index=True),
    Column("result", Text, nullable=False),
)

proposals = Table(
    "proposals",
    metadata,
    Column("proposal_id", String(64), primary_key=True),
    Column("world_id", String(200), nullable=False, index=True),
    Column("order_id", String(200), nullable=False),
    Column("thread_id", String(300), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("strategy", String(50), nullable=False),
    Column("tier", String(2), nullable=False),
    Column("plan", Text, nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("order_version", Integer, nullable=False),
    Column("policy_ref", String(200), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("detail", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("proposal_id", String(64), ForeignKey("proposals.proposal_id"), nullable=False),
    Column("by", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("reason", Text),
    Column("decision", String(10), nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("proposal_id", "by", name="one_vote_per_person"),
)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'exdesk.db'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)


@contextmanager
def scratch_schema(url: str, prefix: str = "exdesk_scratch") -> Iterator[str]:
    """A new, empty PostgreSQL schema for tests and benchmarks, dropped afterwards.

    Yields its name; ``in_schema(url, name)`` gives a URL whose connections use it.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield schema
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def in_schema(url: str, schema: str) -> str:
    """``url`` with connections set to use ``schema`` first (PostgreSQL)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"
