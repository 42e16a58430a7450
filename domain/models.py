"""Pydantic models of the contract: orders, the world they live in, findings, plans, decisions.

Every model is frozen. Money is held as ``Decimal``; it is written out as a JSON number
(an integer when whole), the form order files use. Timestamps must carry an offset.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)


def _money_out(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


Money = Annotated[Decimal, PlainSerializer(_money_out, when_used="json")]


def _country_code(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValueError(
            f"{value!r} is not an ISO 3166-1 alpha-2 code (two capital letters, e.g. DE)"
        )
    return value


def _currency(value: str) -> str:
    if len(value) != 3 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValueError(f"{value!r} is not an ISO 4217 code (three capital letters, e.g. EUR)")
    return value


CountryCode = Annotated[str, AfterValidator(_country_code)]
CurrencyCode = Annotated[str, AfterValidator(_currency)]
Timestamp = AwareDatetime


class Frozen(BaseModel):
    """Base for the contract's records: immutable, unknown fields kept as given."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Strict(BaseModel):
    """Base for exdesk's own records: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Kind(StrEnum):
    BAD_ADDRESS = "bad_address"
    CUSTOMS_BLOCK = "customs_block"
    STOCKOUT = "stockout"
    PAYMENT_FAILED = "payment_failed"
    CARRIER_DELAY = "carrier_delay"
    DUPLICATE_ORDER = "duplicate_order"


class Strategy(StrEnum):
    ADDRESS_AUTOCORRECT = "address_autocorrect"
    ADDRESS_CONFIRM_WITH_CUSTOMER = "address_confirm_with_customer"
    CUSTOMS_ATTACH_DOCUMENT = "customs_attach_document"
    CUSTOMS_FIX_HS_CODE = "customs_fix_hs_code"
    REALLOCATE_WAREHOUSE = "reallocate_warehouse"
    SPLIT_SHIPMENT = "split_shipment"
    BACKORDER = "backorder"
    SUBSTITUTE_ITEM = "substitute_item"
    PAYMENT_RETRY = "payment_retry"
    PAYMENT_REQUEST_NEW_METHOD = "payment_request_new_method"
    NOTIFY_DELAY = "notify_delay"
    UPGRADE_SHIPPING = "upgrade_shipping"
    HOLD_DUPLICATE = "hold_duplicate"
    MANUAL_REVIEW = "manual_review"
    CANCEL_ORDER = "cancel_order"


# Strategies that leave the order waiting on the customer or a person: they place a hold
# of their own, and executing them does not resolve the exception.
WAITING_STRATEGIES = frozenset(
    {
        Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER,
        Strategy.PAYMENT_REQUEST_NEW_METHOD,
        Strategy.HOLD_DUPLICATE,
        Strategy.MANUAL_REVIEW,
    }
)


class Tier(StrEnum):
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"

    @property
    def level(self) -> int:
        return int(self.value[1])

    @classmethod
    def at_least(cls, a: Tier, b: Tier) -> Tier:
        return a if a.level >= b.level else b


# --- the order (contract §1) -------------------------------------------------------------


class Customer(Frozen):
    id: str = Field(min_length=1)
    tier: Literal["vip", "regular", "new"]
    name: str | None = None
    email: str | None = None
    phone: str | None = None


ADDRESS_FIELDS = (
    "name",
    "street_address",
    "city",
    "city_area",
    "country_area",
    "postal_code",
    "sorting_code",
    "country_code",
    "phone",
)


class Address(Frozen):
    country_code: CountryCode
    name: str | None = None
    street_address: str | None = None
    city: str | None = None
    city_area: str | None = None
    country_area: str | None = None
    postal_code: str | None = None
    sorting_code: str | None = None
    phone: str | None = None

    def fields(self) -> dict[str, str]:
        """The address fields that are set, as plain strings."""
        out: dict[str, str] = {}
        for name in ADDRESS_FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


class Line(Frozen):
    line_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    qty: int = Field(gt=0, strict=True)
    unit_price: Money = Field(ge=0)
    description: str = ""
    hs_code: str | None = None
    origin_country: str | None = None


PaymentStatus = Literal["authorized", "captured", "pending", "failed", "refunded", "voided"]


class Payment(Frozen):
    status: PaymentStatus
    method: str
    amount: Money = Field(ge=0)
    failure_code: str | None = None


class Shipment(Strict):
    warehouse_id: str
    items: tuple[tuple[str, int], ...]  # (sku, qty)


class Fulfillment(Frozen):
    warehouse_id: str = Field(min_length=1)
    service: Literal["economy", "standard", "express"]
    carrier: str | None = None
    promised_by: Timestamp
    # exdesk's additions, written by executed plans:
    shipments: tuple[Shipment, ...] | None = None
    backorder_eta: Timestamp | None = None
    expected_delivery: Timestamp | None = None


class Customs(Frozen):
    incoterm: str | None = None
    documents: tuple[str, ...] = ()
    declared_value: Money | None = None


class Hold(Frozen):
    kind: str
    reason: str
    since: Timestamp
    by: str


OrderStatus = Literal["open", "on_hold", "cancelled", "fulfilled"]


class Order(Frozen):
    order_id: str = Field(min_length=1)
    channel: str
    created_at: Timestamp
    customer: Customer
    ship_to: Address
    lines: tuple[Line, ...] = Field(min_length=1)
    currency: CurrencyCode
    payment: Payment
    fulfillment: Fulfillment
    customs: Customs | None = None
    notes: str | None = None
    status: OrderStatus = "open"
    holds: tuple[Hold, ...] = ()

    @field_validator("lines")
    @classmethod
    def _unique_line_ids(cls, lines: tuple[Line, ...]) -> tuple[Line, ...]:
        seen: set[str] = set()
        for line in lines:
            if line.line_id in seen:
                raise ValueError(f"line_id {line.line_id!r} appears twice; line ids must be unique")
            seen.add(line.line_id)
        return lines

    def qty_by_sku(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.lines:
            out[line.sku] = out.get(line.sku, 0) + line.qty
        return out

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# --- the world (contract §2) -------------------------------------------------------------


class Warehouse(Frozen):
    id: str
    country_code: CountryCode
    country_area: str | None = None
    city: str | None = None


class StockRow(Frozen):
    warehouse_id: str
    sku: str
    on_hand: int = Field(ge=0)
    reserved: int = Field(default=0, ge=0)

    @property
    def available(self) -> int:
        return max(0, self.on_hand - self.reserved)


class Replenishment(Frozen):
    warehouse_id: str
    sku: str
    qty: int = Field(gt=0)
    eta: Timestamp


class CatalogItem(Frozen):
    sku: str
    description: str = ""
    category: str | None = None
    hs_code: str | None = None
    substitutes: tuple[str, ...] = ()


class ShippingRate(Frozen):
    warehouse_id: str
    country_code: str
    service: Literal["economy", "standard", "express"]
    cost_usd: Money = Field(ge=0)
    transit_days: int = Field(ge=0)


_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)

# What each known event type must carry in ``data`` (contract §2); other types pass through.
EVENT_DATA: dict[str, tuple[str, ...]] = {
    "carrier_exception": ("code",),
    "customs_hold": ("reason",),
    "carrier_delay": ("new_eta",),
    "payment_failed": (),
}


class Event(Frozen):
    type: str
    order_id: str
    at: Timestamp
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_data(self) -> Event:
        for name in EVENT_DATA.get(self.type, ()):
            value = self.data.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"a {self.type} event needs data.{name} (a string)")
        if self.type == "carrier_delay":
            try:
                _TIMESTAMP.validate_python(self.data["new_eta"])
            except ValidationError:
                raise ValueError(
                    f"data.new_eta {self.data['new_eta']!r} is not an RFC 3339 timestamp "
                    "with an offset"
                ) from None
        return self

    @property
    def new_eta(self) -> datetime | None:
        """A carrier_delay event's new ETA."""
        raw = self.data.get("new_eta")
        return None if raw is None else _TIMESTAMP.validate_python(raw)


class World(Frozen):
    now: Timestamp
    warehouses: tuple[Warehouse, ...] = ()
    inventory: tuple[StockRow, ...] = ()
    replenishment: tuple[Replenishment, ...] = ()
    catalog: tuple[CatalogItem, ...] = ()
    shipping_rates: tuple[ShippingRate, ...] = ()
    fx_to_usd: dict[str, Money] = Field(default_factory=lambda: {"USD": Decimal(1)})

    @field_validator("fx_to_usd")
    @classmethod
    def _usd_is_one(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        if rates.get("USD", Decimal(1)) != 1:
            raise ValueError("USD must be 1 (rates are to USD)")
        return {**rates, "USD": Decimal(1)}

    events: tuple[Event, ...] = ()
    recent_orders: tuple[Order, ...] = ()


# --- what the agent produces -------------------------------------------------------------


class Finding(Strict):
    """One exception kind raised on an order, with the facts the planners need."""

    kind: Kind
    order_id: str
    summary: str
    evidence: tuple[str, ...] = ()
    facts: dict[str, Any] = Field(default_factory=dict)


class Action(Strict):
    """One call on a tool port. ``tool`` is the port, ``op`` the operation."""

    tool: str
    op: str
    args: dict[str, Any] = Field(default_factory=dict)


class Plan(Strict):
    kind: Kind
    strategy: Strategy
    actions: tuple[Action, ...]
    tier: Tier = Tier.L1
    cost_usd: Decimal = Decimal(0)
    rank_key: str = ""
    score: float = 0.0
    rationale: str = ""
    similar_cases: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()


DecisionStatus = Literal["executed", "awaiting_approval", "failed", "skipped", "rejected"]


class Decision(Strict):
    status: DecisionStatus
    strategy: Strategy | None = None
    tier: Tier | None = None
    proposal_id: str | None = None
    detail: str | None = None


class Approval(Strict):
    by: str = Field(min_length=1)
    role: Literal["approver", "supervisor"]
    at: datetime
    reason: str | None = None
