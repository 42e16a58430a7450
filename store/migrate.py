"""Bring a database to the current schema with Alembic, under a lock.

Every process calls :func:`upgrade` at start. The first one to take the lock migrates; the
others wait and then find nothing to do, so processes starting together on a new data dir or
database never race on ``CREATE TABLE``. The lock is a PostgreSQL advisory lock, or a lock file
beside the SQLite database; either goes away with the process that held it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock, Timeout
from sqlalchemy import Engine, inspect

from domain.errors import ExdeskError
from store.db import sqlite_path, transaction
from store.locks import pg_advisory_lock

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK_TIMEOUT_S = 120.0


class SchemaError(ExdeskError):
    """The database cannot be brought to this version's schema."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revisions() -> set[str]:
    """The newest revision of every branch. Parts of exdesk may add their tables on branches
    of their own from the first schema; a database is current when it is at all of them."""
    return set(ScriptDirectory.from_config(_config()).get_heads())


@contextmanager
def schema_lock(engine: Engine, *, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Held by one process at a time, across every process using ``engine``'s database."""
    path = sqlite_path(engine)
    if engine.dialect.name == "postgresql":
        busy = SchemaError(
            f"another exdesk process held the schema lock for {timeout:.0f} s; check for a "
            "stuck process and run again"
        )
        with pg_advisory_lock(engine, "exdesk schema", timeout=timeout, busy=busy):
            yield
    elif path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(path) + ".schema.lock", timeout=timeout):
                yield
        except Timeout as exc:
            raise SchemaError(
                f"{path}: another exdesk process held the schema lock for {timeout:.0f} s; "
                "check for a stuck process and run again"
            ) from exc
    else:
        yield


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest schema (a no-op when it is there already)."""
    with schema_lock(engine):
        if current_revisions(engine) == head_revisions():
            return
        with transaction(engine) as conn:
            names = set(inspect(conn).get_table_names())
            if "alembic_version" not in names and {"orders", "audit_log"} & names:
                raise SchemaError(
                    f"{engine.url.render_as_string(hide_password=True)} holds tables of an "
                    "exdesk made before schema migrations; export its audit log "
                    "(`exdesk audit export`) and start from a new data dir or database"
                )
            config = _config()
            config.attributes["connection"] = conn
            command.upgrade(config, "heads")
