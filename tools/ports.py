"""One Protocol per outside system. Adapters are ``<Backend><Port>``.

``WorldFacts`` is read-only: the agent reads the world through it. The other ports act.

Every operation that changes something takes ``key``, an idempotency key: a second call
with the same key does nothing and returns the first call's result. Results are plain
JSON-able dicts; where a step can be undone the result says what it replaced, so that
the registry can build the compensation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from domain.models import Order, World
from store.world import WorldSnapshot
from tools.address import AddressCheck, AddressRepair

Result = dict[str, Any]


class WorldFacts(Protocol):
    """What the world knows that bears on one order: warehouses, stock of its SKUs and their
    substitutes, replenishment, catalog, rates to its destination, FX, its events, the
    customer's recent orders, and the clock (``World.now``)."""

    def view(self, order: Order) -> World: ...


@runtime_checkable
class WorldSnapshots(Protocol):
    """Facts that can hand over the whole world at once (the store's), so that a batch of
    orders is viewed with no query per order (``store.world.WorldSnapshot.view``)."""

    def snapshot(self) -> WorldSnapshot: ...


class Address(Protocol):
    """Address validation, and the repairs the contract allows."""

    def check(self, ship_to: Mapping[str, Any]) -> AddressCheck: ...

    def repair(self, ship_to: Mapping[str, Any]) -> AddressRepair | None: ...


class Classification(Protocol):
    """HS code validity."""

    def is_valid(self, code: str | None) -> bool: ...


class Orders(Protocol):
    def get(self, order_id: str) -> Order: ...

    def place_hold(
        self, order_id: str, kind: str, reason: str, *, until: str | None = None, key: str
    ) -> Result:
        """Hold the order (replacing its hold of ``kind``). ``until`` (YYYY-MM-DD, contract
        §8.1): the date the hold is meant to last until; exdesk's sweep lifts it then. Passed
        only when set, so a backend that never holds until a date need not take it."""
        ...

    def release_hold(
        self,
        order_id: str,
        kind: str,
        *,
        restore: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        """Lift the order's hold of ``kind``; ``restore``: holds to put back in its place (the
        ones a ``place_hold`` replaced, when it is undone)."""
        ...

    def set_ship_to(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result: ...

    def set_lines(self, order_id: str, changes: dict[str, dict[str, Any]], *, key: str) -> Result:
        """``changes``: line_id → fields to set on that line."""
        ...

    def set_fulfillment(self, order_id: str, fields: dict[str, Any], *, key: str) -> Result: ...

    def set_status(
        self,
        order_id: str,
        status: str,
        *,
        holds: list[dict[str, Any]] | None = None,
        key: str,
    ) -> Result:
        """``holds``: set the order's holds to exactly these (an undone cancel puts its holds
        back); left as they are when None (a cancel clears them)."""
        ...


class Inventory(Protocol):
    """Stock reservations. What is available is a fact: read it through ``WorldFacts``."""

    def reserve(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result: ...

    def release(self, warehouse_id: str, sku: str, qty: int, *, key: str) -> Result: ...


class Customs(Protocol):
    def attach_document(self, order_id: str, document: str, *, key: str) -> Result:
        """Generate ``document`` from the order and attach it."""
        ...

    def detach_document(self, order_id: str, document: str, *, key: str) -> Result: ...


class Payment(Protocol):
    def retry(self, order_id: str, *, key: str) -> Result: ...

    def request_new_method(self, order_id: str, *, key: str) -> Result: ...

    def refund(self, order_id: str, amount: str, currency: str, *, key: str) -> Result: ...


class Carrier(Protocol):
    def change_service(self, order_id: str, service: str, *, key: str) -> Result: ...


class Notify(Protocol):
    def send(self, order_id: str, template: str, data: dict[str, Any], *, key: str) -> Result: ...
