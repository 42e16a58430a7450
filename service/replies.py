"""A customer's reply to an order waiting on them (contract §8.2): ``exdesk reply`` and
``POST /orders/{id}/replies``.

The reply is read by the model (one call, recorded like a note's, ``agent.notes``). A
``confirm`` of the address the customer was asked about writes it to ``ship_to`` and lifts the
``customer_request`` hold (both L1 actions, through the orders port, each audited and keyed);
a ``change_address`` to another valid address asks again; anything else (and every reply when
no model is set, or when its answer was dropped) goes to a person, who sees the quote on the
review page. The reply and what came of it commit with their audit entry. The same reply
again changes nothing and asks the model nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from agent.desk import Desk
from agent.execute import call_tool
from agent.notes import Judged, ask_and_record
from agent.prompts import REPLY_INSTRUCTIONS, reading_request
from agent.runner import thread_id_for
from domain.digest import digest
from domain.errors import InputError
from domain.models import Action, Kind, Strategy, Tier
from domain.reading import Intent
from service.wiring import Exdesk
from store.replies import Reply
from tools.registry import action_tier

MAX_REPLY = 4000
REQUEST = Kind.CUSTOMER_REQUEST.value
REPLY_ALLOWED = frozenset(Intent)


def asked_address(app: Exdesk, desk: Desk, order_id: str) -> dict[str, str] | None:
    """The address the customer was last asked to confirm: from a reply that asked again,
    else from the executed confirm plan of the order's current run."""
    for reply in reversed(app.replies.for_order(desk.world_id, order_id)):
        if reply.outcome == "asked_again" and reply.proposed_address:
            return dict(reply.proposed_address)
    try:
        run = app.runner.result(desk, thread_id_for(desk, order_id, desk.version(order_id)))
    except KeyError:  # no run of this order version under this policy
        return None
    decision = run.decisions.get(Kind.CUSTOMER_REQUEST)
    plans = run.plans.get(Kind.CUSTOMER_REQUEST) or []
    if decision is None or decision.status != "executed" or not plans:
        return None
    if plans[0].strategy is not Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER:
        return None
    for action in plans[0].actions:
        proposed = action.args.get("data", {}).get("proposed_address")
        if action.op == "send" and proposed:
            return {str(k): str(v) for k, v in proposed.items()}
    return None


def _cut_short(app: Exdesk, reply_id: str) -> bool:
    """Whether this reply lifted the hold already, and was not recorded (a crash, an append
    that failed, between the tool calls and the reply's entry): then taking it again finishes
    it (the calls replay under their keys; the reading is the one recorded)."""
    return app.audit.by_key(f"reply:{reply_id}:release:requested") is not None


def _read(app: Exdesk, desk: Desk, order_id: str, reply_id: str, text: str, asked: Any) -> Judged:
    if app.model is None:
        return Judged("failed", None, "no model is configured")
    context = {
        "today": datetime.now(UTC).date().isoformat(),
        "question": "confirm_address" if asked else "the order is waiting on the customer",
        "asked_address": asked,
    }
    request = reading_request("reply", REPLY_INSTRUCTIONS, context, text)
    return ask_and_record(
        app.model,
        app.audit,
        request,
        text,
        REPLY_ALLOWED,
        key=f"reply:{reply_id}:read",
        about={"order_id": order_id, "reply_id": reply_id},
    )


def _l1(action: Action) -> Action:
    if action_tier(action) is not Tier.L1:  # never: the registry says both are L1
        raise InputError(f"{action.tool}.{action.op} is not an L1 action; a person must do it")
    return action


def _decide(
    app: Exdesk, desk: Desk, order_id: str, reply_id: str, judged: Judged, asked: Any
) -> tuple[str, str, dict[str, str] | None]:
    """(outcome, detail, the address asked about again) — acting on a confirmation."""
    reading = judged.reading
    if reading is None:
        why = "no model is configured" if app.model is None else f"not read ({judged.why})"
        return "for_person", why, None
    if reading.intent is Intent.CONFIRM:
        if not asked:
            return "for_person", "a confirmation, but no address was asked about", None
        check = desk.checkers.address.check(asked)
        if not check.valid:
            return "for_person", "the confirmed address does not validate", None
        order = desk.order(order_id)
        held = any(h.kind == REQUEST for h in order.holds)
        if not held and not _cut_short(app, reply_id):
            return "for_person", "the order no longer holds for this question", None
        key = f"reply:{reply_id}"
        fields = dict(asked)
        call_tool(
            desk,
            _l1(
                Action(
                    tool="orders", op="set_ship_to", args={"order_id": order_id, "fields": fields}
                )
            ),
            f"{key}:ship_to",
            reply_id=reply_id,
        )
        call_tool(
            desk,
            _l1(
                Action(
                    tool="orders", op="release_hold", args={"order_id": order_id, "kind": REQUEST}
                )
            ),
            f"{key}:release",
            reply_id=reply_id,
        )
        return "address_written", "the customer confirmed the address: written, hold lifted", None
    if reading.intent is Intent.CHANGE_ADDRESS and reading.new_address is not None:
        proposed = reading.new_address.fields()
        if not desk.checkers.address.check(proposed).valid:
            return "for_person", "the reply gives an address that does not validate", None
        send = Action(
            tool="notify",
            op="send",
            args={
                "order_id": order_id,
                "template": "confirm_new_address",
                "data": {"proposed_address": proposed},
            },
        )
        call_tool(desk, _l1(send), f"reply:{reply_id}:ask", reply_id=reply_id)
        return (
            "asked_again",
            "the reply gives another address: the customer is asked again",
            proposed,
        )
    return "for_person", f"the reply reads as {reading.intent.value}: a person decides", None


def receive(app: Exdesk, world_id: str, order_id: str, text: str, *, by: str) -> tuple[Reply, bool]:
    """Take the reply; (what came of it, whether it was new)."""
    text = text.strip()
    if not text:
        raise InputError("the reply is empty; give the customer's words")
    if len(text) > MAX_REPLY:
        raise InputError(f"the reply is {len(text)} characters long; at most {MAX_REPLY}")
    desk = app.desk(world_id)
    current = app.orders.current(world_id, order_id)
    if current is None:
        raise InputError(f"order {order_id!r} is not known in world {world_id!r}")
    reply_id = "R-" + digest([world_id, order_id, desk.version(order_id), text])[:24]
    earlier = app.replies.get(reply_id)
    if earlier is not None:
        return earlier, False
    if not current.holds and not _cut_short(app, reply_id):
        raise InputError(f"order {order_id} is not waiting on the customer (it has no hold)")
    asked = asked_address(app, desk, order_id)
    judged = _read(app, desk, order_id, reply_id, text, asked)
    outcome, detail, again = _decide(app, desk, order_id, reply_id, judged, asked)
    reading = judged.reading
    reply = Reply(
        reply_id=reply_id,
        world_id=world_id,
        order_id=order_id,
        text=text,
        received_by=by,
        received_at=datetime.now(UTC),
        intent=reading.intent.value if reading else None,
        quote=reading.quote if reading else None,
        outcome=outcome,
        detail=detail,
        proposed_address=again,
    )

    def change(conn: Connection) -> None:
        app.replies.add(conn, reply)

    desk.record(
        "reply.received",
        {
            "order_id": order_id,
            "world_id": world_id,
            "reply_id": reply_id,
            "intent": reply.intent,
            "outcome": outcome,
            "detail": detail,
            "quote": reply.quote or "",
            "message_text": text,  # beside the chain, as personal data
            **({"proposed_address": again} if again else {}),
        },
        key=f"reply:{reply_id}:received",
        change=change,
        actor=f"person:{by}",
    )
    return reply, True
