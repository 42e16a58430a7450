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
    BeforeValidator,
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


def _rfc3339_text(value: Any) -> Any:
    """Timestamps are RFC 3339 text with an offset (contract): a bare number is not one."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"{value!r} is not an RFC 3339 timestamp; write it as text with an offset, "
            'e.g. "2026-11-20T09:00:00+08:00"'
        )
    return value


# The longest id (order, line, SKU, customer, warehouse) exdesk takes, the same on every
# database.
MAX_ID = 200

CountryCode = Annotated[str, AfterValidator(_country_code)]
CurrencyCode = Annotated[str, AfterValidator(_currency)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]


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
    CUSTOMER_REQUEST = "customer_request"  # contract §8.1: what a model read in the notes


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
    HOLD_UNTIL_DATE = "hold_until_date"  # contract §8.1: hold, released on a date


# Strategies that leave the order waiting on the customer or a person: they place a hold
# of their own, and executing them does not resolve the exception.
WAITING_STRATEGIES = frozenset(
    {
        Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER,
        Strategy.PAYMENT_REQUEST_NEW_METHOD,
        Strategy.HOLD_DUPLICATE,
        Strategy.MANUAL_REVIEW,
        Strategy.HOLD_UNTIL_DATE,  # waits for a date: the sweep releases it then
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


# Contract §8.1: the tiers below which no policy may put a customer_request plan.
REQUEST_FLOORS = {
    Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER: Tier.L1,
    Strategy.HOLD_UNTIL_DATE: Tier.L1,
    Strategy.CANCEL_ORDER: Tier.L3,
    Strategy.MANUAL_REVIEW: Tier.L2,
}
# hold_until_date is at least L2 when its date is more than this many days after promised_by.
HOLD_LATE_DAYS = 30


# --- the order (contract §1) -------------------------------------------------------------


class Customer(Frozen):
    id: Id
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
    line_id: Id
    sku: Id
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
    # exdesk's addition, written by refunds: how much has been refunded so far.
    refunded: Money | None = Field(default=None, ge=0)


class Shipment(Strict):
    warehouse_id: Id
    items: tuple[tuple[str, int], ...]  # (sku, qty)


class Fulfillment(Frozen):
    warehouse_id: Id
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
    until: str | None = None  # YYYY-MM-DD: held until that date (contract §8.1 hold_until_date)


OrderStatus = Literal["open", "on_hold", "cancelled", "fulfilled"]


class Order(Frozen):
    order_id: Id
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
    id: Id
    country_code: CountryCode
    country_area: str | None = None
    city: str | None = None


class StockRow(Frozen):
    warehouse_id: Id
    sku: Id
    on_hand: int = Field(ge=0)
    reserved: int = Field(default=0, ge=0)

    @property
    def available(self) -> int:
        """on_hand − reserved, with no floor: negative means oversold (contract §7)."""
        return self.on_hand - self.reserved


class Replenishment(Frozen):
    warehouse_id: Id
    sku: Id
    qty: int = Field(gt=0)
    eta: Timestamp


class CatalogItem(Frozen):
    sku: Id
    description: str = ""
    category: str | None = None
    hs_code: str | None = None
    substitutes: tuple[str, ...] = ()


class ShippingRate(Frozen):
    warehouse_id: Id
    country_code: CountryCode
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
    order_id: Id
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
        for currency, rate in rates.items():
            _currency(currency)
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"{currency}: a rate to USD must be a positive number, not {rate}")
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


class Draft(Strict):
    """A plan as a playbook drafts it: what to do and why, before policy tiers and ranks it."""

    kind: Kind
    strategy: Strategy
    actions: tuple[Action, ...]
    cost_usd: Decimal = Decimal(0)
    rank_key: str = ""
    rationale: str = ""
    evidence: tuple[str, ...] = ()


class Plan(Draft):
    """A drafted plan with its tier, score and the past cases it cites. The tier has no
    default: an unranked plan cannot pass for an L1 one."""

    tier: Tier
    score: float = 0.0
    similar_cases: tuple[str, ...] = ()


class DecisionStatus(StrEnum):
    EXECUTED = "executed"
    AWAITING_APPROVAL = "awaiting_approval"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"


class Decision(Strict):
    status: DecisionStatus
    strategy: Strategy | None = None
    tier: Tier | None = None
    proposal_id: str | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ProposalStatus(StrEnum):
    """Where a proposal in the review queue stands."""

    PENDING = "pending"  # waiting for votes
    APPROVED = "approved"  # votes complete; the plan has not finished running yet
    EXECUTED = "executed"
    REJECTED = "rejected"
    VOID = "void"  # the plan, order or policy changed after people approved
    FAILED = "failed"  # approved, but the tools could not carry it out
    SUPERSEDED = "superseded"  # the order changed and was planned again
    EXPIRED = "expired"  # its deadline passed without the approvals: nothing runs

    @property
    def is_open(self) -> bool:
        return self in (ProposalStatus.PENDING, ProposalStatus.APPROVED)


class Approval(Strict):
    by: str = Field(min_length=1)
    role: Literal["approver", "supervisor"]
    at: datetime
    reason: str | None = None


VoteDecision = Literal["approve", "reject"]


class Vote(Strict):
    """One person's vote on a proposal, bound to the plan digest it was given for."""

    by: str
    person: str  # the identity behind ``by`` (see ``domain.approvals.person``)
    role: Literal["approver", "supervisor"]
    decision: VoteDecision
    reason: str | None = None
    plan_digest: str
    at: datetime


class Proposal(Strict):
    """A plan waiting in the review queue for the people its tier needs."""

    proposal_id: str
    world_id: str
    order_id: str
    thread_id: str
    kind: Kind
    strategy: Strategy
    tier: Tier
    plan: Plan
    plan_digest: str
    order_version: int
    policy_ref: str
    status: ProposalStatus
    detail: str | None = None
    created_at: datetime
    deadline: datetime | None = None  # past it, supervisors are told (escalation)
    expires_at: datetime | None = None  # past it, the proposal expires
    escalated_at: datetime | None = None
    earlier_plans: tuple[str, ...] = ()  # digests of the plans an edit replaced

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"thread_id", "created_at"})


Role = Literal["operator", "approver", "supervisor", "auditor"]
ROLES: tuple[Role, ...] = ("operator", "approver", "supervisor", "auditor")


class User(Strict):
    """A person who works at the desk, with one role. Their API token is stored only hashed."""

    name: str
    person: str  # the identity behind the name (``domain.approvals.person``)
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    # who gave them the role they have, and when (None: the first supervisor, or a desk from
    # before people needed a supervisor to add them)
    added_by: str | None = None
    added_at: datetime | None = None
