"""The store's tables. Migrations (``store/migrations``) create them; this module describes them
for queries, and a test checks the two agree.

A world is rows: its facts (warehouses, catalog, rates, FX, replenishment, events, recent
orders), each loaded from a world file, and its stock, where ``on_hand`` and ``reserved`` come
from the file and ``held`` is what exdesk's own executed actions reserved (a reload never
touches it). Orders keep the body as submitted (its digest decides the version) and the body as
the desk changed it. Ids are at most ``MAX_ID`` characters on every database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect

from domain.models import MAX_ID

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, stored and read back in UTC with its offset on every database (SQLite keeps
    no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{value!r} has no offset; exdesk stores moments with one")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id(name: str, **kwargs: object) -> Column[str]:
    return Column(name, String(MAX_ID), **kwargs)  # type: ignore[arg-type]


worlds = Table(
    "worlds",
    metadata,
    _id("world_id", primary_key=True),
    Column("now", String(40), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # moved by every change to the world's facts or stock (store.world's snapshot)
    Column("revision", BigInteger, nullable=False, server_default="0"),
)

warehouses = Table(
    "warehouses",
    metadata,
    _id("world_id", primary_key=True),
    _id("warehouse_id", primary_key=True),
    Column("body", Text, nullable=False),
)

stock = Table(
    "stock",
    metadata,
    _id("world_id", primary_key=True),
    _id("warehouse_id", primary_key=True),
    _id("sku", primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("held", Integer, nullable=False),
)

replenishments = Table(
    "replenishments",
    metadata,
    _id("world_id", primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    _id("sku", nullable=False),
    Column("body", Text, nullable=False),
    Index("replenishments_sku", "world_id", "sku"),
)

catalog = Table(
    "catalog",
    metadata,
    _id("world_id", primary_key=True),
    _id("sku", primary_key=True),
    Column("body", Text, nullable=False),
)

shipping_rates = Table(
    "shipping_rates",
    metadata,
    _id("world_id", primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("country_code", String(2), nullable=False),
    Column("body", Text, nullable=False),
    Index("shipping_rates_country", "world_id", "country_code"),
)

fx_rates = Table(
    "fx_rates",
    metadata,
    _id("world_id", primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("rate", String(40), nullable=False),
)

events = Table(
    "events",
    metadata,
    _id("world_id", primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    _id("order_id", nullable=False),
    Column("body", Text, nullable=False),
    Index("events_order", "world_id", "order_id"),
)

recent_orders = Table(
    "recent_orders",
    metadata,
    _id("world_id", primary_key=True),
    _id("order_id", primary_key=True),
    _id("customer_id", nullable=False),
    Column("body", Text, nullable=False),
    Index("recent_orders_customer", "world_id", "customer_id"),
)

orders = Table(
    "orders",
    metadata,
    _id("world_id", primary_key=True),
    _id("order_id", primary_key=True),
    Column("version", Integer, nullable=False),
    Column("submitted_digest", String(64), nullable=False),
    Column("submitted", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _id("world_id", nullable=False),
    _id("order_id", nullable=False),
    Column("channel", String(50), nullable=False),
    Column("call_key", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Index("outbox_order", "world_id", "order_id"),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("key", String(200), primary_key=True),
    _id("world_id", nullable=False),
    Column("op", String(100), nullable=False),
    Column("result", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

proposals = Table(
    "proposals",
    metadata,
    Column("proposal_id", String(64), primary_key=True),
    _id("world_id", nullable=False),
    _id("order_id", nullable=False),
    Column("thread_id", Text, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("strategy", String(50), nullable=False),
    Column("tier", String(2), nullable=False),
    Column("plan", Text, nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("order_version", Integer, nullable=False),
    Column("policy_ref", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("detail", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # the review desk (migration 0002_review): when supervisors are told, when it expires
    Column("deadline", UtcDateTime()),
    Column("expires_at", UtcDateTime()),
    Column("escalated_at", UtcDateTime()),
    Column("earlier_plans", Text),  # JSON list of the digests an edit replaced
    Index("proposals_status", "status"),
    Index("proposals_order", "world_id", "order_id"),
    Index("proposals_deadline", "status", "deadline"),
)

votes = Table(
    "votes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("proposal_id", String(64), ForeignKey("proposals.proposal_id"), nullable=False),
    Column("person", String(MAX_ID), nullable=False),
    Column("by", String(MAX_ID), nullable=False),
    Column("role", String(20), nullable=False),
    Column("reason", Text),
    Column("decision", String(10), nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    UniqueConstraint("proposal_id", "person", name="one_vote_per_person"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person", String(MAX_ID), nullable=False),  # domain.approvals.person(name)
    Column("name", String(MAX_ID), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
    # who gave them their role, and when (migration 0004_trust): none for the first supervisor
    Column("added_by", String(MAX_ID)),
    Column("added_at", UtcDateTime()),
    Index(
        "users_active_person",
        "person",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

# --- the model in the loop (migration 0003_model, contract §8) ------------------------------

hold_dates = Table(
    "hold_dates",
    metadata,
    _id("world_id", primary_key=True),
    _id("order_id", primary_key=True),
    Column("kind", String(50), primary_key=True),
    Column("until", String(10), nullable=False),  # YYYY-MM-DD
    Column("release_at", UtcDateTime(), nullable=False),
    Column("plan_key", String(64), nullable=False),
    Column("released_at", UtcDateTime()),
    Column("detail", Text),
    Index("hold_dates_due", "released_at", "release_at"),
)

replies = Table(
    "replies",
    metadata,
    Column("reply_id", String(64), primary_key=True),
    _id("world_id", nullable=False),
    _id("order_id", nullable=False),
    Column("text", Text, nullable=False),
    Column("received_by", String(MAX_ID), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("intent", String(30)),
    Column("quote", Text),
    Column("outcome", String(30), nullable=False),
    Column("detail", Text),
    Column("proposed_address", Text),  # JSON: the address asked about again, if any
    Index("replies_order", "world_id", "order_id"),
)

model_words = Table(
    "model_words",
    metadata,
    Column("key", String(64), primary_key=True),  # digest of purpose, subject, plan, language
    Column("purpose", String(30), nullable=False),
    Column("subject", String(MAX_ID), nullable=False),
    Column("language", String(10), nullable=False),
    Column("by", String(MAX_ID), nullable=False),  # "model:<name>" or "template"
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Orders from a stream: per order, the stream position of the newest event submitted, so an
# older event delivered late (another worker held it, or it was redelivered after a crash) is
# never submitted over a newer one.
stream_positions = Table(
    "stream_positions",
    metadata,
    Column("stream", String(64), primary_key=True),
    _id("world_id", primary_key=True),
    _id("order_id", primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# --- events out (migration 0004_events) -------------------------------------------------------

events_outbox = Table(
    "events_outbox",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),  # audit seq
    Column("type", String(50), nullable=False),
    _id("subject", nullable=False),  # the order id
    Column("body", Text, nullable=False),  # the CloudEvent, JSON
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", UtcDateTime()),  # not tried again before this moment (after a failure)
    Column("claimed_by", String(64)),  # the relay publishing it now ...
    Column("claimed_until", UtcDateTime()),  # ... until its claim runs out
    Column("last_error", Text),
    Index("events_outbox_seq", "seq"),
    Index(
        "events_outbox_pending",
        "seq",
        sqlite_where=text("sent_at IS NULL"),
        postgresql_where=text("sent_at IS NULL"),
    ),
)

# --- policy versions (migration 0005_policy) --------------------------------------------------

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3, ...
    Column("label", String(200), nullable=False),  # the policy's own `version`
    Column("digest", String(64), nullable=False, unique=True),
    Column("content", Text, nullable=False),  # the TOML text, as imported
    Column("author", String(MAX_ID), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("comment", Text),
)

# Which version is active, and which candidate runs beside it: the newest row is in force.
policy_states = Table(
    "policy_states",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("active", Integer, ForeignKey("policy_versions.id"), nullable=False),
    Column("activated_seq", Integer, nullable=False),  # the row that made `active` active
    Column("restores_seq", Integer),  # the row a rollback goes back to
    Column("candidate", Integer, ForeignKey("policy_versions.id")),
    Column("mode", String(10)),  # "shadow" or "rollout"
    Column("percent", Integer),  # a rollout's share of orders
    Column("action", String(20), nullable=False),
    Column("by", String(MAX_ID), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("comment", Text),
)
