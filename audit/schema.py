"""The audit log's tables, on their own ``MetaData``, as the store's migrations create them
(``0001`` and ``0002_audit``).

``audit_log`` holds the entries; ``audit_head`` one row (id 1): the count, the last hash, the
Merkle tree's right border (``frontier``), the log's origin and the key that signs it now;
every append updates it first, so appends serialize on it. ``audit_checkpoints`` holds one
signed note per commit that appended; ``audit_cosignatures`` the witnesses' cosignatures.
``audit_subjects`` and ``audit_personal`` hold the salts and clear values of personal data
that entries carry only as salted digests; they are the only audit tables rows leave (an
erasure). On SQLite and PostgreSQL, triggers refuse UPDATE and DELETE (and, on PostgreSQL,
TRUNCATE) of entries, checkpoints and cosignatures: a mistake cannot rewrite history, and
someone who drops the triggers first is caught by verification.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

HEAD_ID = 1
APPEND_ONLY = ("audit_log", "audit_checkpoints", "audit_cosignatures")


@dataclass(frozen=True)
class AuditTables:
    """The audit log's tables, bound to one ``MetaData``."""

    metadata: MetaData
    log: Table
    head: Table
    checkpoints: Table
    cosignatures: Table
    subjects: Table
    personal: Table


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
        Column("origin", String(200)),
        Column("frontier", Text),
        Column("log_key", String(64)),
    )
    checkpoints = Table(
        "audit_checkpoints",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("size", BigInteger, nullable=False, index=True),
        Column("root", String(64), nullable=False),
        Column("at", String(40), nullable=False),
        Column("note", Text, nullable=False),
    )
    cosignatures = Table(
        "audit_cosignatures",
        metadata,
        Column("line_hash", String(64), primary_key=True),
        Column("size", BigInteger, nullable=False, index=True),
        Column("root", String(64), nullable=False),
        Column("witness", String(200), nullable=False),
        Column("line", Text, nullable=False),
        Column("at", String(40), nullable=False),
    )
    subjects = Table(
        "audit_subjects",
        metadata,
        Column("subject", String(300), primary_key=True),
        Column("salt", String(64), nullable=False),
    )
    personal = Table(
        "audit_personal",
        metadata,
        Column("ref", String(80), primary_key=True),
        Column("subject", String(300), nullable=False, index=True),
        Column("value", Text, nullable=False),
    )
    return AuditTables(
        metadata=metadata,
        log=log,
        head=head,
        checkpoints=checkpoints,
        cosignatures=cosignatures,
        subjects=subjects,
        personal=personal,
    )


def trigger_names(dialect: str) -> list[tuple[str, str]]:
    """(table, trigger) pairs the migrations create on ``dialect``; for operators and tests."""
    if dialect == "sqlite":
        return [(t, f"{t}_no_{op}") for t in APPEND_ONLY for op in ("update", "delete")]
    if dialect == "postgresql":
        return [(t, f"{t}_append_only") for t in APPEND_ONLY]
    return []
