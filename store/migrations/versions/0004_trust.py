"""Who gave each person their role, and when: the supervisor who added them (or none, for the
first supervisor, added without a token), shown beside every approval.

Revision ID: 0004_trust
Revises: 0002_review (the users table is made there: this branch grows from it)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_trust"
down_revision = "0002_review"
branch_labels = ("trust",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("added_by", sa.String(200)))
        batch.add_column(sa.Column("added_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    raise NotImplementedError("start a new database")
