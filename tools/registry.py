"""The registry of actions: which port operation each one calls, its default tier, and
how to undo it.

A plan's tier is never below the default tier of any action it contains, whatever its
strategy says: a refund is L3 wherever it appears.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.errors import ToolRejected
from domain.models import Action, Tier
from tools.ports import Carrier, Customs, Inventory, Notify, Orders, Payment, Result

Undo = Callable[[dict[str, Any], Result], Action | None]


def _no_undo(args: dict[str, Any], result: Result) -> Action | None:
    return None


def _restore(op: str, field: str) -> Undo:
    def undo(args: dict[str, Any], result: Result) -> Action | None:
        return Action(
            tool="orders", op=op, args={"order_id": args["order_id"], field: result["previous"]}
        )

    return undo


def _inverse(tool: str, op: str, *names: str) -> Undo:
    def undo(args: dict[str, Any], result: Result) -> Action | None:
        return Action(tool=tool, op=op, args={n: args[n] for n in names})

    return undo


def _restore_status(args: dict[str, Any], result: Result) -> Action | None:
    return Action(
        tool="orders",
        op="set_status",
        args={"order_id": args["order_id"], "status": result["previous"]},
    )


def _undo_service(args: dict[str, Any], result: Result) -> Action | None:
    return Action(
        tool="carrier",
        op="change_service",
        args={"order_id": args["order_id"], "service": result["previous"]["service"]},
    )


@dataclass(frozen=True)
class ActionSpec:
    tier: Tier
    undo: Undo
    describe: str


ACTIONS: dict[tuple[str, str], ActionSpec] = {
    ("orders", "place_hold"): ActionSpec(
        Tier.L1, _inverse("orders", "release_hold", "order_id", "kind"), "put a hold on the order"
    ),
    ("orders", "release_hold"): ActionSpec(Tier.L1, _no_undo, "release a hold"),
    ("orders", "set_ship_to"): ActionSpec(
        Tier.L1, _restore("set_ship_to", "fields"), "change the ship-to address"
    ),
    ("orders", "set_lines"): ActionSpec(
        Tier.L1, _restore("set_lines", "changes"), "change order lines"
    ),
    ("orders", "set_fulfillment"): ActionSpec(
        Tier.L1, _restore("set_fulfillment", "fields"), "change fulfilment"
    ),
    ("orders", "set_status"): ActionSpec(Tier.L3, _restore_status, "change the order's status"),
    ("inventory", "reserve"): ActionSpec(
        Tier.L1, _inverse("inventory", "release", "warehouse_id", "sku", "qty"), "reserve stock"
    ),
    ("inventory", "release"): ActionSpec(Tier.L1, _no_undo, "release reserved stock"),
    ("customs", "attach_document"): ActionSpec(
        Tier.L1,
        _inverse("customs", "detach_document", "order_id", "document"),
        "generate and attach a customs document",
    ),
    ("customs", "detach_document"): ActionSpec(Tier.L1, _no_undo, "detach a customs document"),
    ("payment", "retry"): ActionSpec(Tier.L1, _no_undo, "retry the payment"),
    ("payment", "request_new_method"): ActionSpec(
        Tier.L1, _no_undo, "ask the customer for another payment method"
    ),
    ("payment", "refund"): ActionSpec(Tier.L3, _no_undo, "refund the customer"),
    ("carrier", "change_service"): ActionSpec(
        Tier.L2, _undo_service, "change the shipping service"
    ),
    ("notify", "send"): ActionSpec(Tier.L1, _no_undo, "message the customer"),
}

# Changing order lines rewrites what is shipped or declared: never below L2.
LINE_CHANGE_TIER = Tier.L2


def action_tier(action: Action) -> Tier:
    spec = ACTIONS.get((action.tool, action.op))
    if spec is None:
        raise ToolRejected(f"{action.tool}.{action.op} is not a known action")
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
        if (action.tool, action.op) not in ACTIONS:
            raise ToolRejected(f"{action.tool}.{action.op} is not a known action")
        method = getattr(self._ports[action.tool], action.op)
        result: Result = method(**action.args, key=key)
        return result

    def undo_for(self, action: Action, result: Result) -> Action | None:
        return ACTIONS[(action.tool, action.op)].undo(action.args, result)
