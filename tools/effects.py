"""What each action does to an order, as pure functions: ``(order, args, now) → (order, result)``.

The simulated backends apply them to the stored order inside their transaction; the review desk
applies them to a copy to show an approver the order as it would be after a plan (``preview``).
One definition of each action's effect serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from domain.errors import ToolRejected
from domain.models import Action, Hold, Order

AGENT_NAME = "exdesk"

Effect = Callable[[Order, dict[str, Any], datetime], tuple[Order, dict[str, Any]]]


def with_holds(order: Order, holds: tuple[Hold, ...]) -> Order:
    status = order.status
    if status not in ("cancelled", "fulfilled"):
        status = "on_hold" if holds else "open"
    return order.model_copy(update={"holds": holds, "status": status})


def revalidate(order: Order, update: dict[str, Any], name: str) -> Order:
    """Apply ``update`` (JSON form) and validate the result as an order."""
    data = order.model_dump(mode="json", exclude_none=True)
    data.update(update)
    try:
        return Order.model_validate(data)
    except ValidationError as exc:
        raise ToolRejected(
            f"{name} would make the order invalid: {exc.errors()[0]['msg']}"
        ) from exc


def place_hold(order: Order, args: dict[str, Any], now: datetime) -> tuple[Order, dict[str, Any]]:
    kind = args["kind"]
    replaced = [h.model_dump(mode="json") for h in order.holds if h.kind == kind]
    until = {"until": args["until"]} if args.get("until") else {}
    hold = Hold(kind=kind, reason=args["reason"], since=now, by=AGENT_NAME, **until)
    holds = (*(h for h in order.holds if h.kind != kind), hold)
    return with_holds(order, holds), {"hold": kind, "replaced": replaced}


def release_hold(order: Order, args: dict[str, Any], now: datetime) -> tuple[Order, dict[str, Any]]:
    kind = args["kind"]
    released = [h for h in order.holds if h.kind == kind]
    holds = tuple(h for h in order.holds if h.kind != kind)
    holds += tuple(Hold.model_validate(h) for h in args.get("restore") or ())
    return with_holds(order, holds), {"released": [h.model_dump(mode="json") for h in released]}


def set_ship_to(order: Order, args: dict[str, Any], now: datetime) -> tuple[Order, dict[str, Any]]:
    fields = args["fields"]
    before = order.ship_to.model_dump(mode="json", exclude_none=True)
    previous = {name: before.get(name) for name in fields}
    after = {k: v for k, v in {**before, **fields}.items() if v is not None}
    return revalidate(order, {"ship_to": after}, "orders.set_ship_to"), {"previous": previous}


def set_lines(order: Order, args: dict[str, Any], now: datetime) -> tuple[Order, dict[str, Any]]:
    changes: dict[str, dict[str, Any]] = args["changes"]
    lines = [line.model_dump(mode="json", exclude_none=True) for line in order.lines]
    unknown = sorted(set(changes) - {line["line_id"] for line in lines})
    if unknown:
        raise ToolRejected(f"order {order.order_id} has no line {', '.join(unknown)}")
    previous: dict[str, dict[str, Any]] = {}
    for line in lines:
        change = changes.get(line["line_id"])
        if change:
            previous[line["line_id"]] = {name: line.get(name) for name in change}
            line.update(change)
    return revalidate(order, {"lines": lines}, "orders.set_lines"), {"previous": previous}


def set_fulfillment(
    order: Order, args: dict[str, Any], now: datetime
) -> tuple[Order, dict[str, Any]]:
    fields = args["fields"]
    before = order.fulfillment.model_dump(mode="json", exclude_none=True)
    previous = {name: before.get(name) for name in fields}
    after = {k: v for k, v in {**before, **fields}.items() if v is not None}
    changed = revalidate(order, {"fulfillment": after}, "orders.set_fulfillment")
    return changed, {"previous": previous}


def set_status(order: Order, args: dict[str, Any], now: datetime) -> tuple[Order, dict[str, Any]]:
    status, holds = args["status"], args.get("holds")
    updated = order.model_copy(update={"status": status})
    if status == "cancelled":
        updated = updated.model_copy(update={"holds": ()})
    if holds is not None:
        restored = tuple(Hold.model_validate(h) for h in holds)
        updated = updated.model_copy(update={"holds": restored})
    result = {
        "previous": order.status,
        "previous_holds": [h.model_dump(mode="json") for h in order.holds],
    }
    return revalidate(updated, {}, "orders.set_status"), result


def _documents(order: Order, documents: list[str], name: str) -> Order:
    customs = order.customs.model_dump(mode="json", exclude_none=True) if order.customs else {}
    customs["documents"] = documents
    return revalidate(order, {"customs": customs}, name)


def attach_document(
    order: Order, args: dict[str, Any], now: datetime
) -> tuple[Order, dict[str, Any]]:
    document = args["document"]
    documents = list(order.customs.documents) if order.customs else []
    was_attached = document in documents
    if not was_attached:
        documents.append(document)
    changed = _documents(order, documents, "customs.attach_document")
    return changed, {"attached": document, "was_attached": was_attached}


def detach_document(
    order: Order, args: dict[str, Any], now: datetime
) -> tuple[Order, dict[str, Any]]:
    document = args["document"]
    kept = [d for d in (order.customs.documents if order.customs else ()) if d != document]
    return _documents(order, kept, "customs.detach_document"), {"detached": document}


def retry_payment(
    order: Order, args: dict[str, Any], now: datetime
) -> tuple[Order, dict[str, Any]]:
    payment = order.payment.model_dump(mode="json", exclude_none=True)
    payment.pop("failure_code", None)
    payment["status"] = "captured"
    return revalidate(order, {"payment": payment}, "payment.retry"), {"status": "captured"}


def refund(order: Order, args: dict[str, Any], now: datetime) -> tuple[Order, dict[str, Any]]:
    amount, currency = args["amount"], args["currency"]
    if currency != order.currency:
        raise ToolRejected(f"refund in {currency}, but the order is in {order.currency}")
    before = order.payment.refunded or Decimal(0)
    total = before + Decimal(amount)
    if total > order.payment.amount:
        raise ToolRejected(
            f"refund {amount} with {before} refunded before exceeds the {order.payment.amount} paid"
        )
    payment = order.payment.model_dump(mode="json", exclude_none=True)
    payment["refunded"] = str(total)  # how much, in all: the status says that some was
    payment["status"] = "refunded"
    changed = revalidate(order, {"payment": payment}, "payment.refund")
    return changed, {"refunded": amount, "currency": currency}


def change_service(
    order: Order, args: dict[str, Any], now: datetime
) -> tuple[Order, dict[str, Any]]:
    service = args["service"]
    changed, result = set_fulfillment(order, {"fields": {"service": service}}, now)
    return changed, {"service": service, "previous": result["previous"]}


def unchanged(order: Order, args: dict[str, Any], now: datetime) -> tuple[Order, dict[str, Any]]:
    return order, {}


# The effect on the order of each action (those that change no order field leave it as it is).
EFFECTS: dict[tuple[str, str], Effect] = {
    ("orders", "place_hold"): place_hold,
    ("orders", "release_hold"): release_hold,
    ("orders", "set_ship_to"): set_ship_to,
    ("orders", "set_lines"): set_lines,
    ("orders", "set_fulfillment"): set_fulfillment,
    ("orders", "set_status"): set_status,
    ("customs", "attach_document"): attach_document,
    ("customs", "detach_document"): detach_document,
    ("payment", "retry"): retry_payment,
    ("payment", "request_new_method"): unchanged,
    ("payment", "refund"): refund,
    ("carrier", "change_service"): change_service,
    ("inventory", "reserve"): unchanged,
    ("inventory", "release"): unchanged,
    ("notify", "send"): unchanged,
}


def preview(order: Order, actions: tuple[Action, ...], now: datetime) -> Order:
    """The order as it would be after ``actions``, computed on a copy: nothing is done."""
    for action in actions:
        if action.args.get("order_id", order.order_id) != order.order_id:
            continue
        order, _ = EFFECTS[(action.tool, action.op)](order, action.args, now)
    return order
