"""The registry of actions: which port operation each one calls, its default tier, and
how to undo it.

A plan's tier is never below the default tier of any action it contains, whatever its
strategy says: a refund is L3 wherever it appears.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.errors import ToolError, ToolRejected, ToolUnavailable
from domain.models import ADDRESS_FIELDS, Action, Id, OrderStatus, Tier
from tools.ports import Carrier, Customs, Inventory, Notify, Orders, Payment, Result

AddressField = Literal[ADDRESS_FIELDS]  # type: ignore[valid-type]
# What undoes an action, given its arguments and result: the actions to run (none when there
# is nothing to undo), or None when it cannot be undone.
Undo = Callable[[dict[str, Any], Result], list[Action] | None]


def _no_undo(args: dict[str, Any], result: Result) -> list[Action] | None:
    return None


def _restore(op: str, field: str) -> Undo:
    def undo(args: dict[str, Any], result: Result) -> list[Action] | None:
        return [
            Action(
                tool="orders", op=op, args={"order_id": args["order_id"], field: result["previous"]}
            )
        ]

    return undo


def _inverse(tool: str, op: str, *names: str) -> Undo:
    def undo(args: dict[str, Any], result: Result) -> list[Action] | None:
        return [Action(tool=tool, op=op, args={n: args[n] for n in names})]

    return undo


def _undo_hold(args: dict[str, Any], result: Result) -> list[Action] | None:
    """Lift the hold, putting back the one it replaced."""
    restore = {"restore": result["replaced"]} if result.get("replaced") else {}
    return [
        Action(
            tool="orders",
            op="release_hold",
            args={"order_id": args["order_id"], "kind": args["kind"], **restore},
        )
    ]


def _restore_status(args: dict[str, Any], result: Result) -> list[Action] | None:
    return [
        Action(
            tool="orders",
            op="set_status",
            args={
                "order_id": args["order_id"],
                "status": result["previous"],
                "holds": result.get("previous_holds", []),
            },
        )
    ]


def _undo_attach(args: dict[str, Any], result: Result) -> list[Action] | None:
    if result.get("was_attached"):
        return []  # it was there before: nothing to take away
    return [
        Action(
            tool="customs",
            op="detach_document",
            args={"order_id": args["order_id"], "document": args["document"]},
        )
    ]


def _undo_service(args: dict[str, Any], result: Result) -> list[Action] | None:
    return [
        Action(
            tool="carrier",
            op="change_service",
            args={"order_id": args["order_id"], "service": result["previous"]["service"]},
        )
    ]


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _OrderArgs(_Args):
    order_id: Id


class HoldArgs(_OrderArgs):
    kind: str = Field(min_length=1)
    reason: str
    until: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


class ReleaseHoldArgs(_OrderArgs):
    kind: str = Field(min_length=1)
    restore: list[dict[str, Any]] | None = None


class ShipToArgs(_OrderArgs):
    fields: dict[AddressField, str | None] = Field(min_length=1)


class LinesArgs(_OrderArgs):
    changes: dict[str, dict[str, Any]] = Field(min_length=1)


class FulfillmentArgs(_OrderArgs):
    fields: dict[str, Any] = Field(min_length=1)


class StatusArgs(_OrderArgs):
    status: OrderStatus
    holds: list[dict[str, Any]] | None = None


class StockArgs(_Args):
    warehouse_id: Id
    sku: Id
    qty: int = Field(gt=0)


class DocumentArgs(_OrderArgs):
    document: str = Field(min_length=1)


class RefundArgs(_OrderArgs):
    amount: str = Field(pattern=r"^\d+(\.\d+)?$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class ServiceArgs(_OrderArgs):
    service: Literal["economy", "standard", "express"]


class SendArgs(_OrderArgs):
    template: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class ActionSpec:
    tier: Tier
    undo: Undo
    describe: str
    args: type[_Args]


ACTIONS: dict[tuple[str, str], ActionSpec] = {
    ("orders", "place_hold"): ActionSpec(Tier.L1, _undo_hold, "put a hold on the order", HoldArgs),
    ("orders", "release_hold"): ActionSpec(Tier.L1, _no_undo, "release a hold", ReleaseHoldArgs),
    ("orders", "set_ship_to"): ActionSpec(
        Tier.L1, _restore("set_ship_to", "fields"), "change the ship-to address", ShipToArgs
    ),
    ("orders", "set_lines"): ActionSpec(
        Tier.L1, _restore("set_lines", "changes"), "change order lines", LinesArgs
    ),
    ("orders", "set_fulfillment"): ActionSpec(
        Tier.L1, _restore("set_fulfillment", "fields"), "change fulfilment", FulfillmentArgs
    ),
    ("orders", "set_status"): ActionSpec(
        Tier.L3, _restore_status, "change the order's status", StatusArgs
    ),
    ("inventory", "reserve"): ActionSpec(
        Tier.L1,
        _inverse("inventory", "release", "warehouse_id", "sku", "qty"),
        "reserve stock",
        StockArgs,
    ),
    ("inventory", "release"): ActionSpec(Tier.L1, _no_undo, "release reserved stock", StockArgs),
    ("customs", "attach_document"): ActionSpec(
        Tier.L1, _undo_attach, "generate and attach a customs document", DocumentArgs
    ),
    ("customs", "detach_document"): ActionSpec(
        Tier.L1, _no_undo, "detach a customs document", DocumentArgs
    ),
    ("payment", "retry"): ActionSpec(Tier.L1, _no_undo, "retry the payment", _OrderArgs),
    ("payment", "request_new_method"): ActionSpec(
        Tier.L1, _no_undo, "ask the customer for another payment method", _OrderArgs
    ),
    ("payment", "refund"): ActionSpec(Tier.L3, _no_undo, "refund the customer", RefundArgs),
    ("carrier", "change_service"): ActionSpec(
        Tier.L2, _undo_service, "change the shipping service", ServiceArgs
    ),
    ("notify", "send"): ActionSpec(Tier.L1, _no_undo, "message the customer", SendArgs),
}


def spec_for(action: Action) -> ActionSpec:
    spec = ACTIONS.get((action.tool, action.op))
    if spec is None:
        raise ToolRejected(f"{action.tool}.{action.op} is not a known action")
    return spec


def checked_args(action: Action) -> dict[str, Any]:
    """The action's arguments, checked against its operation's model; ToolRejected if not."""
    spec = spec_for(action)
    try:
        args = spec.args.model_validate(action.args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(arguments)"
        raise ToolRejected(
            f"{action.tool}.{action.op}: argument {where}: {first['msg']}; the action was not run"
        ) from None
    # An optional argument the action does not give is left to the port's default, so that a
    # backend written before the argument existed still takes every action that omits it.
    return {
        name: getattr(args, name)
        for name, info in type(args).model_fields.items()
        if info.is_required() or name in action.args or getattr(args, name) is not None
    }


# Changing order lines rewrites what is shipped or declared: never below L2.
LINE_CHANGE_TIER = Tier.L2


def action_tier(action: Action) -> Tier:
    spec = spec_for(action)
    if (action.tool, action.op) == ("orders", "set_lines"):
        return LINE_CHANGE_TIER
    return spec.tier


class ToolBox:
    """Dispatches actions to port adapters, passing each its idempotency key."""

    def __init__(
        self,
        *,
        orders: Orders,
        inventory: Inventory,
        customs: Customs,
        payment: Payment,
        carrier: Carrier,
        notify: Notify,
    ) -> None:
        self.orders = orders
        self.inventory = inventory
        self._ports: dict[str, object] = {
            "orders": orders,
            "inventory": inventory,
            "customs": customs,
            "payment": payment,
            "carrier": carrier,
            "notify": notify,
        }

    def call(self, action: Action, *, key: str) -> Result:
        """Check the action's arguments, then run it. Whatever goes wrong in the adapter comes
        out as a ``ToolError``, so that the caller's compensation runs."""
        args = checked_args(action)
        method = getattr(self._ports[action.tool], action.op)
        try:
            result: Result = method(**args, key=key)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolUnavailable(action.tool, f"{type(exc).__name__}: {exc}") from exc
        return result

    def undo_for(self, action: Action, result: Result) -> list[Action] | None:
        return ACTIONS[(action.tool, action.op)].undo(action.args, result)
