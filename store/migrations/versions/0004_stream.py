"""Orders from a stream: the stream position of each order's newest submitted event.

Revision ID: 0004_stream
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_stream"
down_revision = "0001"
branch_labels = ("stream",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_positions",
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("world_id", sa.String(200), primary_key=True),
        sa.Column("order_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("start a new database")
