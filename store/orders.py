"""Orders as submitted and as the desk changed them.

``submitted`` is the order as it last came in, and its digest decides the version: the version
rises only when the submitted content changes. ``body`` is the order as it stands now, with
exdesk's changes (holds, a corrected address, a new warehouse). A changed submission starts the
order afresh from what was submitted; an unchanged one changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from domain.digest import digest
from domain.errors import InputError
from domain.models import Order
from store.db import write
from store.schema import orders


@dataclass(frozen=True)
class Submission:
    version: int
    changed: bool  # a new order, or new content: a new version to plan


@dataclass(frozen=True)
class Submitted:
    """What the store holds of an order's submission."""

    version: int
    digest: str


_CHUNK = 1000  # ids per IN (...): well under every database's limit on parameters


def _key(world_id: str, order_id: str) -> ColumnElement[bool]:
    return and_(orders.c.world_id == world_id, orders.c.order_id == order_id)


# The reads every step of an order makes, built once: building a statement costs more than
# running it (about 150 µs against 65 µs a read on SQLite).
_BY_KEY = and_(orders.c.world_id == bindparam("b_world"), orders.c.order_id == bindparam("b_order"))
_READ_VERSION = select(orders.c.version).where(_BY_KEY)
_READ_BODY = select(orders.c.body).where(_BY_KEY)
_LOCK_BODY = _READ_BODY.with_for_update()


def _body(order: Order) -> str:
    return json.dumps(order.as_json(), ensure_ascii=False)


class OrderBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(
        self,
        world_id: str,
        order: Order,
        *,
        then: Callable[[Connection, Submission], object] | None = None,
    ) -> Submission:
        """Take an order as submitted; see the module for what a resubmission does. ``then``
        runs in the same transaction, given what was taken (the audit entry that records it)."""
        body, seal = _body(order), self.seal(order)

        def work(conn: Connection) -> Submission:
            taken = take(conn)
            if then is not None:
                then(conn, taken)
            return taken

        def take(conn: Connection) -> Submission:
            row = conn.execute(
                select(orders.c.version, orders.c.submitted_digest)
                .where(_key(world_id, order.order_id))
                .with_for_update()
            ).first()
            now = datetime.now(UTC)
            fields = {"submitted": body, "submitted_digest": seal, "body": body, "updated_at": now}
            if row is None:
                conn.execute(
                    insert(orders).values(
                        world_id=world_id, order_id=order.order_id, version=1, **fields
                    )
                )
                return Submission(1, True)
            if row.submitted_digest == seal:
                return Submission(int(row.version), False)
            version = int(row.version) + 1
            conn.execute(
                update(orders)
                .where(_key(world_id, order.order_id))
                .values(version=version, **fields)
            )
            return Submission(version, True)

        try:
            return write(self.engine, work)
        except IntegrityError:  # another process inserted it first: now it is an update
            return write(self.engine, work)

    @staticmethod
    def seal(order: Order) -> str:
        """The digest of an order's submitted content: its version rises when this changes."""
        return digest(order.as_json())

    def states(self, world_id: str, order_ids: Sequence[str]) -> dict[str, Submitted]:
        """The stored version and submitted digest of each of ``order_ids`` the store holds,
        in one query per thousand ids."""
        out: dict[str, Submitted] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(order_ids), _CHUNK):
                chunk = list(order_ids[start : start + _CHUNK])
                query = select(
                    orders.c.order_id, orders.c.version, orders.c.submitted_digest
                ).where(orders.c.world_id == world_id, orders.c.order_id.in_(chunk))
                for row in conn.execute(query):
                    out[row.order_id] = Submitted(int(row.version), row.submitted_digest)
        return out

    def submit_many(
        self,
        conn: Connection,
        world_id: str,
        batch: Sequence[Order],
        seals: Sequence[str] | None = None,
    ) -> list[Submission]:
        """Take each order of ``batch`` (each order id once) as ``submit`` does, in the
        caller's transaction: one read of what is stored, one insert of the new orders, one
        update per changed one. A concurrent insert of the same order raises
        ``IntegrityError`` (the caller's transaction is then rolled back; run it again).
        ``seals``: the orders' digests (``seal``), when the caller made them already."""
        ids = [o.order_id for o in batch]
        if len(set(ids)) != len(ids):
            raise ValueError("submit_many takes each order id once")
        stored: dict[str, Submitted] = {}
        for start in range(0, len(ids), _CHUNK):
            query = (
                select(orders.c.order_id, orders.c.version, orders.c.submitted_digest)
                .where(
                    orders.c.world_id == world_id,
                    orders.c.order_id.in_(ids[start : start + _CHUNK]),
                )
                .with_for_update()
            )
            for row in conn.execute(query):
                stored[row.order_id] = Submitted(int(row.version), row.submitted_digest)
        now = datetime.now(UTC)
        fresh: list[dict[str, object]] = []
        out: list[Submission] = []
        for index, order in enumerate(batch):
            body = _body(order)
            seal = seals[index] if seals is not None else self.seal(order)
            fields = {"submitted": body, "submitted_digest": seal, "body": body, "updated_at": now}
            known = stored.get(order.order_id)
            if known is None:
                fresh.append(
                    {"world_id": world_id, "order_id": order.order_id, "version": 1, **fields}
                )
                out.append(Submission(1, True))
            elif known.digest == seal:
                out.append(Submission(known.version, False))
            else:
                conn.execute(
                    update(orders)
                    .where(_key(world_id, order.order_id))
                    .values(version=known.version + 1, **fields)
                )
                out.append(Submission(known.version + 1, True))
        if fresh:
            conn.execute(insert(orders), fresh)
        return out

    def current(self, world_id: str, order_id: str) -> Order | None:
        with self.engine.connect() as conn:
            return read_current(conn, world_id, order_id)

    def version(self, world_id: str, order_id: str) -> int:
        with self.engine.connect() as conn:
            version = conn.execute(
                _READ_VERSION, {"b_world": world_id, "b_order": order_id}
            ).scalar()
        if version is None:
            raise InputError(f"order {order_id!r} is not in world {world_id!r}")
        return int(version)

    def submitted(self, world_id: str, order_id: str) -> Order:
        with self.engine.connect() as conn:
            body = conn.execute(select(orders.c.submitted).where(_key(world_id, order_id))).scalar()
        if body is None:
            raise InputError(f"order {order_id!r} is not in world {world_id!r}")
        return Order.model_validate_json(body)


def read_current(
    conn: Connection, world_id: str, order_id: str, *, lock: bool = False
) -> Order | None:
    """The order as it stands; ``lock`` holds its row until the transaction ends."""
    query = _LOCK_BODY if lock else _READ_BODY
    body = conn.execute(query, {"b_world": world_id, "b_order": order_id}).scalar()
    return None if body is None else Order.model_validate_json(body)


def write_current(conn: Connection, world_id: str, order: Order) -> None:
    conn.execute(
        update(orders)
        .where(_key(world_id, order.order_id))
        .values(body=_body(order), updated_at=datetime.now(UTC))
    )
