"""exdesk processes over HTTP to one shop (the reference shop on 127.0.0.1): four `exdesk run`
at once racing for the last units, and a process killed (SIGKILL) while the shop was acting,
run again. Every action acts once in the shop, and the shop's record of what was done is the
audit log's."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.models import Order, World
from store.db import make_engine
from store.schema import tool_calls
from tests.factories import example
from tests.service.test_processes import Install, _contested, install
from tests.tools.shop_server import HttpPorts, Shop, serve_shop
from tools.reference_server import DEFAULT_WORLD, Fault

__all__ = ["install"]  # the fixture, from the processes' tests


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with serve_shop(engine) as served:
        yield served
    engine.dispose()


def _shop_keys(shop: Shop) -> list[str]:
    with shop.engine.connect() as conn:
        query = select(tool_calls.c.key).where(tool_calls.c.world_id == DEFAULT_WORLD)
        return list(conn.execute(query).scalars())


def _consistent(install: Install, shop: Shop) -> list[str]:
    """What the audit log says was done is what the shop did, and the log verifies."""
    app = install.app()
    try:
        entries = list(app.audit.entries())
        logged = [e.payload["key"] for e in entries if e.event == "tool.called"]
        assert sorted(set(logged)) == sorted(_shop_keys(shop))
        verdict = app.audit.verify(app.public_key())
        assert verdict.ok, verdict.problem
        return logged
    finally:
        app.close()


def test_four_processes_over_http_race_for_the_last_units(
    install: Install, shop: Shop, tmp_path: Path
) -> None:
    world_path, files = _contested(tmp_path, orders=12, units=6)
    ports = HttpPorts(shop, world_id=DEFAULT_WORLD)
    ports.load_world(World.model_validate_json(world_path.read_text()))
    orders = [Order.model_validate_json(line) for line in files[0].read_text().splitlines()]
    for order in orders:
        ports.submit(order)
    over_http = {"EXDESK_SHOP_URL": shop.url}
    procs = [install.run("run", str(f), extra=over_http) for f in files]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    view = ports.facts.view(orders[0])
    [row] = [r for r in view.inventory if (r.warehouse_id, r.sku) == ("WH-SZX", "HDP-BT-200")]
    assert row.reserved == 6  # the six units, each promised once: never oversold
    moved = [ports.toolbox.orders.get(o.order_id).fulfillment.warehouse_id for o in orders]
    assert Counter(moved)["WH-SZX"] == 6
    _consistent(install, shop)
    ports.close()


def test_a_process_killed_while_the_shop_acts_is_run_again_and_acts_once(
    install: Install, shop: Shop, tmp_path: Path
) -> None:
    case = example("EX-inject-stock-012")
    ports = HttpPorts(shop, world_id=DEFAULT_WORLD)
    ports.load_world(World.model_validate(case["world"]))
    order = Order.model_validate(case["order"])
    ports.submit(order)
    orders_file = tmp_path / "orders.jsonl"
    orders_file.write_text(json.dumps(case["order"], ensure_ascii=False) + "\n")

    def reserved() -> int:
        [row] = [
            r
            for r in ports.facts.view(order).inventory
            if (r.warehouse_id, r.sku) == ("WH-SZX", "HDP-BT-200")
        ]
        return row.reserved

    start = reserved()
    # The shop reserves, then holds its answer back; the process is killed while it waits.
    shop.arm(Fault(op="inventory.reserve", mode="delay-after", seconds=4))
    over_http = {"EXDESK_SHOP_URL": shop.url, "EXDESK_TOOLS_TIMEOUT_S": "60"}
    proc = install.run("run", str(orders_file), extra=over_http)
    deadline = time.monotonic() + 300
    while not any(r["fault"] for r in shop.requests()):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the run never reached the reservation"
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=30)
    assert reserved() == start + 3  # the shop did it; exdesk never heard
    shop.arm()
    code, output = install.call("run", str(orders_file), extra=over_http)
    assert code == 0, output
    assert "executed" in output
    assert reserved() == start + 3  # run again: the reservation replayed, not repeated
    assert ports.toolbox.orders.get(order.order_id).fulfillment.warehouse_id == "WH-SZX"
    logged = _consistent(install, shop)
    assert len(logged) == len(set(logged))  # each call's outcome logged once
    ports.close()
