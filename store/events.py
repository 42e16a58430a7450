"""The transactional outbox of events out (``events_outbox``).

Rows are added inside the transaction of the audit entry they describe (``Outbox.add`` takes
the caller's connection), so an event exists exactly when its entry does. A relay claims due
rows for a while (a lease: ``claimed_by``/``claimed_until``; on PostgreSQL the claim skips
rows another relay is claiming, ``FOR UPDATE SKIP LOCKED``), publishes them outside any
transaction, then marks them sent. A relay that dies before marking leaves its claim to run
out; another relay (or the same one, run again) publishes those rows again, with the same
event ids: at least once, never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, update

from store.db import write
from store.orders import read_current
from store.schema import events_outbox as ob
from store.schema import orders, proposals, votes

MAX_ERROR = 2000


@dataclass(frozen=True)
class NewEvent:
    event_id: str
    seq: int
    type: str
    subject: str
    body: str  # the CloudEvent as JSON text: published byte for byte as stored


@dataclass(frozen=True)
class OutboxRow:
    event_id: str
    seq: int
    type: str
    subject: str
    body: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    next_at: datetime | None
    last_error: str | None

    @property
    def state(self) -> str:
        if self.sent_at is not None:
            return "sent"
        return "failing" if self.last_error else "pending"


def _row(row: Any) -> OutboxRow:
    return OutboxRow(
        event_id=row.event_id,
        seq=int(row.seq),
        type=row.type,
        subject=row.subject,
        body=row.body,
        created_at=row.created_at,
        sent_at=row.sent_at,
        attempts=int(row.attempts),
        next_at=row.next_at,
        last_error=row.last_error,
    )


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def add(conn: Connection, events: Sequence[NewEvent], *, at: datetime) -> None:
        """Add events inside the caller's transaction (the audit append's)."""
        if not events:
            return
        conn.execute(
            insert(ob),
            [
                {
                    "event_id": e.event_id,
                    "seq": e.seq,
                    "type": e.type,
                    "subject": e.subject,
                    "body": e.body,
                    "created_at": at,
                    "attempts": 0,
                }
                for e in events
            ],
        )

    def claim(
        self, relay: str, *, limit: int, lease_s: float, now: datetime | None = None
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` due rows (unsent, unclaimed or with a claim run out, not
        waiting after a failure), oldest first, for ``lease_s`` seconds."""
        now = now or datetime.now(UTC)

        def work(conn: Connection) -> list[OutboxRow]:
            due = (
                select(ob)
                .where(
                    ob.c.sent_at.is_(None),
                    or_(ob.c.claimed_until.is_(None), ob.c.claimed_until < now),
                    or_(ob.c.next_at.is_(None), ob.c.next_at <= now),
                )
                .order_by(ob.c.seq, ob.c.event_id)
                .limit(limit)
                .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer
            )
            rows = [_row(r) for r in conn.execute(due)]
            if rows:
                conn.execute(
                    update(ob)
                    .where(ob.c.event_id.in_([r.event_id for r in rows]))
                    .values(claimed_by=relay, claimed_until=now + timedelta(seconds=lease_s))
                )
            return rows

        return write(self.engine, work)

    def mark_sent(self, relay: str, event_ids: Sequence[str], now: datetime | None = None) -> int:
        """Every sink took these events. Returns how many rows were marked (a row another
        relay marked first is left as it is)."""
        if not event_ids:
            return 0
        now = now or datetime.now(UTC)

        def work(conn: Connection) -> int:
            done = conn.execute(
                update(ob)
                .where(ob.c.event_id.in_(list(event_ids)), ob.c.sent_at.is_(None))
                .values(
                    sent_at=now,
                    attempts=ob.c.attempts + 1,
                    claimed_by=None,
                    claimed_until=None,
                    last_error=None,
                    next_at=None,
                )
            )
            return int(done.rowcount)

        return write(self.engine, work)

    def failed(self, relay: str, event_id: str, error: str, retry_at: datetime) -> None:
        """A sink refused the event or could not be reached: try it again from ``retry_at``."""

        def work(conn: Connection) -> None:
            conn.execute(
                update(ob)
                .where(ob.c.event_id == event_id, ob.c.sent_at.is_(None))
                .values(
                    attempts=ob.c.attempts + 1,
                    last_error=error[:MAX_ERROR],
                    next_at=retry_at,
                    claimed_by=None,
                    claimed_until=None,
                )
            )

        write(self.engine, work)

    def release(self, relay: str, event_ids: Sequence[str]) -> None:
        """Give back claims not published (the relay stops, or a row before them failed)."""
        if not event_ids:
            return

        def work(conn: Connection) -> None:
            conn.execute(
                update(ob)
                .where(
                    ob.c.event_id.in_(list(event_ids)),
                    ob.c.claimed_by == relay,
                    ob.c.sent_at.is_(None),
                )
                .values(claimed_by=None, claimed_until=None)
            )

        write(self.engine, work)

    def list(
        self,
        *,
        pending: bool = False,
        type: str | None = None,
        subject: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[OutboxRow]:
        query = select(ob).where(ob.c.seq > after_seq)
        if pending:
            query = query.where(ob.c.sent_at.is_(None))
        if type is not None:
            query = query.where(ob.c.type == type)
        if subject is not None:
            query = query.where(ob.c.subject == subject)
        query = query.order_by(ob.c.seq, ob.c.event_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """How many events are sent, pending and failing (unsent, the last try failed)."""
        unsent = ob.c.sent_at.is_(None)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    func.count().filter(ob.c.sent_at.is_not(None)).label("sent"),
                    func.count().filter(unsent, ob.c.last_error.is_(None)).label("pending"),
                    func.count().filter(unsent, ob.c.last_error.is_not(None)).label("failing"),
                )
            ).one()
        return {"sent": int(row.sent), "pending": int(row.pending), "failing": int(row.failing)}


# --- what an event says about its order, read in the appending transaction -------------------


@dataclass(frozen=True)
class About:
    """The order and proposal an audit entry concerns, as the store holds them."""

    world_id: str | None
    order_version: int | None
    policy_ref: str | None
    proposal: dict[str, Any] | None  # kind, strategy, tier, plan_digest of the proposal


def about(
    conn: Connection, *, world_id: str | None, order_id: str, proposal_id: str | None
) -> About:
    proposal: dict[str, Any] | None = None
    version: int | None = None
    policy: str | None = None
    if proposal_id is not None:
        row = conn.execute(
            select(
                proposals.c.world_id,
                proposals.c.order_version,
                proposals.c.policy_ref,
                proposals.c.kind,
                proposals.c.strategy,
                proposals.c.tier,
                proposals.c.plan_digest,
            ).where(proposals.c.proposal_id == proposal_id)
        ).first()
        if row is not None:
            world_id = world_id or row.world_id
            version, policy = int(row.order_version), row.policy_ref
            proposal = {
                "kind": row.kind,
                "strategy": row.strategy,
                "tier": row.tier,
                "plan_digest": row.plan_digest,
            }
    if world_id is None:  # the one world that has this order, if only one has it
        found = conn.execute(
            select(orders.c.world_id).where(orders.c.order_id == order_id).limit(2)
        ).all()
        world_id = found[0].world_id if len(found) == 1 else None
    if version is None and world_id is not None:
        found_version = conn.execute(
            select(orders.c.version).where(
                orders.c.world_id == world_id, orders.c.order_id == order_id
            )
        ).scalar()
        version = None if found_version is None else int(found_version)
    return About(world_id, version, policy, proposal)


def approvers(conn: Connection, proposal_id: str, plan_digest: str) -> list[str]:
    """Who approved the proposal's plan as it stands (votes on an earlier plan do not count)."""
    query = (
        select(votes.c.by)
        .where(
            votes.c.proposal_id == proposal_id,
            votes.c.decision == "approve",
            votes.c.plan_digest == plan_digest,
        )
        .order_by(votes.c.at, votes.c.id)
    )
    return [str(b) for b in conn.execute(query).scalars()]


def current_holds(conn: Connection, world_id: str, order_id: str) -> tuple[list[str], str] | None:
    """(kinds of the holds on the order now, its status), as the store holds it."""
    order = read_current(conn, world_id, order_id)
    if order is None:
        return None
    return [h.kind for h in order.holds], order.status
