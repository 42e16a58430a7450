"""The registry: malformed actions are refused before dispatch, an adapter's own errors come out
as ``ToolUnavailable``, and a plan whose step breaks that way is compensated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from agent.execute import run_plan
from domain.errors import ToolError, ToolRejected, ToolUnavailable
from domain.models import Action, Kind, Order, Plan, Strategy, Tier, World
from service import usecases
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import example, held
from tools.ports import Carrier, Customs, Inventory, Notify, Orders, Payment, Result
from tools.registry import ToolBox, checked_args
from tools.simulated import (
    SimulatedCarrier,
    SimulatedCustoms,
    SimulatedInventory,
    SimulatedOrders,
    SimulatedPayment,
)

Call = tuple[str, dict[str, Any], str]  # (tool.op, arguments, key)


class Recorder:
    """Stands in for any port: records each call it gets and answers ``{"done": op}``."""

    def __init__(self, tool: str, calls: list[Call]) -> None:
        self._tool = tool
        self._calls = calls

    def __getattr__(self, op: str) -> Callable[..., Result]:
        def method(*, key: str, **args: Any) -> Result:
            self._calls.append((f"{self._tool}.{op}", args, key))
            return {"done": op}

        return method


class BrokenNotify:
    """A notify adapter with a bug of its own: every send raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def send(self, order_id: str, template: str, data: dict[str, Any], *, key: str) -> Result:
        self.calls += 1
        raise self.error


def recording_toolbox(calls: list[Call], notify: Notify | None = None) -> ToolBox:
    return ToolBox(
        orders=cast(Orders, Recorder("orders", calls)),
        inventory=cast(Inventory, Recorder("inventory", calls)),
        customs=cast(Customs, Recorder("customs", calls)),
        payment=cast(Payment, Recorder("payment", calls)),
        carrier=cast(Carrier, Recorder("carrier", calls)),
        notify=notify or cast(Notify, Recorder("notify", calls)),
    )


def action(name: str, **args: Any) -> Action:
    tool, op = name.split(".")
    return Action(tool=tool, op=op, args=args)


STOCK = {"warehouse_id": "WH-SZX", "sku": "TEE-COT-NVY"}

# (action, what the refusal must name besides tool.op)
MALFORMED: dict[str, tuple[Action, tuple[str, ...]]] = {
    "missing argument": (action("inventory.reserve", **STOCK), ("qty", "required")),
    "qty as text": (action("inventory.reserve", **STOCK, qty="3"), ("qty", "integer")),
    "qty zero": (action("inventory.reserve", **STOCK, qty=0), ("qty", "greater than 0")),
    "qty as bool": (action("inventory.reserve", **STOCK, qty=True), ("qty",)),
    "unknown extra argument": (
        action("notify.send", order_id="O-1", template="t", cc="boss@example.com"),
        ("cc", "Extra inputs"),
    ),
    "address field not in the contract": (
        action("orders.set_ship_to", order_id="O-1", fields={"street": "Dam 1"}),
        ("fields.street", "street_address"),
    ),
    "no address fields": (action("orders.set_ship_to", order_id="O-1", fields={}), ("fields",)),
    "empty order id": (
        action("orders.place_hold", order_id="", kind="stockout", reason="r"),
        ("order_id",),
    ),
    "order id as number": (action("payment.retry", order_id=42), ("order_id",)),
    "status not an order status": (
        action("orders.set_status", order_id="O-1", status="shipped"),
        ("status",),
    ),
    "service not a service": (
        action("carrier.change_service", order_id="O-1", service="overnight"),
        ("service",),
    ),
    "negative refund": (
        action("payment.refund", order_id="O-1", amount="-5", currency="EUR"),
        ("amount",),
    ),
    "refund currency in lower case": (
        action("payment.refund", order_id="O-1", amount="5", currency="eur"),
        ("currency",),
    ),
}


def test_a_well_formed_action_is_dispatched_with_its_key() -> None:
    calls: list[Call] = []
    toolbox = recording_toolbox(calls)
    result = toolbox.call(action("notify.send", order_id="O-1", template="t"), key="k-1")
    assert result == {"done": "send"}
    assert calls == [("notify.send", {"order_id": "O-1", "template": "t", "data": {}}, "k-1")]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_action_is_refused_before_dispatch(name: str) -> None:
    bad, names = MALFORMED[name]
    with pytest.raises(ToolRejected) as checked:
        checked_args(bad)
    message = str(checked.value)
    assert message.startswith(f"{bad.tool}.{bad.op}: argument ")
    for part in names:
        assert part in message
    calls: list[Call] = []
    with pytest.raises(ToolRejected, match=f"^{bad.tool}.{bad.op}: argument "):
        recording_toolbox(calls).call(bad, key="k-1")
    assert calls == []


@pytest.mark.parametrize(
    "unknown", [action("orders.delete", order_id="O-1"), action("fax.send", order_id="O-1")]
)
def test_an_unknown_action_is_refused_before_dispatch(unknown: Action) -> None:
    calls: list[Call] = []
    with pytest.raises(ToolRejected, match=f"{unknown.tool}.{unknown.op} is not a known action"):
        recording_toolbox(calls).call(unknown, key="k-1")
    assert calls == []


@pytest.mark.parametrize(
    "error",
    [TypeError("send() got an unexpected keyword argument 'channel'"), KeyError("customer")],
    ids=["TypeError", "KeyError"],
)
def test_an_adapters_own_error_comes_out_as_unavailable(error: Exception) -> None:
    broken = BrokenNotify(error)
    with pytest.raises(ToolUnavailable) as raised:
        recording_toolbox([], notify=broken).call(
            action("notify.send", order_id="O-1", template="t"), key="k-1"
        )
    assert broken.calls == 1
    assert raised.value.tool == "notify"
    assert f"notify is unavailable: {type(error).__name__}: " in str(raised.value)
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [ToolRejected("no template 't'"), ToolUnavailable("notify", "timed out")],
    ids=["ToolRejected", "ToolUnavailable"],
)
def test_an_adapters_tool_error_passes_through_as_it_is(error: ToolError) -> None:
    broken = BrokenNotify(error)
    with pytest.raises(ToolError) as raised:
        recording_toolbox([], notify=broken).call(
            action("notify.send", order_id="O-1", template="t"), key="k-1"
        )
    assert raised.value is error


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Exdesk]:
    app = Exdesk(Settings(data_dir=tmp_path / "data"))
    yield app
    app.close()


def test_a_plan_whose_notify_adapter_breaks_is_compensated(app: Exdesk) -> None:
    case = example("EX-clean-001")
    order = Order.model_validate(case["order"])
    usecases.load_world(app, "w", World.model_validate(case["world"]))
    usecases.submit(app, "w", order)
    backend = app.backend("w")
    broken = BrokenNotify(TypeError("send() missing 1 required positional argument: 'channel'"))
    desk = app.desk("w")
    desk.toolbox = ToolBox(
        orders=SimulatedOrders(backend),
        inventory=SimulatedInventory(backend),
        customs=SimulatedCustoms(backend),
        payment=SimulatedPayment(backend),
        carrier=SimulatedCarrier(backend),
        notify=broken,
    )
    oid = order.order_id
    plan = Plan(
        kind=Kind.STOCKOUT,
        strategy=Strategy.REALLOCATE_WAREHOUSE,
        tier=Tier.L1,
        actions=(
            action("inventory.reserve", **STOCK, qty=3),
            action("orders.set_fulfillment", order_id=oid, fields={"warehouse_id": "WH-SZX"}),
            action("notify.send", order_id=oid, template="warehouse_changed", data={}),
        ),
    )
    before = desk.order(oid)
    assert before.fulfillment.warehouse_id == "WH-FRA"

    outcome = run_plan(desk, oid, plan)

    assert not outcome.ok
    assert "notify.send failed: notify is unavailable: TypeError" in outcome.detail
    assert "not undone" not in outcome.detail
    assert broken.calls == 1
    assert desk.order(oid) == before
    assert held(app)[("WH-SZX", "TEE-COT-NVY")] == 0
    assert backend.outbox(oid) == []
    entries = list(app.audit.entries())
    called = [e.payload for e in entries if e.event == "tool.called"]
    assert [(p["tool"], p["op"], p.get("compensates")) for p in called] == [
        ("inventory", "reserve", None),
        ("orders", "set_fulfillment", None),
        ("orders", "set_fulfillment", "orders.set_fulfillment"),
        ("inventory", "release", "inventory.reserve"),
    ]
    assert [e.payload["op"] for e in entries if e.event == "tool.failed"] == ["send"]
    [finished] = [e.payload for e in entries if e.event == "plan.finished"]
    assert finished["ok"] is False
    assert app.audit.verify().ok
