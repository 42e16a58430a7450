"""The statements an append runs, built once per log with bound parameters, so each commit
reuses compiled SQL instead of building it again (most of an append's cost otherwise)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Insert, Select, Table, Update, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from audit.schema import HEAD_ID, AuditTables


@dataclass(frozen=True)
class Statements:
    lock_head: Update
    by_keys: Select[tuple[object, ...]]
    insert_entries: Insert
    insert_checkpoint: Insert
    move_head: Update
    salts_of: Select[tuple[object, ...]]
    insert_subject: Insert
    insert_personal: Insert


def build_statements(t: AuditTables, dialect: str) -> Statements:
    hd, log = t.head, t.log
    return Statements(
        lock_head=update(hd)
        .where(hd.c.id == HEAD_ID)
        .values(seq=hd.c.seq)
        .returning(hd.c.seq, hd.c.hash, hd.c.origin, hd.c.frontier, hd.c.log_key),
        by_keys=select(log).where(log.c.idem_key.in_(bindparam("b_keys", expanding=True))),
        insert_entries=insert(log),
        insert_checkpoint=insert(t.checkpoints),
        move_head=update(hd)
        .where(hd.c.id == HEAD_ID)
        .values(
            seq=bindparam("b_seq"),
            hash=bindparam("b_hash"),
            frontier=bindparam("b_frontier"),
            log_key=bindparam("b_key"),
        ),
        # FOR SHARE (PostgreSQL): an erasure waits until the entries that use a salt commit
        salts_of=select(t.subjects.c.subject, t.subjects.c.salt)
        .where(t.subjects.c.subject.in_(bindparam("b_subjects", expanding=True)))
        .with_for_update(read=True),
        insert_subject=_insert_new(t.subjects, "subject", dialect).returning(t.subjects.c.subject),
        insert_personal=_insert_new(t.personal, "ref", dialect),
    )


def _insert_new(table: Table, key: str, dialect: str) -> Insert:
    """Insert rows, skipping those whose ``key`` is already held (one statement)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    return insert(table).prefix_with("IGNORE")  # pragma: no cover - MySQL-like dialects
