"""Worlds as rows: load a world file's facts, read the facts that bear on one order, and change
stock with conditional updates that cannot oversell or lose a concurrent change.

How a reload merges: the file's facts (``now``, warehouses, catalog, rates, FX, replenishment,
events, recent orders) replace the world's. Stock rows take ``on_hand`` and ``reserved`` from
the file; ``held``, what exdesk's own executed actions reserved, is kept. A stock row the new
file lacks keeps exdesk's holds with nothing on hand, or goes when nothing is held there.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from domain.errors import InputError
from domain.models import (
    CatalogItem,
    Event,
    Order,
    Replenishment,
    ShippingRate,
    StockRow,
    World,
)
from store.db import write
from store.schema import (
    catalog,
    events,
    fx_rates,
    recent_orders,
    replenishments,
    shipping_rates,
    stock,
    warehouses,
    worlds,
)


def _json(record: Any) -> str:
    return json.dumps(record.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


def _facts_rows(world_id: str, world: World) -> dict[Table, list[dict[str, Any]]]:
    """Every fact of ``world`` as rows of its table (stock apart)."""
    return {
        warehouses: [
            {"world_id": world_id, "warehouse_id": w.id, "body": _json(w)} for w in world.warehouses
        ],
        catalog: [
            {"world_id": world_id, "sku": c.sku, "body": _json(c)}
            for c in {c.sku: c for c in world.catalog}.values()
        ],
        shipping_rates: [
            {"world_id": world_id, "seq": i, "country_code": r.country_code, "body": _json(r)}
            for i, r in enumerate(world.shipping_rates)
        ],
        fx_rates: [
            {"world_id": world_id, "currency": cur, "rate": str(rate)}
            for cur, rate in world.fx_to_usd.items()
        ],
        replenishments: [
            {"world_id": world_id, "seq": i, "sku": r.sku, "body": _json(r)}
            for i, r in enumerate(world.replenishment)
        ],
        events: [
            {"world_id": world_id, "seq": i, "order_id": e.order_id, "body": _json(e)}
            for i, e in enumerate(world.events)
        ],
        recent_orders: [
            {
                "world_id": world_id,
                "order_id": o.order_id,
                "customer_id": o.customer.id,
                "body": _json(o),
            }
            for o in {o.order_id: o for o in world.recent_orders}.values()
        ],
    }


def _check_stock(world: World) -> dict[tuple[str, str], StockRow]:
    rows: dict[tuple[str, str], StockRow] = {}
    for index, row in enumerate(world.inventory):
        key = (row.warehouse_id, row.sku)
        if key in rows:
            raise InputError(
                f"inventory.{index}: {row.warehouse_id}/{row.sku} is listed twice; give each "
                "warehouse and SKU one row"
            )
        rows[key] = row
    return rows


# The order a snapshot reads the rows of a table without a ``seq`` in: its key.
_KEYS = {"warehouses": ("warehouse_id",), "catalog": ("sku",), "recent_orders": ("order_id",)}


def _grouped(items: Any, key: Callable[[Any], str]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return {k: tuple(v) for k, v in out.items()}


_SKU_SETS = 65_536  # sets of SKUs whose facts a snapshot keeps
_SkuFacts = tuple[tuple[CatalogItem, ...], tuple[StockRow, ...], tuple[Replenishment, ...]]


@dataclass(frozen=True)
class WorldSnapshot:
    """Every fact of one world at one revision, indexed by what a view of one order selects,
    so that a view costs no query and no validation (its parts are validated once, here)."""

    world_id: str
    revision: int
    world: World
    catalog: dict[str, CatalogItem] = field(repr=False)
    stock: dict[str, tuple[StockRow, ...]] = field(repr=False)
    rates: dict[str, tuple[ShippingRate, ...]] = field(repr=False)
    events: dict[str, tuple[Event, ...]] = field(repr=False)
    recent: dict[str, tuple[Order, ...]] = field(repr=False)
    _skus: dict[tuple[str, ...], _SkuFacts] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, world_id: str, revision: int, world: World) -> WorldSnapshot:
        return cls(
            world_id=world_id,
            revision=revision,
            world=world,
            catalog={c.sku: c for c in world.catalog},
            stock=_grouped(world.inventory, lambda r: r.sku),
            rates=_grouped(world.shipping_rates, lambda r: r.country_code),
            events=_grouped(world.events, lambda e: e.order_id),
            recent=_grouped(world.recent_orders, lambda o: o.customer.id),
        )

    def view(self, order: Order) -> World:
        """The facts that bear on ``order``: its SKUs and their substitutes (catalog, stock,
        replenishment), rates to its destination, its events, the customer's recent orders;
        every warehouse and FX rate. Stock counts exdesk's own holds as reserved."""
        catalog, inventory, replenishment = self._of_skus(tuple(sorted(order.qty_by_sku())))
        # Parts validated when the snapshot was built: the view is assembled, not validated.
        return World.model_construct(
            now=self.world.now,
            warehouses=self.world.warehouses,
            inventory=inventory,
            replenishment=replenishment,
            catalog=catalog,
            shipping_rates=self.rates.get(order.ship_to.country_code, ()),
            fx_to_usd=self.world.fx_to_usd,
            events=self.events.get(order.order_id, ()),
            recent_orders=self.recent.get(order.customer.id, ()),
        )

    def _of_skus(self, own: tuple[str, ...]) -> _SkuFacts:
        """(catalog, stock, replenishment) of ``own`` SKUs and their substitutes, made once
        per set of SKUs (the snapshot never changes)."""
        found = self._skus.get(own)
        if found is not None:
            return found
        items = [self.catalog[s] for s in own if s in self.catalog]
        subs = sorted({s for item in items for s in item.substitutes} - set(own))
        items += [self.catalog[s] for s in subs if s in self.catalog]
        wanted = {*own, *subs}
        made = (
            tuple(sorted(items, key=lambda c: c.sku)),
            tuple(
                sorted(
                    (row for sku in wanted for row in self.stock.get(sku, ())),
                    key=lambda r: (r.warehouse_id, r.sku),
                )
            ),
            tuple(r for r in self.world.replenishment if r.sku in wanted),
        )
        if len(self._skus) >= _SKU_SETS:
            self._skus.clear()  # a catalog with more combinations than are worth keeping
        self._skus[own] = made
        return made


class WorldRows:
    """The worlds of one database. An instance keeps each world's newest snapshot."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._snapshots: dict[str, WorldSnapshot] = {}

    # --- loading ---------------------------------------------------------------------------

    def load(
        self, world_id: str, world: World, *, then: Callable[[Connection], object] | None = None
    ) -> None:
        """Take a world file's facts and stock, merged as the module says. One transaction;
        ``then`` runs in it last (the audit entry that records the load)."""
        rows = _check_stock(world)
        facts = _facts_rows(world_id, world)

        def work(conn: Connection) -> None:
            now = {"now": world.now.isoformat(), "updated_at": datetime.now(UTC)}
            changed = conn.execute(
                update(worlds)
                .where(worlds.c.world_id == world_id)
                .values(revision=worlds.c.revision + 1, **now)
            ).rowcount
            if not changed:
                conn.execute(insert(worlds).values(world_id=world_id, **now))
            for table, values in facts.items():
                conn.execute(delete(table).where(table.c.world_id == world_id))
                if values:
                    conn.execute(insert(table), values)
            self._merge_stock(conn, world_id, rows)
            if then is not None:
                then(conn)

        try:
            write(self.engine, work)
        except IntegrityError:  # another process made the world's row first: update it
            write(self.engine, work)

    def _merge_stock(
        self, conn: Connection, world_id: str, rows: dict[tuple[str, str], StockRow]
    ) -> None:
        where = stock.c.world_id == world_id
        held = {
            (r.warehouse_id, r.sku): int(r.held)
            for r in conn.execute(
                select(stock.c.warehouse_id, stock.c.sku, stock.c.held).where(where)
            )
        }
        conn.execute(delete(stock).where(where))
        merged = [
            {
                "world_id": world_id,
                "warehouse_id": wh,
                "sku": sku,
                "on_hand": row.on_hand,
                "reserved": row.reserved,
                "held": held.get((wh, sku), 0),
            }
            for (wh, sku), row in rows.items()
        ]
        merged += [
            {
                "world_id": world_id,
                "warehouse_id": wh,
                "sku": sku,
                "on_hand": 0,
                "reserved": 0,
                "held": qty,
            }
            for (wh, sku), qty in held.items()
            if qty and (wh, sku) not in rows
        ]
        if merged:
            conn.execute(insert(stock), merged)

    # --- reading -----------------------------------------------------------------------------

    def revision(self, world_id: str) -> int | None:
        """The world's revision (moved by every change to its facts or stock), or None when
        the world is not in the store. One small query."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(worlds.c.revision).where(worlds.c.world_id == world_id)
            ).scalar()
        return None if found is None else int(found)

    def snapshot(self, world_id: str) -> WorldSnapshot:
        """Every fact of the world as it stands, read in one transaction; kept while the
        world's revision stays the same (the caller's instance holds it)."""
        with self.engine.connect() as conn:
            head = conn.execute(
                select(worlds.c.now, worlds.c.revision).where(worlds.c.world_id == world_id)
            ).first()
            if head is None:
                raise InputError(
                    f"world {world_id!r} is not in the store; load it with --world FILE"
                )
            cached = self._snapshots.get(world_id)
            if cached is not None and cached.revision == int(head.revision):
                return cached
            made = WorldSnapshot.build(
                world_id,
                int(head.revision),
                World.model_validate(
                    {
                        "now": head.now,
                        "warehouses": self._bodies(conn, warehouses, world_id),
                        "inventory": self._stock(conn, world_id),
                        "replenishment": self._bodies(conn, replenishments, world_id),
                        "catalog": self._bodies(conn, catalog, world_id),
                        "shipping_rates": self._bodies(conn, shipping_rates, world_id),
                        "fx_to_usd": {
                            r.currency: r.rate
                            for r in conn.execute(
                                select(fx_rates.c.currency, fx_rates.c.rate).where(
                                    fx_rates.c.world_id == world_id
                                )
                            )
                        },
                        "events": self._bodies(conn, events, world_id),
                        "recent_orders": self._bodies(conn, recent_orders, world_id),
                    }
                ),
            )
        self._snapshots[world_id] = made
        return made

    def view(self, world_id: str, order: Order) -> World:
        """The facts that bear on ``order`` (``WorldSnapshot.view``), from the snapshot of
        the world's current revision: one small query while the world is unchanged."""
        return self.snapshot(world_id).view(order)

    def _bodies(self, conn: Connection, table: Table, world_id: str) -> list[dict[str, Any]]:
        query = select(table.c.body).where(table.c.world_id == world_id)
        order_by = [table.c.seq] if "seq" in table.c else [table.c[n] for n in _KEYS[table.name]]
        return [json.loads(b) for b in conn.execute(query.order_by(*order_by)).scalars()]

    def _stock(self, conn: Connection, world_id: str) -> list[dict[str, Any]]:
        query = select(stock).where(stock.c.world_id == world_id)
        return [
            {
                "warehouse_id": r.warehouse_id,
                "sku": r.sku,
                "on_hand": r.on_hand,
                "reserved": r.reserved + r.held,
            }
            for r in conn.execute(query.order_by(stock.c.warehouse_id, stock.c.sku))
        ]

    def stock_rows(self, world_id: str) -> list[dict[str, Any]]:
        """Every stock row of the world: on_hand, reserved (from the file), held (by exdesk)."""
        query = select(stock).where(stock.c.world_id == world_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def hold_stock(conn: Connection, world_id: str, warehouse_id: str, sku: str, qty: int) -> int:
    """Reserve ``qty`` for exdesk if that many are available, in one conditional update.

    Returns what was available before. Raises ``LookupError`` when the warehouse does not
    stock the SKU and ``ValueError`` (with what is available) when there is not enough.
    """
    key = and_(
        stock.c.world_id == world_id, stock.c.warehouse_id == warehouse_id, stock.c.sku == sku
    )
    available = stock.c.on_hand - stock.c.reserved - stock.c.held
    done = conn.execute(
        update(stock).where(key, available >= qty).values(held=stock.c.held + qty)
    ).rowcount
    row = conn.execute(select(available.label("available")).where(key)).first()
    if row is None:
        raise LookupError(f"{warehouse_id} does not stock {sku}")
    if not done:
        raise ValueError(f"{warehouse_id} has {row.available} of {sku} available")
    _moved(conn, world_id)
    return int(row.available) + qty


def release_stock(conn: Connection, world_id: str, warehouse_id: str, sku: str, qty: int) -> None:
    """Give back ``qty`` of what exdesk held; never more than it holds."""
    key = and_(
        stock.c.world_id == world_id, stock.c.warehouse_id == warehouse_id, stock.c.sku == sku
    )
    done = conn.execute(
        update(stock).where(key, stock.c.held >= qty).values(held=stock.c.held - qty)
    ).rowcount
    if not done:
        held = conn.execute(select(stock.c.held).where(key)).scalar()
        raise ValueError(
            f"exdesk holds {held or 0} of {sku} at {warehouse_id}; cannot release {qty}"
        )
    _moved(conn, world_id)


def _moved(conn: Connection, world_id: str) -> None:
    """The world changed: move its revision, in the transaction of the change."""
    conn.execute(
        update(worlds).where(worlds.c.world_id == world_id).values(revision=worlds.c.revision + 1)
    )
