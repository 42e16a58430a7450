"""Carry out a plan through the tools: idempotent steps, audited, compensated on failure.

A tool call is an outside system's business, so it cannot share the desk's transaction. The
log records it in two entries: ``tool.requested`` before the call, and ``tool.called`` (with
the result) or ``tool.failed`` after it. A process killed in between leaves a request without
an outcome; run again, the call replays under the same idempotency key (the tool does nothing
twice) and the outcome is written then. A plan's outcome is recorded once, under a key made
of the order version and the plan, and a plan that already has one is not run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Connection

from agent import words
from agent.desk import AGENT, Desk
from domain.digest import digest, plan_digest
from domain.errors import ExdeskError
from domain.models import WAITING_STRATEGIES, Action, Plan, Strategy
from store.words import Words, WordsCache
from tools.ports import Result


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str = ""


_Item = tuple[str, str, dict[str, Any]]


class Trail:
    """The entries of a plan's steps, written in as few commits as the log's order allows:
    a step's ``tool.called`` waits to be written with what comes next (the next step's
    ``tool.requested``, the plan's outcome), never past another side effect. Dying with one
    owed is dying between a call and its entry: run again, the call replays under its key
    (the tool does nothing twice) and the entry is written then."""

    def __init__(self, desk: Desk) -> None:
        self._desk = desk
        self._owed: list[tuple[_Item, str | None]] = []

    def owe(self, item: _Item, key: str | None) -> None:
        self._owed.append((item, key))

    def write(self, item: _Item, key: str | None) -> None:
        """``item`` and everything owed, in one commit."""
        self.owe(item, key)
        self.flush()

    def flush(self) -> None:
        """Write what is owed (before a side effect of another kind)."""
        owed, self._owed = self._owed, []
        if owed:
            self._desk.audit.append_many([i for i, _ in owed], keys=[k for _, k in owed])


def call_tool(
    desk: Desk, action: Action, key: str, *, trail: Trail | None = None, **note: object
) -> Result:
    """One tool call, audited before and after (failures too). With ``trail``, its entries
    share commits with the plan's other steps (``Trail``)."""
    own = trail is None
    trail = trail or Trail(desk)
    actor = f"tool:{action.tool}"
    step = {
        "tool": action.tool,
        "op": action.op,
        "args": action.args,
        "key": key,
        "world_id": desk.world_id,  # what events out say (service.events)
        "policy": desk.policy.ref,
        **note,
    }
    trail.write((actor, "tool.requested", step), f"{key}:requested")
    try:
        result = desk.toolbox.call(action, key=key)
    except ExdeskError as exc:
        trail.write((actor, "tool.failed", {**step, "error": str(exc)}), None)
        raise
    trail.owe((actor, "tool.called", {**step, "result": result}), f"{key}:called")
    if own:
        trail.flush()
    return result


def _compensate(desk: Desk, order_id: str, done: list[tuple[Action, Result, str]]) -> list[str]:
    """Undo the steps that ran, newest first. Returns the steps that could not be undone."""
    left: list[str] = []
    for action, result, key in reversed(done):
        undo = desk.toolbox.undo_for(action, result)
        name = f"{action.tool}.{action.op}"
        if undo is None:
            left.append(f"{name} (cannot be undone)")
            continue
        try:
            for n, step in enumerate(undo):
                call_tool(desk, step, f"{key}:undo{n or ''}", compensates=name, order_id=order_id)
        except ExdeskError as exc:
            left.append(f"{name} ({exc})")
    return left


def plan_key(desk: Desk, order_id: str, plan: Plan) -> str:
    """What a plan's steps are keyed on: what is done, not which run does it. Running the same
    plan for the same order version again (a re-run, a resumed thread) replays, not repeats."""
    version = desk.version(order_id)
    return digest([desk.world_id, order_id, version, plan.kind.value, plan_digest(plan)])[:24]


def run_plan(
    desk: Desk,
    order_id: str,
    plan: Plan,
    *,
    approved_by: list[str] | None = None,
    trail: Trail | None = None,
) -> Outcome:
    """Run every action of ``plan``; on a failure, undo what ran and say what happened.

    With ``trail``, what is owed on it is written with the first step's request, and the
    plan's outcome is left owed on it: the caller writes it with what it records next (and
    flushes before any side effect of its own)."""
    prefix = plan_key(desk, order_id, plan)
    outcome_key = f"{prefix}:outcome"
    earlier = desk.audit.by_key(outcome_key)
    if earlier is not None:
        return Outcome(bool(earlier.payload["ok"]), str(earlier.payload.get("detail", "")))
    note: dict[str, object] = {"approved_by": approved_by} if approved_by else {}
    own = trail is None
    trail = trail or Trail(desk)
    outcome = _run_steps(desk, order_id, plan, prefix, note, trail)
    if outcome.ok and plan.strategy is Strategy.HOLD_UNTIL_DATE:
        trail.flush()
        _schedule_release(desk, order_id, plan, prefix)
    finished = (
        AGENT,
        "plan.finished",
        {
            "order_id": order_id,
            "world_id": desk.world_id,
            "order_version": desk.version(order_id),
            "policy": desk.policy.ref,
            "kind": plan.kind.value,
            "strategy": plan.strategy.value,
            "tier": plan.tier.value,
            "plan_key": prefix,
            "ok": outcome.ok,
            "detail": outcome.detail,
            **note,
        },
    )
    trail.owe(finished, outcome_key)
    if own:
        trail.flush()
    return outcome


def release_time(desk: Desk, order_id: str, until: str) -> datetime:
    """A hold until ``until`` ends as that day begins where the order is promised (the offset
    of its ``promised_by``)."""
    zone = desk.order(order_id).fulfillment.promised_by.tzinfo or UTC
    return datetime.combine(date.fromisoformat(until), time(0), tzinfo=zone)


def _schedule_release(desk: Desk, order_id: str, plan: Plan, prefix: str) -> None:
    """Record when the sweep lifts the hold, in one transaction with its audit entry."""
    for action in plan.actions:
        until = action.args.get("until") if action.op == "place_hold" else None
        if not until:
            continue
        kind, release_at = str(action.args["kind"]), release_time(desk, order_id, str(until))

        def change(
            conn: Connection, kind: str = kind, until: str = str(until), at: datetime = release_at
        ) -> None:
            desk.holds.schedule(
                conn,
                world_id=desk.world_id,
                order_id=order_id,
                kind=kind,
                until=until,
                release_at=at,
                plan_key=prefix,
            )

        desk.record(
            "hold.scheduled",
            {
                "order_id": order_id,
                "kind": kind,
                "until": until,
                "release_at": release_at.isoformat(),
                "plan_key": prefix,
            },
            key=f"{prefix}:scheduled",
            change=change,
        )


def customer_words(
    desk: Desk, order_id: str, plan: Plan, template: str, data: dict[str, Any]
) -> Words:
    order = desk.order(order_id)
    return words.write(
        desk.model,
        WordsCache(desk.engine),
        desk.audit,
        purpose="customer_message",
        subject=f"{desk.world_id}/{order_id}",
        plan_digest=plan_digest(plan),
        lang=words.language_of(order),
        context=words.message_facts(order, template, data),
        template=words.customer_template(template, data, words.language_of(order)),
    )


def needs_words(action: Action) -> bool:
    """Whether the action is a message to the customer asking them for something."""
    template = action.args.get("template")
    return (action.tool, action.op) == ("notify", "send") and template in words.WAITING_TEMPLATES


def with_message(desk: Desk, order_id: str, plan: Plan, action: Action) -> Action:
    """A message to the customer asking them for something carries its words, written for
    them in their language (by the model, marked, or by the template: ``agent.words``)."""
    if not needs_words(action):
        return action
    template = action.args.get("template")
    data = dict(action.args.get("data") or {})
    said = customer_words(desk, order_id, plan, str(template), data)
    message = {"message_text": said.text, "language": said.language, "by": said.by}
    return action.model_copy(update={"args": {**action.args, "data": {**data, "message": message}}})


def _run_steps(
    desk: Desk, order_id: str, plan: Plan, prefix: str, note: dict[str, object], trail: Trail
) -> Outcome:
    done: list[tuple[Action, Result, str]] = []
    for i, planned in enumerate(plan.actions):
        key = f"{prefix}:{i}"
        try:
            if needs_words(planned):
                trail.flush()  # writing the words is recorded too: after the last step's call
            action = with_message(desk, order_id, plan, planned)
            result = call_tool(desk, action, key, trail=trail, order_id=order_id, **note)
        except ExdeskError as exc:
            trail.flush()
            left = _compensate(desk, order_id, done)
            detail = f"{action.tool}.{action.op} failed: {exc}"
            if left:
                detail += f"; not undone: {', '.join(left)}"
            return Outcome(False, detail)
        done.append((action, result, key))
    order = desk.order(order_id)
    resolves = plan.strategy not in WAITING_STRATEGIES and order.status != "cancelled"
    if resolves and any(h.kind == plan.kind.value for h in order.holds):
        release = Action(
            tool="orders", op="release_hold", args={"order_id": order_id, "kind": plan.kind.value}
        )
        try:
            call_tool(desk, release, f"{prefix}:release", trail=trail)
        except ExdeskError as exc:
            return Outcome(False, f"the plan ran, but its hold stays: {exc}")
    return Outcome(True)


def place_hold(desk: Desk, order_id: str, kind: str, reason: str, key: str) -> None:
    action = Action(
        tool="orders", op="place_hold", args={"order_id": order_id, "kind": kind, "reason": reason}
    )
    call_tool(desk, action, key)
