"""The audit log's tables, on their own ``MetaData``, and the triggers that keep them append-only.

``audit_log`` holds the entries; ``audit_head`` one row (id 1) with the count and the last
hash, which every append updates first so that appends serialize on it; ``audit_checkpoints``
the signed checkpoints. On SQLite and PostgreSQL, triggers refuse UPDATE and DELETE (and, on
PostgreSQL, TRUNCATE) of entries and checkpoints: a mistake cannot rewrite history, and someone
who drops the triggers first is caught by verification.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    exc,
    func,
    insert,
    select,
)

from audit.models import GENESIS_HASH

HEAD_ID = 1
_APPEND_ONLY = ("audit_log", "audit_checkpoints")


@dataclass(frozen=True)
class AuditTables:
    """The audit log's tables, bound to one ``MetaData``."""

    metadata: MetaData
    log: Table
    head: Table
    checkpoints: Table


def build_tables() -> AuditTables:
    """Fresh table definitions (each ``AuditLog`` has its own, no shared module state)."""
    metadata = MetaData()
    log = Table(
        "audit_log",
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("at", String(40), nullable=False),
        Column("actor", Text, nullable=False),
        Column("event", Text, nullable=False),
        Column("payload", Text, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
    )
    head = Table(
        "audit_head",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("seq", BigInteger, nullable=False),
        Column("hash", String(64), nullable=False),
    )
    checkpoints = Table(
        "audit_checkpoints",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("seq", BigInteger, nullable=False, index=True),
        Column("head", String(64), nullable=False),
        Column("at", String(40), nullable=False),
        Column("signature", String(128), nullable=False),
    )
    for table in (log, checkpoints):
        _add_append_only_triggers(table)
    return AuditTables(metadata=metadata, log=log, head=head, checkpoints=checkpoints)


def create_schema(engine: Engine, tables: AuditTables) -> None:
    """Create the tables (and triggers) that are missing and the head row of an empty log."""
    try:
        tables.metadata.create_all(engine, checkfirst=True)
    except exc.DBAPIError:
        # Another process created them between our check and our CREATE; check again.
        tables.metadata.create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        has_head = conn.execute(select(func.count()).select_from(tables.head)).scalar_one()
        has_entries = conn.execute(select(tables.log.c.seq).limit(1)).first() is not None
    if has_head or has_entries:
        return  # a log with entries but no head row is not patched over: verify reports it
    try:
        with engine.begin() as conn:
            conn.execute(insert(tables.head).values(id=HEAD_ID, seq=0, hash=GENESIS_HASH))
    except exc.IntegrityError:
        pass  # another process inserted it first


def _add_append_only_triggers(table: Table) -> None:
    name = table.name
    for op in ("UPDATE", "DELETE"):
        event.listen(
            table,
            "after_create",
            DDL(
                f"CREATE TRIGGER {name}_no_{op.lower()} BEFORE {op} ON {name} "
                f"BEGIN SELECT RAISE(ABORT, '{name} is append-only: {op} is not allowed'); END"
            ).execute_if(dialect="sqlite"),
        )
    event.listen(
        table,
        "after_create",
        DDL(
            f"CREATE OR REPLACE FUNCTION {name}_append_only() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION USING MESSAGE = '{name} is append-only: ' || TG_OP "
            "|| ' is not allowed'; END $$"
        ).execute_if(dialect="postgresql"),
    )
    event.listen(
        table,
        "after_create",
        DDL(
            f"CREATE TRIGGER {name}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {name} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_append_only()"
        ).execute_if(dialect="postgresql"),
    )


def trigger_names(dialect: str) -> list[tuple[str, str]]:
    """(table, trigger) pairs this module creates on ``dialect``; for operators and tests."""
    if dialect == "sqlite":
        return [(t, f"{t}_no_{op}") for t in _APPEND_ONLY for op in ("update", "delete")]
    if dialect == "postgresql":
        return [(t, f"{t}_append_only") for t in _APPEND_ONLY]
    return []
