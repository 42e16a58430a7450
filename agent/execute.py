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
        if undo is None:
            left.append(f"{action.tool}.{action.op} (cannot be undone)")
            continue
        undo_key = f"{key}:undo"
        try:
            undone = desk.toolbox.call(undo, key=undo_key)
        except ExdeskError as exc:
            left.append(f"{action.tool}.{action.op} ({exc})")
            desk.audit.append(
                f"tool:{undo.tool}", "tool.compensation_failed", _step_payload(undo, undo_key, error=str(exc))
            )
            continue
        desk.audit.append(f"tool:{undo.tool}", "tool.compensated", _step_payload(undo, undo_key, result=undone))
    return left


def run_plan(
    desk: Desk, thread_id: str, order_id: str, plan: Plan, *, approved_by: list[str] | None = None
) -> Outcome:
    """Run every action of ``plan``; on a failure, undo what ran and say what happened."""
    prefix = digest([thread_id, plan.kind.value, plan_digest(plan)])[:24]
    done: list[tuple[Action, Result, str]] = []
    for i, action in enumerate(plan.actions):
        key = f"{prefix}:{i}"
        try:
            result = desk.toolbox.call(action, key=key)
        except ExdeskError as exc:
            desk.audit.append(f"tool:{action.tool}", "tool.failed", _step_payload(action, key, error=str(exc)))
            left = _compensate(desk, done)
            detail = f"{action.tool}.{action.op} failed: {exc}"
            if left:
                detail += f"; not undone: {', '.join(left)}"
            return Outcome(False, detail)
        payload = _step_payload(action, key, result=result)
        if approved_by:
            payload["approved_by"] = approved_by
        desk.audit.append(f"tool:{action.tool}", "tool.called", payload)
        done.append((action, result, key))
    order = desk.order(order_id)
    if plan.strategy not in WAITING_STRATEGIES and order.status != "cancelled":
        if any(h.kind == plan.kind.value for h in order.holds):
            release = Action(
                tool="orders", op="release_hold", args={"order_id": order_id, "kind": plan.kind.value}
            )
            key = f"{prefix}:release"
            result = desk.toolbox.call(release, key=key)
            desk.audit.append("tool:orders", "tool.called", _step_payload(release, key, result=result))
    return Outcome(True)
