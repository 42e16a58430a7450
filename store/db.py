"""Engines and transactions. SQLite under the data dir by default; PostgreSQL by URL.

Writes go through :func:`transaction`: on SQLite it begins ``IMMEDIATE`` (the write lock is
taken at the start, so two processes never deadlock upgrading a read to a write; the busy
timeout makes the second wait), on PostgreSQL a plain READ COMMITTED transaction whose
conditional updates and row locks do the rest. Reads use ``engine.connect()``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc, text

_T = TypeVar("_T")
_WRITE = "exdesk_write"
_LOCK_SQLSTATES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock n/a
_ATTEMPTS = 6
_BACKOFF_S = 0.05


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'exdesk.db'}"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is off: SQLAlchemy's begin event emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine (None for PostgreSQL or in-memory SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(database)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed when the block ends, rolled back if it raises."""
    with engine.execution_options(**{_WRITE: True}).begin() as conn:
        yield conn


def is_lock_conflict(error: BaseException) -> bool:
    """A lock wait that ran out (SQLite busy) or a conflict PostgreSQL asks to retry."""
    if not isinstance(error, exc.DBAPIError):
        return False
    if getattr(error.orig, "sqlstate", None) in _LOCK_SQLSTATES:
        return True
    return isinstance(error, exc.OperationalError) and "database is locked" in str(error.orig)


def write(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    """Run ``work`` in a write transaction, again from the start after a lock conflict.

    ``work`` must do nothing outside the database: a retry runs all of it again.
    """
    attempt = 1
    while True:
        try:
            with transaction(engine) as conn:
                return work(conn)
        except exc.DBAPIError as error:
            if attempt >= _ATTEMPTS or not is_lock_conflict(error):
                raise
        time.sleep(_BACKOFF_S * attempt)  # rolled back: nothing was written
        attempt += 1


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
