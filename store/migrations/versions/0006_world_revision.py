"""A world's revision: a counter every change to its facts or stock moves (a load, a hold of
stock, a release), so that a process holding the world in memory (``store.world``'s snapshot)
knows with one small query whether to read it again.

Revision ID: 0006_world_revision
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_world_revision"
down_revision = "0001"
branch_labels = ("world_revision",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worlds") as batch:
        batch.add_column(sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    raise NotImplementedError("start a new database")
