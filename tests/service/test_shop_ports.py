"""exdesk wired to a shop over HTTP (the reference shop on 127.0.0.1): the ports chosen by
settings, the same decisions as with the simulated ports, the effects in the shop's systems,
and a failing step compensated in the shop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.errors import InputError
from domain.models import Kind, Order, World
from service import usecases
from service.settings import Settings
from service.wiring import Exdesk
from store.db import make_engine
from tests.factories import example, start, vote
from tests.tools.shop_server import HttpPorts, Shop, serve_shop
from tools.http_backends import HttpFacts, HttpInventory, HttpOrders
from tools.reference_server import Fault
from tools.simulated import SimulatedNotify, SimulatedOrders

STOCKOUT = Kind.STOCKOUT


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with serve_shop(engine) as served:
        yield served
    engine.dispose()


def desk_on(tmp_path: Path, name: str, **settings: Any) -> Exdesk:
    return Exdesk(Settings(data_dir=tmp_path / name, tools_backoff_s=0.01, **settings))


def into_shop(shop: Shop, case: dict[str, Any], world_id: str = "w") -> HttpPorts:
    """The shop's systems hold the case's world and order (a real shop has them already)."""
    ports = HttpPorts(shop, world_id=world_id)
    ports.load_world(World.model_validate(case["world"]))
    ports.submit(Order.model_validate(case["order"]))
    return ports


def summary(result: Any) -> dict[str, Any]:
    return {
        "decisions": {k.value: (d.status, d.strategy, d.tier) for k, d in result.decisions.items()},
        "order_after": result.order_after.as_json(),
    }


def test_with_no_url_every_port_is_simulated(tmp_path: Path) -> None:
    app = desk_on(tmp_path, "plain")
    try:
        assert app.shop is None
        desk = app.desk("w")
        assert isinstance(desk.toolbox.orders, SimulatedOrders)
        assert isinstance(desk.toolbox._ports["notify"], SimulatedNotify)
    finally:
        app.close()


def test_per_port_urls_override_the_shop_url(tmp_path: Path) -> None:
    app = desk_on(
        tmp_path,
        "mixed",
        shop_url="http://127.0.0.1:9",
        tools_notify_url="simulated",
        tools_inventory_url="http://127.0.0.1:8",
        shop_token="s3cret",
    )
    try:
        assert app.shop is not None
        assert app.shop.port("inventory").base_url == "http://127.0.0.1:8"
        assert app.shop.port("orders").base_url == "http://127.0.0.1:9"
        desk = app.desk("w")
        assert isinstance(desk.toolbox.orders, HttpOrders)
        assert isinstance(desk.toolbox.inventory, HttpInventory)
        assert isinstance(desk.toolbox._ports["notify"], SimulatedNotify)
        assert isinstance(desk.facts, HttpFacts)
        for name in ("orders", "inventory", "facts"):
            headers = app.shop.port(name)._client.headers
            assert headers["Authorization"] == "Bearer s3cret"
    finally:
        app.close()


def test_a_url_that_is_not_http_is_refused_saying_which(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="EXDESK_TOOLS_PAYMENT_URL"):
        desk_on(tmp_path, "bad", tools_payment_url="ftp://shop")


@pytest.mark.parametrize(
    "case_id", ["EX-inject-stock-012", "EX-customs-bad_hs-005", "EX-addr-fix-002"]
)
def test_over_http_the_desk_decides_as_with_simulated_ports(
    tmp_path: Path, shop: Shop, case_id: str
) -> None:
    case = example(case_id)
    simulated = desk_on(tmp_path, "sim")
    over_http = desk_on(tmp_path, "http", shop_url=shop.url)
    try:
        expected = start(simulated, case)
        ports = into_shop(shop, case)
        got = start(over_http, case)
        assert summary(got) == summary(expected)
        order_id = case["order"]["order_id"]
        # The effects are in the shop's systems, and nothing was sent from exdesk's own.
        assert ports.toolbox.orders.get(order_id) == expected.order_after
        assert [m["channel"] for m in ports.messages(order_id)] == [
            m["channel"] for m in simulated.backend("w").outbox(order_id)
        ]
        assert over_http.backend("w").outbox(order_id) == []
        # What people review is the order as the shop holds it, not the store's copy.
        assert over_http.orders.current("w", order_id) == got.order_after
        assert over_http.orders.current("w", "NO-SUCH-ORDER") is None
        assert [r for r in shop.requests() if r["key"]], "nothing acted through the shop"
        # Handling the same order again replays: nothing more happens in the shop.
        requests = len(shop.requests())
        sent = ports.messages(order_id)
        again = usecases.handle(over_http, "w", Order.model_validate(case["order"]))
        assert summary(again) == summary(got)
        assert ports.messages(order_id) == sent
        acting = [r for r in shop.requests()[requests:] if r["key"]]
        assert all(r["fault"] is None for r in acting)
        assert over_http.audit.verify().ok
        ports.close()
    finally:
        simulated.close()
        over_http.close()


def test_a_step_the_shop_cannot_do_is_compensated_in_the_shop(tmp_path: Path, shop: Shop) -> None:
    case = example("EX-inject-stock-012")
    ports = into_shop(shop, case)
    order = Order.model_validate(case["order"])
    before = {(r.warehouse_id, r.sku): r.reserved for r in ports.facts.view(order).inventory}
    shop.arm(Fault(op="orders.set_fulfillment", mode="fail-before", status=503, times=0))
    app = desk_on(tmp_path, "http", shop_url=shop.url, tools_retries=2)
    try:
        result = start(app, case)
        decision = result.decisions[STOCKOUT]
        assert decision.status == "failed"
        assert "orders is unavailable" in (decision.detail or "")
        after = {(r.warehouse_id, r.sku): r.reserved for r in ports.facts.view(order).inventory}
        assert after == before  # the reservation made in the shop was released there
        assert result.order_after.fulfillment.warehouse_id == order.fulfillment.warehouse_id
        tries = [r for r in shop.requests() if r["op"] == "orders.set_fulfillment"]
        assert len(tries) == 3  # one try and two retries, all under one key
        assert len({r["key"] for r in tries}) == 1
        events = [e.event for e in app.audit.entries()]
        assert "tool.failed" in events
        assert app.audit.verify().ok
    finally:
        shop.arm()
        app.close()
        ports.close()


def test_a_plan_approved_later_runs_in_the_shop_once(tmp_path: Path, shop: Shop) -> None:
    """An L2 plan paused over HTTP is approved by two people; the resumed run acts in the
    shop, and a second process approving again changes nothing there."""
    case = example("EX-customs-bad_hs-005")
    ports = into_shop(shop, case)
    order_id = case["order"]["order_id"]
    app = desk_on(tmp_path, "http", shop_url=shop.url)
    try:
        waiting = start(app, case)
        decision = waiting.decisions[Kind.CUSTOMS_BLOCK]
        assert decision.status == "awaiting_approval" and decision.proposal_id
        held = ports.toolbox.orders.get(order_id)
        assert held.status == "on_hold"
        vote(app, decision.proposal_id, "alice")
        done = vote(app, decision.proposal_id, "bob").run
        assert done is not None
        assert done.decisions[Kind.CUSTOMS_BLOCK].status == "executed"
        after = ports.toolbox.orders.get(order_id)
        assert after == done.order_after
        assert [line.hs_code for line in after.lines] != [line.hs_code for line in held.lines]
        keys = {r["key"] for r in shop.requests() if r["key"]}
        sent = ports.messages(order_id)
        again = usecases.resume(app, app.review.get(decision.proposal_id))
        assert again.order_after == after
        # Resuming again replays: any request it makes carries a key already used.
        assert {r["key"] for r in shop.requests() if r["key"]} == keys
        assert ports.messages(order_id) == sent
        assert app.audit.verify().ok
    finally:
        app.close()
        ports.close()
