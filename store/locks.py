"""Named locks shared by every process on one database, freed when their holder dies.

One order is handled by one process at a time: two ``exdesk run`` processes given the same
order, or two approvers whose votes complete a proposal at the same moment, take turns. On
PostgreSQL the lock is a session advisory lock; on SQLite a lock file beside the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout
from sqlalchemy import Engine, exc, text

from domain.errors import ExdeskError
from store.db import sqlite_path

DEFAULT_TIMEOUT_S = 120.0


class LockTimeout(ExdeskError):
    """Another process held a lock for longer than we would wait."""


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def named_lock(engine: Engine, name: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    busy = LockTimeout(
        f"another exdesk process has been working on {name} for {timeout:.0f} s; "
        "try again when it is done"
    )
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text(f"SET lock_timeout = '{int(timeout * 1000)}ms'"))
            try:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _key(name)})
            except exc.OperationalError as error:
                raise busy from error
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                conn.commit()
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
