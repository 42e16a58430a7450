"""The audit log's tables, on their own ``MetaData``, as the store's migrations create them.

``audit_log`` holds the entries; ``audit_head`` one row (id 1) with the count and the last
hash, which every append updates first so that appends serialize on it; ``audit_checkpoints``
the signed checkpoints. On SQLite and PostgreSQL, triggers (made by the migration) refuse
UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) of entries and checkpoints: a mistake cannot
rewrite history, and someone who drops the triggers first is caught by verification.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

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
        # An idempotency key: an entry written again (a node run again after a crash, a file
        # run again) is found by it instead of appended twice. Not part of the hash.
        Column("idem_key", String(300), unique=True),
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
    return AuditTables(metadata=metadata, log=log, head=head, checkpoints=checkpoints)


def trigger_names(dialect: str) -> list[tuple[str, str]]:
    """(table, trigger) pairs the migration creates on ``dialect``; for operators and tests."""
    if dialect == "sqlite":
        return [(t, f"{t}_no_{op}") for t in _APPEND_ONLY for op in ("update", "delete")]
    if dialect == "postgresql":
        return [(t, f"{t}_append_only") for t in _APPEND_ONLY]
    return []
