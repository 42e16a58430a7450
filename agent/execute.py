"""Carry out a plan through the tools: idempotent steps, audited, compensated on failure."""

from __future__ import annotations

from dataclasses import dataclass

from agent.desk import Desk
from domain.digest import digest, plan_digest
from domain.errors import ExdeskError
from domain.models import WAITING_STRATEGIES, Action, Plan
from tools.ports import Result


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str = ""


def _step_payload(action: Action, key: str, **more: object) -> dict[str, object]:
    return {"tool": action.tool, "op": action.op, "args": action.args, "key": key, **more}


def _compensate(desk: Desk, done: list[tuple[Action, Result, str]]) -> list[str]:
    """Undo the steps that ran, newest first. Returns the steps that could not be undone."""
    left: list[str] = []
    for action, result, key in reversed(done):
        undo = desk.toolbox.undo_for(action, result)
        name = f"{action.tool}.{action.op}"
        if undo is None:
            left.append(f"{name} (cannot be undone)")
            continue
        try:
            call_tool(desk, undo, f"{key}:undo", compensates=name)
        except ExdeskError as exc:
            left.append(f"{name} ({exc})")
    return left


def call_tool(desk: Desk, action: Action, key: str, **note: object) -> Result:
    """One tool call, audited before it returns (failures too)."""
    try:
        result = desk.toolbox.call(action, key=key)
    except ExdeskError as exc:
        desk.audit.append(
            f"tool:{action.tool}", "tool.failed", _step_payload(action, key, error=str(exc), **note)
        )
        raise
    desk.audit.append(
        f"tool:{action.tool}", "tool.called", _step_payload(action, key, result=result, **note)
    )
    return result


def run_plan(
    desk: Desk, order_id: str, plan: Plan, *, approved_by: list[str] | None = None
) -> Outcome:
    """Run every action of ``plan``; on a failure, undo what ran and say what happened."""
    # Keyed on what is done, not on which run does it: running the same plan for the same
    # order version again (a re-run of the same file, a resumed thread) replays, not repeats.
    version = desk.store.order_version(desk.world_id, order_id)
    prefix = digest([desk.world_id, order_id, version, plan.kind.value, plan_digest(plan)])[:24]
    note: dict[str, object] = {"approved_by": approved_by} if approved_by else {}
    done: list[tuple[Action, Result, str]] = []
    for i, action in enumerate(plan.actions):
        key = f"{prefix}:{i}"
        try:
            result = call_tool(desk, action, key, **note)
        except ExdeskError as exc:
            left = _compensate(desk, done)
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
        call_tool(desk, release, f"{prefix}:release")
    return Outcome(True)


def place_hold(desk: Desk, order_id: str, kind: str, reason: str, key: str) -> None:
    action = Action(
        tool="orders", op="place_hold", args={"order_id": order_id, "kind": kind, "reason": reason}
    )
    call_tool(desk, action, key)
