"""The audit log as a transparency log: the Merkle tree's right border and the log's origin in
the head row, checkpoints as signed notes (one per commit that appends), witness cosignatures,
and personal data held beside the log (salted digests in the entries).

Revision ID: 0002_audit
Revises: 0001

A log that already holds entries was hashed without RFC 6962's leaf prefix and checkpointed
in the earlier format; it is refused with what to do (export it with the exdesk that wrote it).
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from store.migrate import SchemaError

revision = "0002_audit"
down_revision = "0001"
branch_labels = ("audit",)
depends_on = None

APPEND_ONLY = ("audit_checkpoints", "audit_cosignatures")


def _refuse_an_old_log() -> None:
    bind = op.get_bind()
    count = bind.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()
    if count:
        raise SchemaError(
            f"this database's audit log holds {count} entries written before exdesk kept a "
            "transparency log (their hashes and checkpoints are in the earlier format); export "
            "and verify them with the exdesk that wrote them (`exdesk audit export`, "
            "`exdesk audit verify-export`), keep that export with its public key, and start "
            "from a new data dir or database"
        )


def _append_only(name: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {name}_no_{verb.lower()} BEFORE {verb} ON {name} "
                f"BEGIN SELECT RAISE(ABORT, '{name} is append-only: {verb} is not allowed'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            f"CREATE OR REPLACE FUNCTION {name}_append_only() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING MESSAGE = "
            f"'{name} is append-only: ' || TG_OP || ' is not allowed'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {name}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON "
            f"{name} FOR EACH STATEMENT EXECUTE FUNCTION {name}_append_only()"
        )


def upgrade() -> None:
    _refuse_an_old_log()
    op.drop_table("audit_checkpoints")  # empty: the log is empty; its triggers go with it
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_checkpoints_size", "audit_checkpoints", ["size"])
    op.create_table(
        "audit_cosignatures",
        sa.Column("line_hash", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("witness", sa.String(200), nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_audit_cosignatures_size", "audit_cosignatures", ["size"])
    op.create_table(
        "audit_subjects",
        sa.Column("subject", sa.String(300), primary_key=True),
        sa.Column("salt", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_personal",
        sa.Column("ref", sa.String(80), primary_key=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_personal_subject", "audit_personal", ["subject"])
    op.add_column("audit_head", sa.Column("origin", sa.String(200)))
    op.add_column("audit_head", sa.Column("frontier", sa.Text))
    op.add_column("audit_head", sa.Column("log_key", sa.String(64)))
    origin = f"exdesk.local/audit/{secrets.token_hex(8)}"
    op.execute(
        sa.text("UPDATE audit_head SET origin = :origin, frontier = '' WHERE id = 1").bindparams(
            origin=origin
        )
    )
    for name in APPEND_ONLY:
        _append_only(name)


def downgrade() -> None:
    raise NotImplementedError("the transparency log is not downgraded: start a new database")
