"""Policy versions in the store: immutable versions (content, digest, author, time, comment),
and the history of which one is active (and which candidate runs beside it, in shadow or for a
share of the orders). The newest row of ``policy_states`` is the state in force; its ``seq``
is the counter processes check to see that it changed.

Revision ID: 0005_policy
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_policy"
down_revision = "0001"
branch_labels = ("policy",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text),
    )
    op.create_table(
        "policy_states",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("active", sa.Integer, sa.ForeignKey("policy_versions.id"), nullable=False),
        sa.Column("activated_seq", sa.Integer, nullable=False),
        sa.Column("restores_seq", sa.Integer),
        sa.Column("candidate", sa.Integer, sa.ForeignKey("policy_versions.id")),
        sa.Column("mode", sa.String(10)),
        sa.Column("percent", sa.Integer),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text),
    )


def downgrade() -> None:
    raise NotImplementedError("start a new database")
