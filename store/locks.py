"""Named locks shared by every process on one database, freed when their holder dies.

One order is handled by one process at a time: two ``exdesk run`` processes given the same
order, or two approvers whose votes complete a proposal at the same moment, take turns. On
PostgreSQL the lock is a session advisory lock; on SQLite a lock file beside the database.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text

from domain.errors import ExdeskError
from store.db import sqlite_path

DEFAULT_TIMEOUT_S = 120.0


class LockTimeout(ExdeskError):
    """Another process held a lock for longer than we would wait."""


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def pg_advisory_lock(
    engine: Engine, name: str, *, timeout: float, busy: Exception
) -> Iterator[None]:
    """A PostgreSQL session advisory lock, taken by polling ``pg_try_advisory_lock`` outside
    any transaction. A waiter blocked inside a statement would hold a snapshot, and
    ``CREATE INDEX CONCURRENTLY`` (the graph checkpointer's migrations) waits for every older
    snapshot: the holder would wait for the waiters. The lock's key is made of ``name`` and
    the schema in use, so installations in other schemas of the database do not share it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        key = _key(f"{schema}/{name}")
        deadline = time.monotonic() + timeout
        pause = 0.01
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            if time.monotonic() > deadline:
                raise busy
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@contextmanager
def named_lock(engine: Engine, name: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    busy = LockTimeout(
        f"another exdesk process has been working on {name} for {timeout:.0f} s; "
        "try again when it is done"
    )
    if engine.dialect.name == "postgresql":
        with pg_advisory_lock(engine, name, timeout=timeout, busy=busy):
            yield
        return
    path = sqlite_path(engine)
    if path is None:
        yield
        return
    folder = path.with_name(path.name + ".locks")
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    try:
        with FileLock(str(folder / f"{digest}.lock"), timeout=timeout):
            yield
    except Timeout as error:
        raise busy from error
