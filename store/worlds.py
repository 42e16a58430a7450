"""Worlds and their orders, outbox and tool calls, kept in SQL.

A ``SimWorld`` is loaded, acted on, and saved with ``save``: only what changed is written,
in one transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, insert, select, update

from domain.errors import InputError
from domain.models import Order, World
from store.db import orders, outbox, tool_calls, worlds
from tools.ports import Result
from tools.simulated import SimWorld


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(model: Order | World) -> str:
    return json.dumps(model.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


class _Backing:
    def __init__(self, store: WorldStore, world_id: str) -> None:
        self._store = store
        self._world_id = world_id

    def load_order(self, order_id: str) -> Order | None:
        return self._store.get_order(self._world_id, order_id)

    def load_call(self, key: str) -> Result | None:
        with self._store.engine.connect() as conn:
            raw = conn.execute(select(tool_calls.c.result).where(tool_calls.c.key == key)).scalar()
        return None if raw is None else dict(json.loads(raw))


class WorldStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put_world(self, world_id: str, world: World) -> None:
        """Store the world's facts (replacing earlier ones); its orders stay."""
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(worlds.c.world_id).where(worlds.c.world_id == world_id)
            ).first()
            values = {"body": _dump(world), "updated_at": _now()}
            if exists:
                conn.execute(update(worlds).where(worlds.c.world_id == world_id).values(**values))
            else:
                conn.execute(insert(worlds).values(world_id=world_id, **values))

    def load(self, world_id: str) -> SimWorld:
        with self.engine.connect() as conn:
            body = conn.execute(select(worlds.c.body).where(worlds.c.world_id == world_id)).scalar()
        if body is None:
            raise InputError(f"world {world_id!r} is not in the store; load it with --world FILE")
        world = World.model_validate_json(body)
        return SimWorld(world, backing=_Backing(self, world_id))

    def upsert_order(self, world_id: str, order: Order) -> int:
        """Take an order as submitted; its version rises when its content changed."""
        body = _dump(order)
        where = and_(orders.c.world_id == world_id, orders.c.order_id == order.order_id)
        with self.engine.begin() as conn:
            row = conn.execute(select(orders.c.version, orders.c.body).where(where)).first()
            if row is None:
                conn.execute(
                    insert(orders).values(
                        world_id=world_id,
                        order_id=order.order_id,
                        version=1,
                        body=body,
                        updated_at=_now(),
                    )
                )
                return 1
            if row.body == body:
                return int(row.version)
            conn.execute(
                update(orders)
                .where(where)
                .values(version=row.version + 1, body=body, updated_at=_now())
            )
            return int(row.version) + 1

    def get_order(self, world_id: str, order_id: str) -> Order | None:
        where = and_(orders.c.world_id == world_id, orders.c.order_id == order_id)
        with self.engine.connect() as conn:
            body = conn.execute(select(orders.c.body).where(where)).scalar()
        return None if body is None else Order.model_validate_json(body)

    def order_version(self, world_id: str, order_id: str) -> int:
        where = and_(orders.c.world_id == world_id, orders.c.order_id == order_id)
        with self.engine.connect() as conn:
            version = conn.execute(select(orders.c.version).where(where)).scalar()
        if version is None:
            raise InputError(f"order {order_id!r} is not in world {world_id!r}")
        return int(version)

    def set_thread(self, world_id: str, order_id: str, thread_id: str) -> None:
        where = and_(orders.c.world_id == world_id, orders.c.order_id == order_id)
        with self.engine.begin() as conn:
            conn.execute(update(orders).where(where).values(thread_id=thread_id))

    def save(self, world_id: str, sim: SimWorld) -> None:
        """Write what the agent changed: orders, stock, outbox, tool calls. One transaction."""
        with self.engine.begin() as conn:
            if sim.stock_changed:
                conn.execute(
                    update(worlds)
                    .where(worlds.c.world_id == world_id)
                    .values(body=_dump(sim.snapshot()), updated_at=_now())
                )
            for order_id in sorted(sim.dirty_orders):
                where = and_(orders.c.world_id == world_id, orders.c.order_id == order_id)
                conn.execute(
                    update(orders)
                    .where(where)
                    .values(body=_dump(sim.orders[order_id]), updated_at=_now())
                )
            if sim.new_outbox:
                conn.execute(
                    insert(outbox),
                    [
                        {
                            "world_id": world_id,
                            "order_id": m["order_id"],
                            "channel": m["channel"],
                            "body": json.dumps(m, ensure_ascii=False),
                        }
                        for m in sim.new_outbox
                    ],
                )
            if sim.new_calls:
                conn.execute(
                    insert(tool_calls),
                    [
                        {
                            "key": k,
                            "world_id": world_id,
                            "result": json.dumps(v, ensure_ascii=False),
                        }
                        for k, v in sim.new_calls.items()
                    ],
                )
        sim.mark_saved()

    def outbox(self, world_id: str, order_id: str | None = None) -> list[dict[str, Any]]:
        query = select(outbox.c.body).where(outbox.c.world_id == world_id).order_by(outbox.c.id)
        if order_id is not None:
            query = query.where(outbox.c.order_id == order_id)
        with self.engine.connect() as conn:
            return [json.loads(b) for b in conn.execute(query).scalars()]
