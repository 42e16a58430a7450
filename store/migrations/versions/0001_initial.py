"""The first schema: worlds as rows, orders as submitted and as changed, the outbox, tool calls,
the review queue, and the append-only audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 200
GENESIS_HASH = "0" * 64
APPEND_ONLY = ("audit_log", "audit_checkpoints")


def _id(name: str, **kwargs: object) -> sa.Column[str]:
    return sa.Column(name, sa.String(ID), **kwargs)  # type: ignore[arg-type]


def _world_tables() -> None:
    op.create_table(
        "worlds",
        _id("world_id", primary_key=True),
        sa.Column("now", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "warehouses",
        _id("world_id", primary_key=True),
        _id("warehouse_id", primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "stock",
        _id("world_id", primary_key=True),
        _id("warehouse_id", primary_key=True),
        _id("sku", primary_key=True),
        sa.Column("on_hand", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.Column("held", sa.Integer, nullable=False),
    )
    op.create_table(
        "replenishments",
        _id("world_id", primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        _id("sku", nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("replenishments_sku", "replenishments", ["world_id", "sku"])
    op.create_table(
        "catalog",
        _id("world_id", primary_key=True),
        _id("sku", primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "shipping_rates",
        _id("world_id", primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("country_code", sa.String(2), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("shipping_rates_country", "shipping_rates", ["world_id", "country_code"])
    op.create_table(
        "fx_rates",
        _id("world_id", primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("rate", sa.String(40), nullable=False),
    )
    op.create_table(
        "events",
        _id("world_id", primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        _id("order_id", nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("events_order", "events", ["world_id", "order_id"])
    op.create_table(
        "recent_orders",
        _id("world_id", primary_key=True),
        _id("order_id", primary_key=True),
        _id("customer_id", nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("recent_orders_customer", "recent_orders", ["world_id", "customer_id"])


def _desk_tables() -> None:
    op.create_table(
        "orders",
        _id("world_id", primary_key=True),
        _id("order_id", primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("submitted_digest", sa.String(64), nullable=False),
        sa.Column("submitted", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _id("world_id", nullable=False),
        _id("order_id", nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("call_key", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("outbox_order", "outbox", ["world_id", "order_id"])
    op.create_table(
        "tool_calls",
        sa.Column("key", sa.String(200), primary_key=True),
        _id("world_id", nullable=False),
        sa.Column("op", sa.String(100), nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "proposals",
        sa.Column("proposal_id", sa.String(64), primary_key=True),
        _id("world_id", nullable=False),
        _id("order_id", nullable=False),
        sa.Column("thread_id", sa.Text, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("strategy", sa.String(50), nullable=False),
        sa.Column("tier", sa.String(2), nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("plan_digest", sa.String(64), nullable=False),
        sa.Column("order_version", sa.Integer, nullable=False),
        sa.Column("policy_ref", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("proposals_status", "proposals", ["status"])
    op.create_index("proposals_order", "proposals", ["world_id", "order_id"])
    op.create_table(
        "votes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column(
            "proposal_id", sa.String(64), sa.ForeignKey("proposals.proposal_id"), nullable=False
        ),
        sa.Column("person", sa.String(ID), nullable=False),
        sa.Column("by", sa.String(ID), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("plan_digest", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("proposal_id", "person", name="one_vote_per_person"),
    )


def _audit_tables() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("idem_key", sa.String(300), unique=True),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_checkpoints_seq", "audit_checkpoints", ["seq"])
    op.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis)").bindparams(
            genesis=GENESIS_HASH
        )
    )
    dialect = op.get_bind().dialect.name
    for name in APPEND_ONLY:
        if dialect == "sqlite":
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {name}_no_{verb.lower()} BEFORE {verb} ON {name} "
                    f"BEGIN SELECT RAISE(ABORT, '{name} is append-only: {verb} is not allowed'); "
                    "END"
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
    _world_tables()
    _desk_tables()
    _audit_tables()


def downgrade() -> None:
    raise NotImplementedError("exdesk's first schema is not downgraded: start a new database")
