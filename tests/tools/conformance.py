"""The conformance spec of the tool ports: what every backend of them must do.

A backend is plugged in the way LangGraph's checkpointer conformance suite takes a
checkpointer factory: subclass :class:`PortsConformance` in a test module and give it a
``backend`` fixture that yields a fresh, isolated :class:`PortsBackend` (an empty world of its
own: nothing another test wrote is visible) and cleans up after the yield::

    class TestHttpBackend(PortsConformance):
        known_failures = {}  # spec test name → why it fails on this backend (strict xfail)

        @pytest.fixture
        def backend(self, http_server: Server) -> Iterator[PortsBackend]:
            ports = HttpPorts(http_server.url, world_id=uuid4().hex)
            yield ports
            ports.close()

The spec seeds one small world and two orders, acts only through ``ToolBox.call`` (arguments
checked as the agent's are, under the caller's idempotency key), and reads effects back only
through the ports: the order from the orders port, stock from ``WorldFacts.view``, and what
was sent from ``PortsBackend.messages``.

What it holds every backend to, for every action of ``tools.registry.ACTIONS``:

- the action does what its port says, and nothing else (no other order, message or stock row
  changes);
- a repeat under the same key returns the first result with ``replayed: true`` and does
  nothing, even after the state has moved on;
- its undo (``ToolBox.undo_for``) restores the orders and stock as they were, sending nothing;
  an action without one says so;
- a refused call (unknown order, a line the order lacks, more stock than is there, more than
  is held, a refund above what was paid) raises ``ToolRejected``, changes nothing and keeps no
  record of its key: once the state allows it, the same key acts.

And for ``WorldFacts.view``: it holds the facts that bear on the order and no others, with
exdesk's reservations counted as reserved; concurrent reservations never oversell, and one key
from two threads acts once.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol

import pytest

from domain.errors import ToolRejected
from domain.models import Action, Order, World
from tools.ports import Result, WorldFacts
from tools.registry import ACTIONS, ToolBox

# --- the seeded world ------------------------------------------------------------------------

NOW = "2026-11-20T09:00:00+00:00"
PROMISED = "2026-12-02T09:00:00+00:00"


def _recent(order_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "channel": "web",
        "created_at": "2026-11-01T10:00:00+00:00",
        "customer": {"id": customer_id, "tier": "regular"},
        "ship_to": {"country_code": "NL", "city": "Utrecht"},
        "lines": [{"line_id": f"{order_id}-1", "sku": "SKU-2", "qty": 1, "unit_price": 5}],
        "currency": "EUR",
        "payment": {"status": "captured", "method": "card", "amount": 5},
        "fulfillment": {"warehouse_id": "WH-A", "service": "standard", "promised_by": PROMISED},
        "status": "fulfilled",
    }


def _rate(warehouse_id: str, country: str, service: str, cost: str) -> dict[str, Any]:
    return {
        "warehouse_id": warehouse_id,
        "country_code": country,
        "service": service,
        "cost_usd": cost,
        "transit_days": 3,
    }


WORLD = World.model_validate(
    {
        "now": NOW,
        "warehouses": [
            {"id": "WH-A", "country_code": "DE", "city": "Frankfurt am Main"},
            {"id": "WH-B", "country_code": "US", "country_area": "NJ", "city": "Newark"},
        ],
        "inventory": [
            {"warehouse_id": "WH-A", "sku": "SKU-1", "on_hand": 10, "reserved": 2},
            {"warehouse_id": "WH-B", "sku": "SKU-1", "on_hand": 3, "reserved": 0},
            {"warehouse_id": "WH-A", "sku": "SKU-2", "on_hand": 5, "reserved": 0},
            {"warehouse_id": "WH-A", "sku": "SKU-3", "on_hand": 4, "reserved": 1},
            {"warehouse_id": "WH-B", "sku": "SKU-X", "on_hand": 20, "reserved": 0},
        ],
        "replenishment": [
            {"warehouse_id": "WH-A", "sku": "SKU-1", "qty": 5, "eta": "2026-11-27T09:00:00Z"},
            {"warehouse_id": "WH-B", "sku": "SKU-X", "qty": 9, "eta": "2026-11-28T09:00:00Z"},
        ],
        "catalog": [
            {"sku": "SKU-1", "description": "Cotton T-shirt", "substitutes": ["SKU-2"]},
            {"sku": "SKU-2", "description": "Linen T-shirt"},
            {"sku": "SKU-3", "description": "Green tea 250g"},
            {"sku": "SKU-X", "description": "Backpack 20L"},
        ],
        "shipping_rates": [
            _rate("WH-A", "NL", "standard", "9"),
            _rate("WH-A", "NL", "express", "22.5"),
            _rate("WH-B", "NL", "economy", "9.8"),
            _rate("WH-A", "US", "standard", "14"),
            _rate("WH-B", "US", "standard", "6"),
            _rate("WH-B", "US", "express", "15"),
        ],
        "fx_to_usd": {"USD": 1, "EUR": "1.08"},
        "events": [
            {
                "type": "carrier_delay",
                "order_id": "ORD-1",
                "at": NOW,
                "data": {"new_eta": "2026-12-05T09:00:00+00:00"},
            },
            {"type": "payment_failed", "order_id": "ORD-2", "at": NOW},
            {"type": "carrier_exception", "order_id": "ORD-1", "at": NOW, "data": {"code": "X1"}},
        ],
        "recent_orders": [
            _recent("OLD-1", "C-1"),
            _recent("OLD-2", "C-2"),
            _recent("OLD-3", "C-1"),
        ],
    }
)

ORD_1 = Order.model_validate(
    {
        "order_id": "ORD-1",
        "channel": "shopify",
        "created_at": "2026-11-20T07:00:00+00:00",
        "customer": {"id": "C-1", "tier": "vip"},
        "ship_to": {
            "name": "Daan de Vries",
            "country_code": "NL",
            "city": "Amsterdam",
            "postal_code": "1012 JS",
            "street_address": "Dam 1",
        },
        "lines": [
            {
                "line_id": "L1",
                "sku": "SKU-1",
                "qty": 2,
                "unit_price": 10,
                "hs_code": "610910",
                "origin_country": "CN",
            },
            {"line_id": "L2", "sku": "SKU-3", "qty": 1, "unit_price": 5},
        ],
        "currency": "EUR",
        "payment": {"status": "captured", "method": "card", "amount": "25.00"},
        "fulfillment": {
            "warehouse_id": "WH-A",
            "service": "standard",
            "carrier": "DHL",
            "promised_by": PROMISED,
        },
        "customs": {"incoterm": "DDP", "documents": ["commercial_invoice"], "declared_value": 25},
    }
)

ORD_2 = Order.model_validate(
    {
        "order_id": "ORD-2",
        "channel": "web",
        "created_at": "2026-11-20T08:00:00+00:00",
        "customer": {"id": "C-2", "tier": "regular"},
        "ship_to": {
            "name": "Ann Lee",
            "country_code": "US",
            "country_area": "CA",
            "city": "Los Angeles",
            "postal_code": "90001",
            "street_address": "1 Main St",
        },
        "lines": [{"line_id": "L1", "sku": "SKU-X", "qty": 1, "unit_price": 40}],
        "currency": "USD",
        "payment": {
            "status": "failed",
            "method": "card",
            "amount": 40,
            "failure_code": "card_declined",
        },
        "fulfillment": {"warehouse_id": "WH-B", "service": "economy", "promised_by": PROMISED},
    }
)

ORDERS = {o.order_id: o for o in (ORD_1, ORD_2)}
UNKNOWN = "ORD-9"  # never seeded, until a refusal's fix submits it


def act(name: str, order_id: str = ORD_1.order_id, **args: Any) -> Action:
    """``tool.op`` with ``args``; every tool but inventory acts on an order (ORD-1 unless told)."""
    tool, op = name.split(".")
    if tool != "inventory":
        args = {"order_id": order_id, **args}
    return Action(tool=tool, op=op, args=args)


def retarget(action: Action, order_id: str) -> Action:
    return action.model_copy(update={"args": {**action.args, "order_id": order_id}})


def changed(order: Order, **update: Any) -> Order:
    """``order`` as resubmitted with ``update`` (JSON form) applied."""
    return Order.model_validate({**order.as_json(), **update})


# --- what can be observed --------------------------------------------------------------------

Row = tuple[str, str]  # (warehouse_id, sku)


@dataclass(frozen=True)
class Observed:
    """Every known order as it stands, what was sent about each, and stock as views show it."""

    orders: dict[str, dict[str, Any]]
    messages: dict[str, list[dict[str, Any]]]
    stock: dict[Row, tuple[int, int]]  # (on_hand, reserved)

    def order(self, order_id: str) -> Order:
        return Order.model_validate(self.orders[order_id])


@dataclass(frozen=True)
class Effect:
    """One call: its result, and what was observed before and after it."""

    result: Result
    before: Observed
    after: Observed
    order_id: str | None

    @property
    def old(self) -> Order:
        assert self.order_id is not None
        return self.before.order(self.order_id)

    @property
    def new(self) -> Order:
        assert self.order_id is not None
        return self.after.order(self.order_id)

    @property
    def sent(self) -> list[dict[str, Any]]:
        assert self.order_id is not None
        earlier = len(self.before.messages.get(self.order_id, []))
        return self.after.messages.get(self.order_id, [])[earlier:]

    def moved(self) -> dict[Row, int]:
        """Change in what is available, per stock row that changed."""
        out: dict[Row, int] = {}
        for row in self.before.stock.keys() | self.after.stock.keys():
            on_a, res_a = self.after.stock.get(row, (0, 0))
            on_b, res_b = self.before.stock.get(row, (0, 0))
            assert on_a == on_b, f"{row}: on_hand is the world's, not exdesk's to change"
            if res_a != res_b:
                out[row] = res_b - res_a
        return out


def changes(effect: Effect) -> set[str]:
    """What the call changed: ``order`` and ``messages`` of its own order, ``order:ID`` and
    ``messages:ID`` of others, ``stock:WH/SKU`` per stock row."""
    before, after, own = effect.before, effect.after, effect.order_id
    out: set[str] = set()
    for order_id in before.orders.keys() | after.orders.keys():
        if before.orders.get(order_id) != after.orders.get(order_id):
            out.add("order" if order_id == own else f"order:{order_id}")
    for order_id in before.messages.keys() | after.messages.keys():
        if before.messages.get(order_id, []) != after.messages.get(order_id, []):
            out.add("messages" if order_id == own else f"messages:{order_id}")
    for wh, sku in before.stock.keys() | after.stock.keys():
        if before.stock.get((wh, sku)) != after.stock.get((wh, sku)):
            out.add(f"stock:{wh}/{sku}")
    return out


def same_but(old: Order, new: Order, *fields: str) -> None:
    """Nothing of the order changed but ``fields``."""

    def rest(order: Order) -> dict[str, Any]:
        return {k: v for k, v in order.as_json().items() if k not in fields}

    assert rest(new) == rest(old)


# --- every action: what it does --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    action: Action
    changes: frozenset[str]
    check: Callable[[Effect], None]  # what the port promises, on the effect
    undoable: bool
    setup: tuple[Action, ...] = ()  # brings the order to where the action applies
    move_on: Callable[[Harness], None] | None = None  # after it, when it has no undo


def _placed(e: Effect) -> None:
    assert [(h.kind, h.reason) for h in e.new.holds] == [("stockout", "waiting for stock")]
    assert e.new.status == "on_hold"
    same_but(e.old, e.new, "holds", "status")


def _released(e: Effect) -> None:
    assert [h.kind for h in e.old.holds] == ["stockout", "bad_address"]
    assert [h.kind for h in e.new.holds] == ["bad_address"]
    assert e.new.status == "on_hold"
    same_but(e.old, e.new, "holds")


NEW_ADDRESS = {"street_address": "Damrak 1", "postal_code": "1012 LG", "phone": "+31205550100"}


def _readdressed(e: Effect) -> None:
    assert "phone" not in e.old.ship_to.fields()
    assert e.new.ship_to.fields() == {**e.old.ship_to.fields(), **NEW_ADDRESS}
    same_but(e.old, e.new, "ship_to")


def _relined(e: Effect) -> None:
    old, new = e.old.lines, e.new.lines
    assert new[0] == old[0]
    assert old[1].hs_code is None
    assert (new[1].qty, new[1].hs_code) == (2, "090210")
    assert new[1].model_copy(update={"qty": old[1].qty, "hs_code": None}) == old[1]
    same_but(e.old, e.new, "lines")


def _refulfilled(e: Effect) -> None:
    old, new = e.old.fulfillment, e.new.fulfillment
    assert old.expected_delivery is None
    assert new.warehouse_id == "WH-B"
    assert new.expected_delivery == datetime.fromisoformat("2026-11-25T12:00:00+00:00")
    assert new.model_copy(update={"warehouse_id": old.warehouse_id, "expected_delivery": None}) == (
        old
    )
    same_but(e.old, e.new, "fulfillment")


def _cancelled(e: Effect) -> None:
    assert (e.old.status, e.new.status) == ("open", "cancelled")
    assert e.new.holds == ()
    same_but(e.old, e.new, "status")


def _reserved(e: Effect) -> None:
    assert e.moved() == {("WH-A", "SKU-1"): -3}


def _released_stock(e: Effect) -> None:
    assert e.moved() == {("WH-A", "SKU-1"): 2}


def _attached(e: Effect) -> None:
    assert e.old.customs is not None and e.new.customs is not None
    assert e.new.customs.documents == (*e.old.customs.documents, "certificate_of_origin")
    assert e.new.customs.model_copy(update={"documents": e.old.customs.documents}) == e.old.customs
    same_but(e.old, e.new, "customs")
    [message] = e.sent
    assert (message["channel"], message["document"]) == ("customs", "certificate_of_origin")
    assert message["order_id"] == e.order_id


def _detached(e: Effect) -> None:
    assert e.old.customs is not None and e.new.customs is not None
    assert (e.old.customs.documents, e.new.customs.documents) == (("commercial_invoice",), ())
    same_but(e.old, e.new, "customs")


def _captured(e: Effect) -> None:
    assert (e.old.payment.status, e.new.payment.status) == ("failed", "captured")
    assert e.new.payment.failure_code is None
    assert (e.new.payment.method, e.new.payment.amount) == (e.old.payment.method, Decimal(40))
    same_but(e.old, e.new, "payment")


def _link_sent(e: Effect) -> None:
    [message] = e.sent
    assert (message["channel"], message["order_id"]) == ("payment_link", e.order_id)


def _refunded(e: Effect) -> None:
    assert (e.old.payment.status, e.new.payment.status) == ("captured", "refunded")
    assert e.new.payment.amount == e.old.payment.amount
    same_but(e.old, e.new, "payment")
    [message] = e.sent
    assert message["channel"] == "refund"
    assert (Decimal(message["amount"]), message["currency"]) == (Decimal(10), "EUR")


def _reserviced(e: Effect) -> None:
    assert (e.old.fulfillment.service, e.new.fulfillment.service) == ("standard", "express")
    assert e.new.fulfillment.model_copy(update={"service": "standard"}) == e.old.fulfillment
    same_but(e.old, e.new, "fulfillment")


def _notified(e: Effect) -> None:
    [message] = e.sent
    assert message["channel"] == "customer"
    assert (message["to"], message["template"]) == (e.old.customer.id, "delay_notice")
    assert message["data"] == {"eta": "2026-12-05", "lines": ["L1"]}


def _running(*actions: Action) -> Callable[[Harness], None]:
    """Runs ``actions``, each under a key of its own."""
    return lambda h: h.run(actions, f"run:{uuid.uuid4().hex[:8]}")


def _resubmit_unpaid(h: Harness) -> None:
    h.submit(changed(ORD_2, notes="card updated"))  # starts afresh: the payment failed again


ORDER, MESSAGES = frozenset({"order"}), frozenset({"messages"})
CASES: dict[str, Case] = {
    "orders.place_hold": Case(
        act("orders.place_hold", kind="stockout", reason="waiting for stock"),
        ORDER,
        _placed,
        undoable=True,
    ),
    "orders.release_hold": Case(
        act("orders.release_hold", kind="stockout"),
        ORDER,
        _released,
        undoable=False,
        setup=(
            act("orders.place_hold", kind="stockout", reason="waiting for stock"),
            act("orders.place_hold", kind="bad_address", reason="postal code"),
        ),
        move_on=_running(act("orders.place_hold", kind="stockout", reason="again")),
    ),
    "orders.set_ship_to": Case(
        act("orders.set_ship_to", fields=NEW_ADDRESS), ORDER, _readdressed, undoable=True
    ),
    "orders.set_lines": Case(
        act("orders.set_lines", changes={"L2": {"qty": 2, "hs_code": "090210"}}),
        ORDER,
        _relined,
        undoable=True,
    ),
    "orders.set_fulfillment": Case(
        act(
            "orders.set_fulfillment",
            fields={"warehouse_id": "WH-B", "expected_delivery": "2026-11-25T12:00:00+00:00"},
        ),
        ORDER,
        _refulfilled,
        undoable=True,
    ),
    "orders.set_status": Case(
        act("orders.set_status", status="cancelled"), ORDER, _cancelled, undoable=True
    ),
    "inventory.reserve": Case(
        act("inventory.reserve", warehouse_id="WH-A", sku="SKU-1", qty=3),
        frozenset({"stock:WH-A/SKU-1"}),
        _reserved,
        undoable=True,
    ),
    "inventory.release": Case(
        act("inventory.release", warehouse_id="WH-A", sku="SKU-1", qty=2),
        frozenset({"stock:WH-A/SKU-1"}),
        _released_stock,
        undoable=False,
        setup=(act("inventory.reserve", warehouse_id="WH-A", sku="SKU-1", qty=5),),
    ),
    "customs.attach_document": Case(
        act("customs.attach_document", document="certificate_of_origin"),
        ORDER | MESSAGES,
        _attached,
        undoable=True,
    ),
    "customs.detach_document": Case(
        act("customs.detach_document", document="commercial_invoice"),
        ORDER,
        _detached,
        undoable=False,
        move_on=_running(act("customs.attach_document", document="commercial_invoice")),
    ),
    "payment.retry": Case(
        act("payment.retry", order_id=ORD_2.order_id),
        ORDER,
        _captured,
        undoable=False,
        move_on=_resubmit_unpaid,
    ),
    "payment.request_new_method": Case(
        act("payment.request_new_method", order_id=ORD_2.order_id),
        MESSAGES,
        _link_sent,
        undoable=False,
    ),
    "payment.refund": Case(
        act("payment.refund", amount="10.00", currency="EUR"),
        ORDER | MESSAGES,
        _refunded,
        undoable=False,
    ),
    "carrier.change_service": Case(
        act("carrier.change_service", service="express"), ORDER, _reserviced, undoable=True
    ),
    "notify.send": Case(
        act(
            "notify.send",
            template="delay_notice",
            data={"eta": "2026-12-05", "lines": ["L1"]},
        ),
        MESSAGES,
        _notified,
        undoable=False,
    ),
}
UNDOABLE = sorted(name for name, case in CASES.items() if case.undoable)


# --- refusals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    action: Action
    says: str  # the refusal names what was wrong
    fix: Callable[[Harness], None]  # changes the state so that the action applies
    then: frozenset[str]  # what the same call changes once it applies
    check: Callable[[Effect], None]
    setup: tuple[Action, ...] = ()


def _unknown_order(case: Case) -> Refusal:
    """The case's action on an order nobody submitted; fixed by submitting it."""
    base = ORDERS[case.action.args["order_id"]]

    def fix(h: Harness) -> None:
        h.submit(changed(base, order_id=UNKNOWN))
        h.run([retarget(a, UNKNOWN) for a in case.setup], "fix")

    return Refusal(retarget(case.action, UNKNOWN), UNKNOWN, fix, case.changes, case.check)


def _add_line(h: Harness) -> None:
    extra = {"line_id": "L9", "sku": "SKU-2", "qty": 1, "unit_price": 5}
    h.submit(changed(ORD_1, lines=[*ORD_1.as_json()["lines"], extra]))


def _line_nine(e: Effect) -> None:
    assert [(line.line_id, line.qty) for line in e.new.lines] == [("L1", 2), ("L2", 1), ("L9", 2)]


def _stock_moved(row: Row, by: int) -> Callable[[Effect], None]:
    def check(e: Effect) -> None:
        assert e.moved() == {row: by}

    return check


def _stock_wh_b_sku_2(h: Harness) -> None:
    """Reload the world with WH-B stocking SKU-2."""
    world = WORLD.model_dump(mode="json")
    row = {"warehouse_id": "WH-B", "sku": "SKU-2", "on_hand": 2, "reserved": 0}
    h.backend.load_world(World.model_validate({**world, "inventory": [*world["inventory"], row]}))


def _refund_of(amount: str, currency: str) -> Callable[[Effect], None]:
    def check(e: Effect) -> None:
        assert e.new.payment.status == "refunded"
        [message] = e.sent
        assert (Decimal(message["amount"]), message["currency"]) == (Decimal(amount), currency)

    return check


RESERVE_3 = act("inventory.reserve", warehouse_id="WH-A", sku="SKU-1", qty=3)

# Each action's refusal of where it cannot apply (an order nobody submitted; stock the world
# lacks or exdesk does not hold), and the fix after which the same key must act.
STRANGERS: dict[str, Refusal] = {
    name: _unknown_order(case) for name, case in CASES.items() if "order_id" in case.action.args
}
STRANGERS |= {
    "inventory.reserve": Refusal(
        act("inventory.reserve", warehouse_id="WH-B", sku="SKU-2", qty=1),
        "SKU-2",
        _stock_wh_b_sku_2,
        frozenset({"stock:WH-B/SKU-2"}),
        _stock_moved(("WH-B", "SKU-2"), -1),
    ),
    "inventory.release": Refusal(
        act("inventory.release", warehouse_id="WH-B", sku="SKU-1", qty=1),
        "SKU-1",
        _running(act("inventory.reserve", warehouse_id="WH-B", sku="SKU-1", qty=1)),
        frozenset({"stock:WH-B/SKU-1"}),
        _stock_moved(("WH-B", "SKU-1"), 1),
    ),
}

# Refusals that depend on what the state holds.
REFUSALS: dict[str, Refusal] = {
    "orders.set_lines: a line the order lacks": Refusal(
        act("orders.set_lines", changes={"L9": {"qty": 2}}),
        "L9",
        _add_line,
        ORDER,
        _line_nine,
    ),
    "inventory.reserve: more than is available": Refusal(
        RESERVE_3,
        "SKU-1",
        _running(act("inventory.release", warehouse_id="WH-A", sku="SKU-1", qty=6)),
        frozenset({"stock:WH-A/SKU-1"}),
        _stock_moved(("WH-A", "SKU-1"), -3),
        setup=(act("inventory.reserve", warehouse_id="WH-A", sku="SKU-1", qty=6),),
    ),
    "inventory.release: more than is held": Refusal(
        act("inventory.release", warehouse_id="WH-A", sku="SKU-1", qty=5),
        "SKU-1",
        _running(RESERVE_3),
        frozenset({"stock:WH-A/SKU-1"}),
        _stock_moved(("WH-A", "SKU-1"), 5),
        setup=(act("inventory.reserve", warehouse_id="WH-A", sku="SKU-1", qty=2),),
    ),
    "payment.refund: more than was paid": Refusal(
        act("payment.refund", amount="30.00", currency="EUR"),
        "30",
        lambda h: h.submit(changed(ORD_1, payment={**ORD_1.as_json()["payment"], "amount": 30})),
        ORDER | MESSAGES,
        _refund_of("30.00", "EUR"),
    ),
    "payment.refund: in another currency": Refusal(
        act("payment.refund", amount="10.00", currency="USD"),
        "USD",
        lambda h: h.submit(changed(ORD_1, currency="USD")),
        ORDER | MESSAGES,
        _refund_of("10.00", "USD"),
    ),
}

# Changes the backend must refuse because the order would no longer be valid: (bad, corrected).
INVALID: dict[str, tuple[Action, Action]] = {
    "orders.set_ship_to: country_code": (
        act("orders.set_ship_to", fields={"country_code": "Holland"}),
        act("orders.set_ship_to", fields={"country_code": "BE"}),
    ),
    "orders.set_lines: qty 0": (
        act("orders.set_lines", changes={"L1": {"qty": 0}}),
        act("orders.set_lines", changes={"L1": {"qty": 1}}),
    ),
    "orders.set_lines: qty as text": (
        act("orders.set_lines", changes={"L1": {"qty": "3"}}),
        act("orders.set_lines", changes={"L1": {"qty": 3}}),
    ),
    "orders.set_fulfillment: service": (
        act("orders.set_fulfillment", fields={"service": "overnight"}),
        act("orders.set_fulfillment", fields={"service": "express"}),
    ),
    "orders.set_fulfillment: promised_by": (
        act("orders.set_fulfillment", fields={"promised_by": "next week"}),
        act("orders.set_fulfillment", fields={"promised_by": "2026-12-09T09:00:00+00:00"}),
    ),
}


# --- the backend and the harness -------------------------------------------------------------


class PortsBackend(Protocol):
    """What the spec needs of a backend under test, for one world."""

    @property
    def toolbox(self) -> ToolBox:
        """The acting ports, dispatched by the registry."""
        ...

    @property
    def facts(self) -> WorldFacts: ...

    def load_world(self, world: World) -> None:
        """Take a world file's facts and stock (a reload keeps exdesk's reservations)."""
        ...

    def submit(self, order: Order) -> None:
        """Take an order as submitted; a changed submission starts it afresh."""
        ...

    def messages(self, order_id: str) -> list[dict[str, Any]]:
        """What was sent about the order, oldest first. Each message carries ``order_id`` and
        ``channel``: ``customer`` (with ``to``, ``template``, ``data``), ``payment_link``,
        ``refund`` (with ``amount``, ``currency``) or ``customs`` (with ``document``)."""
        ...


@dataclass
class Harness:
    """One test's seeded world: calls under the test's own keys, and what can be observed."""

    backend: PortsBackend
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    order_ids: set[str] = field(default_factory=lambda: {UNKNOWN})

    def seed(self) -> Harness:
        self.backend.load_world(WORLD)
        for order in ORDERS.values():
            self.submit(order)
        return self

    def submit(self, order: Order) -> None:
        self.backend.submit(order)
        self.order_ids.add(order.order_id)

    def call(self, action: Action, key: str) -> Result:
        return self.backend.toolbox.call(action, key=f"{self.prefix}:{key}")

    def run(self, actions: Iterable[Action], name: str) -> None:
        for i, action in enumerate(actions):
            self.call(action, f"{name}:{i}")

    def get(self, order_id: str) -> Order:
        return self.backend.toolbox.orders.get(order_id)

    def observe(self) -> Observed:
        orders: dict[str, dict[str, Any]] = {}
        messages: dict[str, list[dict[str, Any]]] = {}
        stock: dict[Row, tuple[int, int]] = {}
        for order_id in sorted(self.order_ids):
            messages[order_id] = self.backend.messages(order_id)
            try:
                order = self.get(order_id)
            except ToolRejected:
                continue
            orders[order_id] = order.as_json()
            for row in self.backend.facts.view(order).inventory:
                stock[(row.warehouse_id, row.sku)] = (row.on_hand, row.reserved)
        return Observed(orders, messages, stock)

    def effect(self, action: Action, key: str) -> Effect:
        before = self.observe()
        result = self.call(action, key)
        return Effect(result, before, self.observe(), action.args.get("order_id"))

    def available(self, warehouse_id: str, sku: str) -> int:
        """What the views of the known orders say is available at that stock row."""
        on_hand, reserved = self.observe().stock[(warehouse_id, sku)]
        return on_hand - reserved


def _rows(rows: Iterable[Any]) -> list[str]:
    """Records as sorted canonical JSON, to compare regardless of order."""
    return sorted(
        json.dumps(r.model_dump(mode="json", exclude_none=True), sort_keys=True) for r in rows
    )


# --- the spec --------------------------------------------------------------------------------


class PortsConformance:
    """The spec. A subclass gives ``backend``; ``known_failures`` marks that backend's known
    bugs (spec test name → reason) as strict xfails, so that a fix shows up as XPASS."""

    known_failures: ClassVar[Mapping[str, str]] = {}

    @pytest.fixture
    def backend(self) -> Iterator[PortsBackend]:
        raise NotImplementedError("give the conformance class a `backend` fixture")

    @pytest.fixture(autouse=True)
    def _known_failure(self, request: pytest.FixtureRequest) -> None:
        reason = self.known_failures.get(request.node.originalname)
        if reason is not None:
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))

    @pytest.fixture
    def ports(self, backend: PortsBackend) -> Harness:
        return Harness(backend).seed()

    # --- every action ------------------------------------------------------------------------

    def test_the_spec_covers_every_action(self) -> None:
        assert set(CASES) == {f"{tool}.{op}" for tool, op in ACTIONS}
        assert set(STRANGERS) == set(CASES)

    def _refused(self, ports: Harness, refusal: Refusal, key: str) -> None:
        """``refusal``'s action is refused under ``key`` and changes nothing."""
        ports.run(refusal.setup, f"{key}:setup")
        before = ports.observe()
        with pytest.raises(ToolRejected, match=refusal.says):
            ports.call(refusal.action, key)
        assert ports.observe() == before

    def _acts_once_fixed(self, ports: Harness, refusal: Refusal, key: str) -> None:
        """Once the state allows it, the refused ``key`` acts: no record of it was kept."""
        refusal.fix(ports)
        effect = ports.effect(refusal.action, key)
        assert not effect.result.get("replayed", False)
        assert changes(effect) == refusal.then
        refusal.check(effect)

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_an_action_does_what_its_port_says_once(self, ports: Harness, name: str) -> None:
        """Refused where it cannot apply; where it can, it does what its port says and nothing
        else; the same key replays it, even once the state has moved on; and the key it was
        refused under acts once the state allows."""
        case, stranger = CASES[name], STRANGERS[name]
        self._refused(ports, stranger, "stranger")

        ports.run(case.setup, "setup")
        effect = ports.effect(case.action, "op")
        first = effect.result
        assert not first.get("replayed", False)
        assert json.loads(json.dumps(first)) == first  # plain JSON
        assert changes(effect) == case.changes
        case.check(effect)
        undo = ports.backend.toolbox.undo_for(case.action, first)
        assert (undo is not None) == case.undoable
        # The same key again: the first result, replayed, and nothing more happens.
        again = ports.call(case.action, "op")
        assert again == {**first, "replayed": True}
        assert ports.observe() == effect.after
        # Move the state on (its undo, or redo what it undid): a repeat that acted would show.
        if undo:
            for n, step in enumerate(undo):
                ports.call(step, f"move{n}")
        elif case.move_on is not None:
            case.move_on(ports)
        moved = ports.observe()
        assert ports.call(case.action, "op") == again
        assert ports.observe() == moved

        self._acts_once_fixed(ports, stranger, "stranger")

    def test_a_hold_until_a_date_keeps_its_date(self, ports: Harness) -> None:
        """``place_hold(until=...)`` (contract §8.1 hold_until_date): the hold carries the date;
        without ``until`` a hold carries none (and a backend is never handed ``until=None``)."""
        dated = act("orders.place_hold", kind="customer_request", reason="away", until="2026-12-20")
        effect = ports.effect(dated, "dated")
        assert [(h.kind, h.until) for h in effect.new.holds] == [("customer_request", "2026-12-20")]
        plain = ports.effect(act("orders.place_hold", kind="stockout", reason="x"), "plain")
        assert [h.until for h in plain.new.holds if h.kind == "stockout"] == [None]
        undo = ports.backend.toolbox.undo_for(dated, effect.result)
        assert undo
        for n, step in enumerate(undo):
            ports.call(step, f"undo{n}")
        assert [h.kind for h in ports.backend.toolbox.orders.get(ORD_1.order_id).holds] == [
            "stockout"
        ]

    @pytest.mark.parametrize("name", UNDOABLE)
    def test_undo_restores_what_was_there(self, ports: Harness, name: str) -> None:
        case = CASES[name]
        ports.run(case.setup, "setup")
        before = ports.observe()
        result = ports.call(case.action, "op")
        done = ports.observe()
        undo = ports.backend.toolbox.undo_for(case.action, result)
        assert undo
        first = [ports.call(step, f"undo{n}") for n, step in enumerate(undo)]
        undone = ports.observe()
        assert undone.orders == before.orders
        assert undone.stock == before.stock
        assert undone.messages == done.messages  # an undo sends nothing; what was sent stays
        again = [ports.call(step, f"undo{n}") for n, step in enumerate(undo)]
        assert again == [{**r, "replayed": True} for r in first]
        assert ports.observe() == undone

    # --- refusals ----------------------------------------------------------------------------

    @pytest.mark.parametrize("name", sorted(REFUSALS))
    def test_a_refused_call_changes_nothing_and_keeps_no_record(
        self, ports: Harness, name: str
    ) -> None:
        self._refused(ports, REFUSALS[name], "op")
        self._acts_once_fixed(ports, REFUSALS[name], "op")

    @pytest.mark.parametrize("name", sorted(INVALID))
    def test_a_change_that_would_make_the_order_invalid_is_refused(
        self, ports: Harness, name: str
    ) -> None:
        bad, good = INVALID[name]
        before = ports.observe()
        with pytest.raises(ToolRejected):
            ports.call(bad, "op")
        assert ports.observe() == before
        corrected = ports.effect(good, "op")  # no record was kept: the key is still free
        assert not corrected.result.get("replayed", False)
        assert changes(corrected) == {"order"}

    def test_an_unknown_order_is_refused_by_get(self, ports: Harness) -> None:
        with pytest.raises(ToolRejected, match=UNKNOWN):
            ports.get(UNKNOWN)
        assert ports.get(ORD_1.order_id) == ORD_1

    # --- undo and refunds where the prior state had more in it -------------------------------

    def _undo_restores(self, ports: Harness, action: Action) -> None:
        before = ports.observe()
        result = ports.call(action, "op")
        undo = ports.backend.toolbox.undo_for(action, result)
        assert undo is not None
        for n, step in enumerate(undo):
            ports.call(step, f"undo{n}")
        assert ports.observe().orders == before.orders

    def test_undoing_a_hold_that_replaced_one_puts_the_earlier_one_back(
        self, ports: Harness
    ) -> None:
        ports.call(act("orders.place_hold", kind="stockout", reason="first"), "first")
        self._undo_restores(ports, act("orders.place_hold", kind="stockout", reason="second"))

    def test_undoing_a_cancel_puts_the_holds_back(self, ports: Harness) -> None:
        ports.call(act("orders.place_hold", kind="duplicate_order", reason="awaiting"), "hold")
        self._undo_restores(ports, act("orders.set_status", status="cancelled"))

    def test_undoing_an_attach_of_a_present_document_keeps_it(self, ports: Harness) -> None:
        assert ORD_1.customs is not None
        assert "commercial_invoice" in ORD_1.customs.documents
        self._undo_restores(ports, act("customs.attach_document", document="commercial_invoice"))

    def test_refunds_together_never_exceed_what_was_paid(self, ports: Harness) -> None:
        assert ORD_1.payment.amount == Decimal(25)
        ports.call(act("payment.refund", amount="20.00", currency="EUR"), "first")
        before = ports.observe()
        with pytest.raises(ToolRejected):
            ports.call(act("payment.refund", amount="10.00", currency="EUR"), "second")
        assert ports.observe() == before

    # --- the facts port ----------------------------------------------------------------------

    @pytest.mark.parametrize("order_id", sorted(ORDERS))
    def test_a_view_holds_what_bears_on_the_order_and_nothing_else(
        self, ports: Harness, order_id: str
    ) -> None:
        order = ports.get(order_id)
        view = ports.backend.facts.view(order)
        own = set(order.qty_by_sku())
        skus = own | {s for c in WORLD.catalog if c.sku in own for s in c.substitutes}
        assert view.now == WORLD.now
        assert {w.id for w in view.warehouses} == {w.id for w in WORLD.warehouses}
        assert view.fx_to_usd == WORLD.fx_to_usd
        assert _rows(view.inventory) == _rows(r for r in WORLD.inventory if r.sku in skus)
        assert {c.sku for c in view.catalog} == skus
        assert _rows(view.replenishment) == _rows(r for r in WORLD.replenishment if r.sku in skus)
        country = order.ship_to.country_code
        assert _rows(view.shipping_rates) == _rows(
            r for r in WORLD.shipping_rates if r.country_code == country
        )
        assert list(view.events) == [e for e in WORLD.events if e.order_id == order_id]
        assert {o.order_id for o in view.recent_orders} == {
            o.order_id for o in WORLD.recent_orders if o.customer.id == order.customer.id
        }

    def test_a_reservation_shows_in_the_next_view_as_reserved(self, ports: Harness) -> None:
        seeded = next(r for r in WORLD.inventory if (r.warehouse_id, r.sku) == ("WH-A", "SKU-1"))
        order = ports.get(ORD_1.order_id)

        def row() -> tuple[int, int]:
            [found] = [
                (r.on_hand, r.reserved)
                for r in ports.backend.facts.view(order).inventory
                if (r.warehouse_id, r.sku) == ("WH-A", "SKU-1")
            ]
            return found

        assert row() == (seeded.on_hand, seeded.reserved)
        ports.call(RESERVE_3, "reserve")
        assert row() == (seeded.on_hand, seeded.reserved + 3)
        ports.call(act("inventory.release", warehouse_id="WH-A", sku="SKU-1", qty=3), "release")
        assert row() == (seeded.on_hand, seeded.reserved)

    # --- concurrency -------------------------------------------------------------------------

    def test_concurrent_reservations_never_oversell(self, ports: Harness) -> None:
        assert ports.available("WH-B", "SKU-X") == 20
        reserve = act("inventory.reserve", warehouse_id="WH-B", sku="SKU-X", qty=1)

        def worker(thread: int) -> list[bool]:
            done: list[bool] = []
            for i in range(5):
                try:
                    ports.call(reserve, f"t{thread}:{i}")
                    done.append(True)
                except ToolRejected:
                    done.append(False)
            return done

        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = [ok for done in pool.map(worker, range(8)) for ok in done]
        assert (outcomes.count(True), outcomes.count(False)) == (20, 20)
        assert ports.available("WH-B", "SKU-X") == 0

    def _race(self, ports: Harness, action: Action, key: str) -> list[Result]:
        """``action`` under one key from two threads released at the same moment."""
        barrier = threading.Barrier(2)

        def worker(_: int) -> Result:
            barrier.wait()
            return ports.call(action, key)

        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(worker, range(2)))

    def test_one_key_from_two_threads_at_once_acts_once(self, ports: Harness) -> None:
        reserve = act("inventory.reserve", warehouse_id="WH-B", sku="SKU-X", qty=2)
        for round_ in range(1, 6):
            results = self._race(ports, reserve, f"race:{round_}")
            first, second = sorted(results, key=lambda r: bool(r.get("replayed")))
            assert not first.get("replayed", False)
            assert second == {**first, "replayed": True}
            assert ports.available("WH-B", "SKU-X") == 20 - 2 * round_

    def test_one_key_from_two_threads_taking_the_last_units_acts_once(self, ports: Harness) -> None:
        """The repeat must replay, not run again and find the stock gone."""
        take_all = act("inventory.reserve", warehouse_id="WH-B", sku="SKU-X", qty=20)
        give_back = act("inventory.release", warehouse_id="WH-B", sku="SKU-X", qty=20)
        refused: list[str] = []
        for round_ in range(10):  # the threads meet inside the call in most rounds
            try:
                self._race(ports, take_all, f"race:{round_}")
            except ToolRejected as exc:
                refused.append(str(exc))
            assert ports.available("WH-B", "SKU-X") == 0
            ports.call(give_back, f"give-back:{round_}")
        assert refused == []
