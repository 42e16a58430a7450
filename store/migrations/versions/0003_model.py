"""The model in the loop (contract §8): holds until a date (released by the sweep), customers'
replies, and words a model wrote for people (cached per subject and plan digest).

Revision ID: 0003_model
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_model"
down_revision = "0001"
branch_labels = ("model",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hold_dates",
        sa.Column("world_id", sa.String(200), primary_key=True),
        sa.Column("order_id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(50), primary_key=True),
        sa.Column("until", sa.String(10), nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan_key", sa.String(64), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("hold_dates_due", "hold_dates", ["released_at", "release_at"])
    op.create_table(
        "replies",
        sa.Column("reply_id", sa.String(64), primary_key=True),
        sa.Column("world_id", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("received_by", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("intent", sa.String(30)),
        sa.Column("quote", sa.Text),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("proposed_address", sa.Text),
    )
    op.create_index("replies_order", "replies", ["world_id", "order_id"])
    op.create_table(
        "model_words",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(30), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("language", sa.String(10), nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("start a new database")
