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
        sa.Column("person", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.add_column("proposals", sa.Column("deadline", sa.DateTime(timezone=True)))
    op.add_column("proposals", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("proposals", sa.Column("escalated_at", sa.DateTime(timezone=True)))
    op.create_index("proposals_deadline", "proposals", ["status", "deadline"])


def downgrade() -> None:
    raise NotImplementedError("start a new database")
