"""The review desk: people with roles and API tokens (hashed), and deadlines on proposals.

Revision ID: 0002_review
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_review"
down_revision = "0001"
branch_labels = ("review",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    # one active user per person; revoked ones stay, for the record
    op.create_index(
        "users_active_person",
        "users",
        ["person"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.add_column("proposals", sa.Column("deadline", sa.DateTime(timezone=True)))
    op.add_column("proposals", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("proposals", sa.Column("escalated_at", sa.DateTime(timezone=True)))
    # digests of the plans an edit replaced, JSON: a vote for one of them is stale, not wrong
    op.add_column("proposals", sa.Column("earlier_plans", sa.Text))
    op.create_index("proposals_deadline", "proposals", ["status", "deadline"])


def downgrade() -> None:
    raise NotImplementedError("start a new database")
