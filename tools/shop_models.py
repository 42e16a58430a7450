"""The bodies of the shop API (``docs/shop-api.json``): what exdesk sends to each endpoint and
what it reads back. exdesk's compensations are built from the answers, so the fields named
here are required; a shop may add others (they are kept in the audit log as given).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.models import ADDRESS_FIELDS, Hold, OrderStatus

AddressField = Literal[ADDRESS_FIELDS]  # type: ignore[valid-type]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(BaseModel):
    """Every answer that is not 2xx: what went wrong, in words a person can act on."""

    error: Literal["rejected", "unavailable", "invalid"]
    detail: str


# --- requests ---------------------------------------------------------------------------------


class PlaceHold(Body):
    kind: str = Field(min_length=1)
    reason: str
    until: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


class ReleaseHold(Body):
    kind: str = Field(min_length=1)
    restore: list[Hold] | None = Field(
        default=None, description="holds to put back in its place (an undone place_hold)"
    )


class SetShipTo(Body):
    fields: dict[AddressField, str | None] = Field(
        min_length=1, description="address fields to set; null removes one"
    )


class SetLines(Body):
    changes: dict[str, dict[str, Any]] = Field(
        min_length=1, description="line_id → fields to set on that line"
    )


class SetFulfillment(Body):
    fields: dict[str, Any] = Field(min_length=1)


class SetStatus(Body):
    status: OrderStatus
    holds: list[Hold] | None = Field(
        default=None, description="set the holds to exactly these; left as they are when null"
    )


class Stock(Body):
    warehouse_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    qty: int = Field(gt=0)


class Document(Body):
    document: str = Field(min_length=1)


class Nothing(Body):
    pass


class Refund(Body):
    amount: str = Field(pattern=r"^\d+(\.\d+)?$", description="a decimal string")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class ChangeService(Body):
    service: Literal["economy", "standard", "express"]


class Message(Body):
    template: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)


# --- answers ----------------------------------------------------------------------------------


class HoldPlaced(Answer):
    hold: str
    replaced: list[Hold] = Field(description="the hold of that kind it replaced, if any")


class HoldReleased(Answer):
    released: list[Hold]


class Changed(Answer):
    previous: dict[str, Any] = Field(description="each changed field's value before (or null)")


class StatusSet(Answer):
    previous: OrderStatus
    previous_holds: list[Hold]


class Reserved(Answer):
    reserved: int


class Released(Answer):
    released: int


class Attached(Answer):
    attached: str
    was_attached: bool = Field(description="it was attached already: undoing takes nothing away")


class Detached(Answer):
    detached: str


class Captured(Answer):
    status: Literal["captured"]


class Sent(Answer):
    sent: str


class Refunded(Answer):
    refunded: str
    currency: str


class Service(BaseModel):
    model_config = ConfigDict(extra="allow")
    service: str


class ServiceChanged(Answer):
    service: str
    previous: Service
