"""The simulated backend against the ports' conformance spec, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from domain.models import Order, World
from store.migrate import upgrade
from store.orders import OrderBook
from store.world import WorldRows
from tests.tools.conformance import ORD_1, WORLD, Harness, PortsBackend, PortsConformance, act
from tools.ports import WorldFacts
from tools.registry import ToolBox
from tools.simulated import SimulatedBackend


class SimulatedPorts:
    """The simulated backend of one world, as the spec drives it."""

    def __init__(self, engine: Engine, world_id: str) -> None:
        self.world_id = world_id
        self.simulated = SimulatedBackend(engine, world_id)
        self.toolbox: ToolBox = self.simulated.toolbox()
        self.facts: WorldFacts = self.simulated.facts
        self._worlds = WorldRows(engine)
        self._orders = OrderBook(engine)

    def load_world(self, world: World) -> None:
        self._worlds.load(self.world_id, world)

    def submit(self, order: Order) -> None:
        self._orders.submit(self.world_id, order)

    def messages(self, order_id: str) -> list[dict[str, Any]]:
        return self.simulated.outbox(order_id)


class TestSimulatedBackend(PortsConformance):
    @pytest.fixture
    def backend(self, db_engine: Engine) -> Iterator[PortsBackend]:
        upgrade(db_engine)
        yield SimulatedPorts(db_engine, "conformance")


def test_two_worlds_of_one_database_keep_apart(db_engine: Engine) -> None:
    """A second world in the same database neither sees nor takes the first one's effects."""
    upgrade(db_engine)
    one = Harness(SimulatedPorts(db_engine, "one")).seed()
    two = Harness(SimulatedPorts(db_engine, "two")).seed()
    before = two.observe()
    one.call(act("orders.place_hold", kind="stockout", reason="one"), "hold")
    one.call(act("inventory.reserve", warehouse_id="WH-A", sku="SKU-1", qty=3), "reserve")
    one.call(act("notify.send", template="t"), "send")
    assert two.observe() == before
    assert one.get(ORD_1.order_id).status == "on_hold"
    seeded = next(r for r in WORLD.inventory if (r.warehouse_id, r.sku) == ("WH-A", "SKU-1"))
    assert one.available("WH-A", "SKU-1") == seeded.available - 3
