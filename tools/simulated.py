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
from domain.models import Order, World
from store.db import write
from store.orders import read_current, write_current
from store.schema import outbox, tool_calls, worlds
from store.world import WorldRows, WorldSnapshot, hold_stock, release_stock
from tools.effects import EFFECTS
from tools.ports import Result
from tools.registry import ToolBox

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


class SimulatedBackend:
    """The simulated world ``world_id`` of the database behind ``engine``."""

    def __init__(
        self,
        engine: Engine,
        world_id: str,
        *,
        faults: Mapping[str, str] | None = None,
        rows: WorldRows | None = None,
    ) -> None:
        """``rows``: the process's worlds, whose snapshots it keeps (a new one when none)."""
        self.engine = engine
        self.world_id = world_id
        self.faults = dict(faults or {})
        self.facts = SimulatedFacts(rows or WorldRows(engine), world_id)

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

    def change(
        self,
        key: str,
        name: str,
        order_id: str,
        *,
        then: Callable[[_Call, Order], None] | None = None,
        **args: Any,
    ) -> Result:
        """One order-changing operation: its effect (``tools.effects``) on the stored order,
        and ``then`` (a message it sends, given the order as it was), once for ``key``."""
        effect = EFFECTS[tuple(name.split(".", 1))]  # type: ignore[index]

        def run(call: _Call) -> Result:
            before = call.order(order_id)
            after, result = effect(before, args, call.now())
            if then is not None:
                then(call, before)
            call.put(after)
            return result

        return self.once(key, name, run)

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

    def toolbox(self, **others: Any) -> ToolBox:
        """Every port simulated, but those given in ``others`` (port name → its backend)."""
        ports: dict[str, Any] = {
            "orders": SimulatedOrders(self),
            "inventory": SimulatedInventory(self),
            "customs": SimulatedCustoms(self),
            "payment": SimulatedPayment(self),
            "carrier": SimulatedCarrier(self),
            "notify": SimulatedNotify(self),
        }
        return ToolBox(**{**ports, **others})

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

    def snapshot(self) -> WorldSnapshot:
        """The whole world at its current revision (``WorldSnapshot.view`` per order)."""
        return self._rows.snapshot(self._world_id)


class SimulatedOrders:
    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def get(self, order_id: str) -> Order:
        found = read_current_order(self._b, order_id)
        if found is None:
            raise ToolRejected(f"order {order_id!r} is not known to this world")
        return found

    def place_hold(
        self, order_id: str, kind: str, reason: str, *, until: str | None = None, key: str
    ) -> Result:
        extra: dict[str, Any] = {"until": until} if until is not None else {}
        return self._b.change(key, "orders.place_hold", order_id, kind=kind, reason=reason, **extra)

    def release_hold(
        self,
        order_id: str,
        kind: str,
        *,
        restore: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        return self._b.change(key, "orders.release_hold", order_id, kind=kind, restore=restore)

    def set_ship_to(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        return self._b.change(key, "orders.set_ship_to", order_id, fields=fields)

    def set_lines(self, order_id: str, changes: dict[str, dict[str, Any]], *, key: str) -> Result:
        return self._b.change(key, "orders.set_lines", order_id, changes=changes)

    def set_fulfillment(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result:
        return self._b.change(key, "orders.set_fulfillment", order_id, fields=fields)

    def set_status(
        self,
        order_id: str,
        status: str,
        *,
        holds: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        return self._b.change(key, "orders.set_status", order_id, status=status, holds=holds)


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

    def attach_document(self, order_id: str, document: str, *, key: str) -> Result:
        def message(call: _Call, before: Order) -> None:
            call.send(order_id, "customs", _document(before, document))

        return self._b.change(
            key, "customs.attach_document", order_id, then=message, document=document
        )

    def detach_document(self, order_id: str, document: str, *, key: str) -> Result:
        return self._b.change(key, "customs.detach_document", order_id, document=document)


class SimulatedPayment:
    """The payment processor. A retry captures the payment (``faults`` make it fail)."""

    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def retry(self, order_id: str, *, key: str) -> Result:
        return self._b.change(key, "payment.retry", order_id)

    def request_new_method(self, order_id: str, *, key: str) -> Result:
        def run(call: _Call) -> Result:
            order = call.order(order_id)
            call.send(order_id, "payment_link", {"customer_id": order.customer.id})
            return {"sent": "payment_link"}

        return self._b.once(key, "payment.request_new_method", run)

    def refund(self, order_id: str, amount: str, currency: str, *, key: str) -> Result:
        def message(call: _Call, before: Order) -> None:
            call.send(order_id, "refund", {"amount": amount, "currency": currency})

        return self._b.change(
            key, "payment.refund", order_id, then=message, amount=amount, currency=currency
        )


class SimulatedCarrier:
    def __init__(self, backend: SimulatedBackend) -> None:
        self._b = backend

    def change_service(self, order_id: str, service: str, *, key: str) -> Result:
        return self._b.change(key, "carrier.change_service", order_id, service=service)


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
