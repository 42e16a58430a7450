"""What detectors and playbooks read: the order, its world, the policy and the checkers."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from domain.errors import InputError
from domain.models import Event, Order, ShippingRate, Warehouse, World
from domain.policy import Policy
from tools.ports import Address, Classification


@dataclass(frozen=True)
class Checkers:
    address: Address
    hs: Classification


@dataclass
class Context:
    """One order in its world. Indexes are built once per context, when first read."""

    order: Order
    world: World
    policy: Policy
    checkers: Checkers
    _warehouses: dict[str, Warehouse] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._warehouses = {w.id: w for w in self.world.warehouses}
        self._check_references()

    @cached_property
    def _rates(self) -> dict[tuple[str, str, str], ShippingRate]:
        return {(r.warehouse_id, r.country_code, r.service): r for r in self.world.shipping_rates}

    @cached_property
    def _stock(self) -> dict[tuple[str, str], int]:
        return {(s.warehouse_id, s.sku): s.available for s in self.world.inventory}

    # --- facts --------------------------------------------------------------------------

    @property
    def assigned(self) -> str:
        return self.order.fulfillment.warehouse_id

    @property
    def shipped(self) -> bool:
        """The order has left the warehouse: only what events report about it applies."""
        return self.order.status == "fulfilled"

    @property
    def destination(self) -> str:
        return self.order.ship_to.country_code

    def warehouse_country(self, warehouse_id: str) -> str | None:
        wh = self._warehouses.get(warehouse_id)
        return wh.country_code if wh else None

    @property
    def ship_from(self) -> str | None:
        return self.warehouse_country(self.assigned)

    @property
    def cross_border(self) -> bool:
        return self.ship_from is not None and self.ship_from != self.destination

    @property
    def warehouse_ids(self) -> list[str]:
        return [w.id for w in self.world.warehouses]

    def available(self, warehouse_id: str, sku: str) -> int:
        return self._stock.get((warehouse_id, sku), 0)

    def rate(self, warehouse_id: str, service: str | None = None) -> ShippingRate | None:
        service = service or self.order.fulfillment.service
        return self._rates.get((warehouse_id, self.destination, service))

    def events(self, event_type: str) -> list[Event]:
        return sorted(
            (
                e
                for e in self.world.events
                if e.type == event_type and e.order_id == self.order.order_id
            ),
            key=lambda e: e.at,
        )

    def _check_references(self) -> None:
        """The order must point at things its world has; say which and what to do."""
        order = self.order
        if order.fulfillment.warehouse_id not in self._warehouses:
            known = ", ".join(sorted(self._warehouses)) or "none"
            raise InputError(
                f"order {order.order_id}: fulfillment.warehouse_id "
                f"{order.fulfillment.warehouse_id!r} is not a warehouse of the world "
                f"(known: {known}); fix the order or add the warehouse to the world"
            )
        if order.currency not in self.world.fx_to_usd:
            raise InputError(
                f"order {order.order_id}: currency {order.currency} has no rate in the "
                "world's fx_to_usd; add one"
            )

    def required_documents(self) -> list[str]:
        """Customs documents a cross-border shipment of this order needs, by policy."""
        needed = list(self.policy.customs.always_required)
        for line in self.order.lines:
            for doc in self.policy.documents_for_hs(line.hs_code):
                if doc not in needed:
                    needed.append(doc)
        return needed

    def attached_documents(self) -> set[str]:
        return set(self.order.customs.documents) if self.order.customs else set()

    def to_usd(self, amount: Decimal) -> Decimal:
        """An amount in the order's currency, in USD."""
        return (amount * self.world.fx_to_usd[self.order.currency]).quantize(Decimal("0.01"))

    def order_total(self) -> Decimal:
        return sum((line.unit_price * line.qty for line in self.order.lines), Decimal(0))
