"""Simulated backends: every port over one shared, in-memory world.

``SimWorld`` holds the world's facts, its stock (which reservations change), the orders
and an outbox of what was sent to customers. It is a unit of work: the store loads it,
the agent acts on it through the ports, the store saves what changed (``dirty_orders``,
``new_outbox``, ``new_calls``). ``faults`` makes an operation fail, for tests and drills.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import ValidationError

from domain.errors import ToolRejected, ToolUnavailable
from domain.models import Hold, Order, StockRow, World
from tools.ports import Result
from tools.registry import ToolBox

AGENT_NAME = "exdesk"


class Backing(Protocol):
    """Where a SimWorld finds orders and past calls it does not hold yet (the store)."""

    def load_order(self, order_id: str) -> Order | None: ...

    def load_call(self, key: str) -> Result | None: ...


class SimWorld:
    def __init__(
        self,
        world: World,
        orders: dict[str, Order] | None = None,
        calls: dict[str, Result] | None = None,
        backing: Backing | None = None,
    ) -> None:
        self.world = world
        self.backing = backing
        self.stock: dict[tuple[str, str], StockRow] = {
            (row.warehouse_id, row.sku): row for row in world.inventory
        }
        self.orders: dict[str, Order] = dict(orders or {})
        self.calls: dict[str, Result] = dict(calls or {})
        self.faults: dict[str, str] = {}
        self.dirty_orders: set[str] = set()
        self.new_outbox: list[dict[str, Any]] = []
        self.new_calls: dict[str, Result] = {}
        self.stock_changed = False

    # --- the world as it stands now ------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.world.now

    def snapshot(self) -> World:
        """The world with the stock as it stands now."""
        if not self.stock_changed:
            return self.world
        return self.world.model_copy(update={"inventory": tuple(self.stock.values())})

    def mark_saved(self) -> None:
        """Forget what changed: the store has written it."""
        self.world = self.snapshot()
        self.stock_changed = False
        self.dirty_orders.clear()
        self.new_outbox.clear()
        self.new_calls.clear()

    def order(self, order_id: str) -> Order:
        if order_id not in self.orders and self.backing is not None:
            loaded = self.backing.load_order(order_id)
            if loaded is not None:
                self.orders[order_id] = loaded
        try:
            return self.orders[order_id]
        except KeyError:
            raise ToolRejected(f"order {order_id!r} is not known to this world") from None

    def put_order(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self.dirty_orders.add(order.order_id)

    # --- idempotency and faults ------------------------------------------------------------

    def once(self, key: str, name: str, run: Callable[[], Result]) -> Result:
        if key not in self.calls and self.backing is not None:
            earlier = self.backing.load_call(key)
            if earlier is not None:
                self.calls[key] = earlier
        if key in self.calls:
            return {**self.calls[key], "replayed": True}
        if name in self.faults:
            raise ToolUnavailable(name.split(".")[0], self.faults[name])
        try:
            result = run()
        except ValidationError as exc:
            raise ToolRejected(
                f"{name} would make the order invalid: {exc.errors()[0]['msg']}"
            ) from exc
        self.calls[key] = result
        self.new_calls[key] = result
        return result

    def send(self, order_id: str, channel: str, body: dict[str, Any]) -> None:
        self.new_outbox.append(
            {"order_id": order_id, "channel": channel, "at": self.now.isoformat(), **body}
        )


def _with_status(order: Order, holds: tuple[Hold, ...]) -> Order:
    status = order.status
    if status not in ("cancelled", "fulfilled"):
        status = "on_hold" if holds else "open"
    return order.model_copy(update={"holds": holds, "status": status})


def _revalidate(order: Order, update: dict[str, Any]) -> Order:
    """Apply ``update`` (JSON form) and validate the result as an order."""
    data = order.model_dump(mode="json", exclude_none=True)
    data.update(update)
    return Order.model_validate(data)


class SimulatedOrders:
    def __init__(self, sim: SimWorld) -> None:
        self._sim = sim

    def get(self, order_id: str) -> Order:
        return self._sim.order(order_id)

    def place_hold(self, order_id: str, kind: str, reason: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            hold = Hold(kind=kind, reason=reason, since=self._sim.now, by=AGENT_NAME)
            holds = (*(h for h in order.holds if h.kind != kind), hold)
            self._sim.put_order(_with_status(order, holds))
            return {"hold": kind}

        return self._sim.once(key, "orders.place_hold", run)

    def release_hold(self, order_id: str, kind: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            released = [h for h in order.holds if h.kind == kind]
            holds = tuple(h for h in order.holds if h.kind != kind)
            self._sim.put_order(_with_status(order, holds))
            return {"released": [h.model_dump(mode="json") for h in released]}

        return self._sim.once(key, "orders.release_hold", run)

    def set_ship_to(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            before = order.ship_to.model_dump(mode="json", exclude_none=True)
            previous = {name: before.get(name) for name in fields}
            self._sim.put_order(_revalidate(order, {"ship_to": {**before, **fields}}))
            return {"previous": previous}

        return self._sim.once(key, "orders.set_ship_to", run)

    def set_lines(self, order_id: str, changes: dict[str, dict[str, Any]], *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            lines = [line.model_dump(mode="json", exclude_none=True) for line in order.lines]
            known = {line["line_id"] for line in lines}
            unknown = sorted(set(changes) - known)
            if unknown:
                raise ToolRejected(f"order {order_id} has no line {', '.join(unknown)}")
            previous: dict[str, dict[str, Any]] = {}
            for line in lines:
                change = changes.get(line["line_id"])
                if change:
                    previous[line["line_id"]] = {name: line.get(name) for name in change}
                    line.update(change)
            self._sim.put_order(_revalidate(order, {"lines": lines}))
            return {"previous": previous}

        return self._sim.once(key, "orders.set_lines", run)

    def set_fulfillment(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            before = order.fulfillment.model_dump(mode="json", exclude_none=True)
            previous = {name: before.get(name) for name in fields}
            after = {k: v for k, v in {**before, **fields}.items() if v is not None}
            self._sim.put_order(_revalidate(order, {"fulfillment": after}))
            return {"previous": previous}

        return self._sim.once(key, "orders.set_fulfillment", run)

    def set_status(self, order_id: str, status: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            previous = order.status
            updated = order.model_copy(update={"status": status})
            if status == "cancelled":
                updated = updated.model_copy(update={"holds": ()})
            self._sim.put_order(_revalidate(updated, {}))
            return {
                "previous": previous,
                "previous_holds": [h.model_dump(mode="json") for h in order.holds],
            }

        return self._sim.once(key, "orders.set_status", run)


class SimulatedInventory:
    def __init__(self, sim: SimWorld) -> None:
        self._sim = sim

    def available(self, warehouse_id: str, sku: str) -> int:
        row = self._sim.stock.get((warehouse_id, sku))
        return row.available if row else 0

    def _adjust(self, warehouse_id: str, sku: str, delta: int) -> None:
        row = self._sim.stock.get((warehouse_id, sku))
        if row is None:
            raise ToolRejected(f"{warehouse_id} does not stock {sku}")
        reserved = row.reserved + delta
        if reserved < 0 or (delta > 0 and row.available < delta):
            raise ToolRejected(
                f"{warehouse_id} has {row.available} of {sku} available; cannot reserve {delta}"
            )
        self._sim.stock[(warehouse_id, sku)] = row.model_copy(update={"reserved": reserved})
        self._sim.stock_changed = True

    def reserve(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result:
        def run() -> Result:
            self._adjust(warehouse_id, sku, qty)
            return {"reserved": qty}

        return self._sim.once(key, "inventory.reserve", run)

    def release(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result:
        def run() -> Result:
            self._adjust(warehouse_id, sku, -qty)
            return {"released": qty}

        return self._sim.once(key, "inventory.release", run)


def _document(order: Order, document: str) -> dict[str, Any]:
    """The generated document: what a customs broker would need from the order."""
    lines = [
        {
            "sku": line.sku,
            "description": line.description,
            "qty": line.qty,
            "unit_price": str(line.unit_price),
            "hs_code": line.hs_code,
            "origin_country": line.origin_country,
        }
        for line in order.lines
    ]
    total = sum((line.unit_price * line.qty for line in order.lines), Decimal(0))
    return {
        "document": document,
        "order_id": order.order_id,
        "consignee": order.ship_to.model_dump(mode="json", exclude_none=True),
        "currency": order.currency,
        "total": str(total),
        "lines": lines,
    }


class SimulatedCustoms:
    def __init__(self, sim: SimWorld) -> None:
        self._sim = sim

    def _set_documents(self, order: Order, documents: list[str]) -> None:
        customs = order.customs.model_dump(mode="json", exclude_none=True) if order.customs else {}
        customs["documents"] = documents
        self._sim.put_order(_revalidate(order, {"customs": customs}))

    def attach_document(self, order_id: str, document: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            documents = list(order.customs.documents) if order.customs else []
            if document not in documents:
                documents.append(document)
            self._sim.send(order_id, "customs", _document(order, document))
            self._set_documents(order, documents)
            return {"attached": document}

        return self._sim.once(key, "customs.attach_document", run)

    def detach_document(self, order_id: str, document: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            documents = [
                d for d in (order.customs.documents if order.customs else ()) if d != document
            ]
            self._set_documents(order, documents)
            return {"detached": document}

        return self._sim.once(key, "customs.detach_document", run)


class SimulatedPayment:
    """The payment processor. A retry captures the payment (``faults`` make it fail)."""

    def __init__(self, sim: SimWorld) -> None:
        self._sim = sim

    def retry(self, order_id: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            payment = {**order.payment.model_dump(mode="json", exclude_none=True)}
            payment.pop("failure_code", None)
            payment["status"] = "captured"
            self._sim.put_order(_revalidate(order, {"payment": payment}))
            return {"status": "captured"}

        return self._sim.once(key, "payment.retry", run)

    def request_new_method(self, order_id: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            self._sim.send(order_id, "payment_link", {"customer_id": order.customer.id})
            return {"sent": "payment_link"}

        return self._sim.once(key, "payment.request_new_method", run)

    def refund(self, order_id: str, amount: str, currency: str, *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            if Decimal(amount) > order.payment.amount:
                raise ToolRejected(f"refund {amount} exceeds the {order.payment.amount} paid")
            payment = order.payment.model_dump(mode="json", exclude_none=True)
            payment["status"] = "refunded"
            self._sim.put_order(_revalidate(order, {"payment": payment}))
            self._sim.send(order_id, "refund", {"amount": amount, "currency": currency})
            return {"refunded": amount, "currency": currency}

        return self._sim.once(key, "payment.refund", run)


class SimulatedCarrier:
    def __init__(self, sim: SimWorld, orders: SimulatedOrders) -> None:
        self._sim = sim
        self._orders = orders

    def change_service(self, order_id: str, service: str, *, key: str) -> Result:
        def run() -> Result:
            result = self._orders.set_fulfillment(
                order_id, {"service": service}, key=key + ":order"
            )
            return {"service": service, "previous": result["previous"]}

        return self._sim.once(key, "carrier.change_service", run)


class SimulatedNotify:
    def __init__(self, sim: SimWorld) -> None:
        self._sim = sim

    def send(self, order_id: str, template: str, data: dict[str, Any], *, key: str) -> Result:
        def run() -> Result:
            order = self._sim.order(order_id)
            self._sim.send(
                order_id, "customer", {"to": order.customer.id, "template": template, "data": data}
            )
            return {"sent": template}

        return self._sim.once(key, "notify.send", run)


def simulated_toolbox(sim: SimWorld) -> ToolBox:
    """Every port backed by ``sim``."""
    orders = SimulatedOrders(sim)
    return ToolBox(
        orders=orders,
        inventory=SimulatedInventory(sim),
        customs=SimulatedCustoms(sim),
        payment=SimulatedPayment(sim),
        carrier=SimulatedCarrier(sim, orders),
        notify=SimulatedNotify(sim),
    )
