"""Simulated backends: every port of one world, over the store's SQL state.

Each operation is one transaction: the change it makes (an order's body, a stock row, a message
in the outbox) and the record of its idempotency key commit together, so a call either happened
once, with its result remembered, or not at all. A second call with the same key returns the
first one's result with ``replayed: true``. Stock moves by conditional updates, so processes
sharing the database can never oversell.

``faults`` make operations misbehave, for tests and drills: ``{"notify.send": "fail"}`` (or
``"fail:why"``) raises ``ToolUnavailable``; ``"crash-before"`` and ``"crash-after"`` kill the
process (SIGKILL) before the call or right after it committed.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from domain.errors import ToolRejected, ToolUnavailable
from domain.models import Hold, Order, World
from store.db import write
from store.orders import read_current, write_current
from store.schema import outbox, tool_calls, worlds
from store.world import WorldRows, hold_stock, release_stock
from tools.ports import Result
from tools.registry import ToolBox

AGENT_NAME = "exdesk"
FAULT_MODES = ("fail", "crash-before", "crash-after")


def parse_faults(spec: str | None) -> dict[str, str]:
    """``op=mode,op=mode`` (as in ``EXDESK_SIMULATED_FAULTS``) as a faults mapping."""
    faults: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        name, _, mode = item.partition("=")
        if mode.split(":", 1)[0] not in FAULT_MODES:
            raise ValueError(f"fault {item!r}: write op=mode with mode one of {FAULT_MODES}")
        faults[name.strip()] = mode.strip()
    return faults


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


class _Call:
    """One operation inside its transaction: the order it changes, messages it sends."""

    def __init__(self, backend: SimulatedBackend, conn: Connection, key: str) -> None:
        self.backend, self.conn, self.key = backend, conn, key

    def order(self, order_id: str) -> Order:
        found = read_current(self.conn, self.backend.world_id, order_id, lock=True)
        if found is None:
            raise ToolRejected(f"order {order_id!r} is not known to this world")
        return found

    def now(self) -> datetime:
        """The world's clock (``World.now``): simulated time, not the wall clock."""
        raw = self.conn.execute(
            select(worlds.c.now).where(worlds.c.world_id == self.backend.world_id)
        ).scalar()
        return datetime.fromisoformat(raw) if raw else datetime.now(UTC)

    def put(self, order: Order) -> None:
        write_current(self.conn, self.backend.world_id, order)

    def send(self, order_id: str, channel: str, body: dict[str, Any]) -> None:
        message = {"order_id": order_id, "channel": channel, "at": self.now().isoformat(), **body}
        self.conn.execute(
            insert(outbox).values(
                world_id=self.backend.world_id,
                order_id=order_id,
                channel=channel,
                call_key=self.key,
                body=json.dumps(message, ensure_ascii=False),
            )
        )

    def set_fulfillment(self, order_id: str, fields: dict[str, Any]) -> Result:
        order = self.order(order_id)
        before = order.fulfillment.model_dump(mode="json", exclude_none=True)
        previous = {name: before.get(name) for name in fields}
        after = {k: v for k, v in {**before, **fields}.items() if v is not None}
        self.put(_revalidate(order, {"fulfillment": after}))
        return {"previous": previous}


class SimulatedBackend:
    """The simulated world ``world_id`` of the database behind ``engine``."""

    def __init__(
        self, engine: Engine, world_id: str, *, faults: Mapping[str, str] | None = None
    ) -> None:
        self.engine = engine
        self.world_id = world_id
        self.faults = dict(faults or {})
        self.facts = SimulatedFacts(WorldRows(engine), world_id)

    def once(self, key: str, name: str, run: Callable[[_Call], Result]) -> Result:
        """Run ``name`` once for ``key``; a repeat returns the first result, replayed.

        The key is claimed (its row inserted) first in the operation's transaction: a repeat
        running at the same moment in another process waits on that row and then replays.
        A refused operation rolls back, claim included, so its key stays free.
        """
        fault = self.faults.get(name, "")
        if fault.startswith("fail"):
            raise ToolUnavailable(name.split(".")[0], fault.partition(":")[2] or "simulated fault")
        if fault == "crash-before" and self._earlier(key, name) is None:
            os.kill(os.getpid(), signal.SIGKILL)

        def work(conn: Connection) -> tuple[Result, bool]:
            earlier = self._earlier(key, name, conn)
            if earlier is not None:
                return earlier, True
            conn.execute(
                insert(tool_calls).values(
                    key=key, world_id=self.world_id, op=name, result="{}", at=datetime.now(UTC)
                )
            )
            result = run(_Call(self, conn, key))
            conn.execute(
                update(tool_calls)
                .where(tool_calls.c.key == key)
                .values(result=json.dumps(result, ensure_ascii=False))
            )
            return result, False

        try:
            result, replayed = write(self.engine, work)
        except IntegrityError:  # the same call, made at the same moment, committed first
            earlier = self._earlier(key, name)
            if earlier is None:
                raise
            return earlier
        except ValidationError as exc:
            raise ToolRejected(
                f"{name} would make the order invalid: {exc.errors()[0]['msg']}"
            ) from exc
        if fault == "crash-after" and not replayed:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def _earlier(self, key: str, name: str, conn: Connection | None = None) -> Result | None:
        query = select(tool_calls.c.result, tool_calls.c.op, tool_calls.c.world_id).where(
            tool_calls.c.key == key
        )
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None:
            return None
        if (row.op, row.world_id) != (name, self.world_id):
            raise ToolRejected(
                f"key {key!r} was used for {row.op} in world {row.world_id}, not for {name} in "
                f"{self.world_id}; every call needs a key of its own"
            )
        return {**json.loads(row.result), "replayed": True}

    def toolbox(self) -> ToolBox:
        return ToolBox(
            orders=SimulatedOrders(self),
            inventory=SimulatedInventory(self),
            customs=SimulatedCustoms(self),
            payment=SimulatedPayment(self),
            carrier=SimulatedCarrier(self),
            notify=SimulatedNotify(self),
        )

    def outbox(self, order_id: str | None = None) -> list[dict[str, Any]]:
        query = select(outbox.c.body).where(outbox.c.world_id == self.world_id)
        if order_id is not None:
            query = query.where(outbox.c.order_id == order_id)
        with self.engine.connect() as conn:
            return [json.loads(b) for b in conn.execute(query.order_by(outbox.c.id)).scalars()]


class SimulatedFacts:
    def __init__(self, rows: WorldRows, world_id: str) -> None:
        self._rows = rows
        self._world_id = world_id

    def view(self, order: Order) -> World:
        return self._rows.view(self._world_id, order)


class SimulatedOrders:
    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def get(self, order_id: str) -> Order:
        found = read_current_order(self._b, order_id)
        if found is None:
            raise ToolRejected(f"order {order_id!r} is not known to this world")
        return found

    def place_hold(self, order_id: str, kind: str, reason: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            replaced = [h.model_dump(mode="json") for h in order.holds if h.kind == kind]
            hold = Hold(kind=kind, reason=reason, since=call.now(), by=AGENT_NAME)
            holds = (*(h for h in order.holds if h.kind != kind), hold)
            call.put(_with_status(order, holds))
            return {"hold": kind, "replaced": replaced}

        return self._b.once(key, "orders.place_hold", run)

    def release_hold(
        self,
        order_id: str,
        kind: str,
        *,
        restore: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            released = [h for h in order.holds if h.kind == kind]
            holds = tuple(h for h in order.holds if h.kind != kind)
            holds += tuple(Hold.model_validate(h) for h in restore or ())
            call.put(_with_status(order, holds))
            return {"released": [h.model_dump(mode="json") for h in released]}

        return self._b.once(key, "orders.release_hold", run)

    def set_ship_to(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            before = order.ship_to.model_dump(mode="json", exclude_none=True)
            previous = {name: before.get(name) for name in fields}
            after = {k: v for k, v in {**before, **fields}.items() if v is not None}
            call.put(_revalidate(order, {"ship_to": after}))
            return {"previous": previous}

        return self._b.once(key, "orders.set_ship_to", run)

    def set_lines(self, order_id: str, changes: dict[str, dict[str, Any]], *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            lines = [line.model_dump(mode="json", exclude_none=True) for line in order.lines]
            unknown = sorted(set(changes) - {line["line_id"] for line in lines})
            if unknown:
                raise ToolRejected(f"order {order_id} has no line {', '.join(unknown)}")
            previous: dict[str, dict[str, Any]] = {}
            for line in lines:
                change = changes.get(line["line_id"])
                if change:
                    previous[line["line_id"]] = {name: line.get(name) for name in change}
                    line.update(change)
            call.put(_revalidate(order, {"lines": lines}))
            return {"previous": previous}

        return self._b.once(key, "orders.set_lines", run)

    def set_fulfillment(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        return self._b.once(
            key, "orders.set_fulfillment", lambda call: call.set_fulfillment(order_id, fields)
        )

    def set_status(
        self,
        order_id: str,
        status: str,
        *,
        holds: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            updated = order.model_copy(update={"status": status})
            if status == "cancelled":
                updated = updated.model_copy(update={"holds": ()})
            if holds is not None:
                restored = tuple(Hold.model_validate(h) for h in holds)
                updated = updated.model_copy(update={"holds": restored})
            call.put(_revalidate(updated, {}))
            return {
                "previous": order.status,
                "previous_holds": [h.model_dump(mode="json") for h in order.holds],
            }

        return self._b.once(key, "orders.set_status", run)


def read_current_order(backend: SimulatedBackend, order_id: str) -> Order | None:
    with backend.engine.connect() as conn:
        return read_current(conn, backend.world_id, order_id)


class SimulatedInventory:
    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def reserve(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            try:
                hold_stock(call.conn, self._b.world_id, warehouse_id, sku, qty)
            except (LookupError, ValueError) as exc:
                raise ToolRejected(f"{exc}; cannot reserve {qty}") from None
            return {"reserved": qty}

        return self._b.once(key, "inventory.reserve", run)

    def release(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            try:
                release_stock(call.conn, self._b.world_id, warehouse_id, sku, qty)
            except ValueError as exc:
                raise ToolRejected(str(exc)) from None
            return {"released": qty}

        return self._b.once(key, "inventory.release", run)


class SimulatedCustoms:
    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    @staticmethod
    def _set_documents(call: _Call, order: Order, documents: list[str]) -> None:
        customs = order.customs.model_dump(mode="json", exclude_none=True) if order.customs else {}
        customs["documents"] = documents
        call.put(_revalidate(order, {"customs": customs}))

    def attach_document(self, order_id: str, document: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            documents = list(order.customs.documents) if order.customs else []
            was_attached = document in documents
            if not was_attached:
                documents.append(document)
            call.send(order_id, "customs", _document(order, document))
            self._set_documents(call, order, documents)
            return {"attached": document, "was_attached": was_attached}

        return self._b.once(key, "customs.attach_document", run)

    def detach_document(self, order_id: str, document: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            kept = [d for d in (order.customs.documents if order.customs else ()) if d != document]
            self._set_documents(call, order, kept)
            return {"detached": document}

        return self._b.once(key, "customs.detach_document", run)


class SimulatedPayment:
    """The payment processor. A retry captures the payment (``faults`` make it fail)."""

    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def retry(self, order_id: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            payment = order.payment.model_dump(mode="json", exclude_none=True)
            payment.pop("failure_code", None)
            payment["status"] = "captured"
            call.put(_revalidate(order, {"payment": payment}))
            return {"status": "captured"}

        return self._b.once(key, "payment.retry", run)

    def request_new_method(self, order_id: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            call.send(order_id, "payment_link", {"customer_id": order.customer.id})
            return {"sent": "payment_link"}

        return self._b.once(key, "payment.request_new_method", run)

    def refund(self, order_id: str, amount: str, currency: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            if currency != order.currency:
                raise ToolRejected(f"refund in {currency}, but the order is in {order.currency}")
            before = order.payment.refunded or Decimal(0)
            total = before + Decimal(amount)
            if total > order.payment.amount:
                raise ToolRejected(
                    f"refund {amount} with {before} refunded before exceeds the "
                    f"{order.payment.amount} paid"
                )
            payment = order.payment.model_dump(mode="json", exclude_none=True)
            payment["refunded"] = str(total)  # how much, in all: the status says that some was
            payment["status"] = "refunded"
            call.put(_revalidate(order, {"payment": payment}))
            call.send(order_id, "refund", {"amount": amount, "currency": currency})
            return {"refunded": amount, "currency": currency}

        return self._b.once(key, "payment.refund", run)


class SimulatedCarrier:
    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def change_service(self, order_id: str, service: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            result = call.set_fulfillment(order_id, {"service": service})
            return {"service": service, "previous": result["previous"]}

        return self._b.once(key, "carrier.change_service", run)


class SimulatedNotify:
    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def send(self, order_id: str, template: str, data: dict[str, Any], *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            call.send(
                order_id, "customer", {"to": order.customer.id, "template": template, "data": data}
            )
            return {"sent": template}

        return self._b.once(key, "notify.send", run)
