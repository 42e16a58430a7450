"""The LangGraph graph: one thread per order.

detect → retrieve → draft → rank → gate → execute → await_approval ⟲ → record

``gate`` queues L2/L3 top plans as proposals and holds the order; ``execute`` runs the L1
ones. ``await_approval`` interrupts while proposals are open; a later resume (after people
vote) runs the approved ones, fail-closed if the plan, order version or policy changed.
State holds JSON only; the ``Desk`` comes in as the runtime context at each invoke.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agent import playbooks
from agent.desk import AGENT, Desk
from agent.detect import detect
from agent.execute import place_hold, run_plan
from agent.rank import rank
from domain.digest import plan_digest
from domain.models import Decision, Finding, Plan, Tier
from store.review import Proposal


class DeskState(TypedDict, total=False):
    thread_id: str
    order_id: str
    findings: list[dict[str, Any]]
    similar: dict[str, list[dict[str, Any]]]
    plans: dict[str, list[dict[str, Any]]]
    decisions: dict[str, dict[str, Any]]
    pending: dict[str, str]  # kind → proposal id
    to_run: list[str]  # kinds whose L1 top plan runs now


def _findings(state: DeskState) -> list[Finding]:
    return [Finding.model_validate(f) for f in state.get("findings", [])]


def _top(state: DeskState, kind: str) -> Plan:
    return Plan.model_validate(state["plans"][kind][0])


def _decision(**fields: Any) -> dict[str, Any]:
    return Decision(**fields).model_dump(mode="json", exclude_none=True)


def node_detect(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    ctx = desk.context(state["order_id"])
    findings = detect(ctx)
    desk.audit.append(
        AGENT,
        "order.detected",
        {
            "order_id": ctx.order.order_id,
            "thread_id": state["thread_id"],
            "policy": desk.policy.ref,
            "kinds": [f.kind.value for f in findings],
            "findings": [f.model_dump(mode="json") for f in findings],
        },
    )
    return {"findings": [f.model_dump(mode="json") for f in findings]}


def node_retrieve(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    order = desk.order(state["order_id"])
    similar = {f.kind.value: desk.memory.search(f, order) for f in _findings(state)}
    if similar:
        desk.audit.append(
            AGENT,
            "cases.retrieved",
            {
                "order_id": order.order_id,
                "cases": {k: [c["case_id"] for c in v] for k, v in similar.items()},
            },
        )
    return {"similar": similar}


def node_draft(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    ctx = desk.context(state["order_id"])
    drafted = {f.kind.value: playbooks.draft(ctx, f) for f in _findings(state)}
    return {
        "plans": {k: [p.model_dump(mode="json") for p in v] for k, v in drafted.items()},
    }


def node_rank(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    ranked: dict[str, list[dict[str, Any]]] = {}
    for kind, raw in state.get("plans", {}).items():
        plans = rank(
            [Plan.model_validate(p) for p in raw], desk.policy, state["similar"].get(kind, [])
        )
        ranked[kind] = [p.model_dump(mode="json") for p in plans]
    if ranked:
        desk.audit.append(
            AGENT,
            "plans.ranked",
            {"order_id": state["order_id"], "policy": desk.policy.ref, "plans": ranked},
        )
    return {"plans": ranked}


def node_gate(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    order_id, thread_id = state["order_id"], state["thread_id"]
    decisions: dict[str, dict[str, Any]] = {}
    pending: dict[str, str] = {}
    to_run: list[str] = []
    for kind in state.get("plans", {}):
        plan = _top(state, kind)
        if plan.tier is Tier.L1:
            to_run.append(kind)
            continue
        proposal_id = desk.review.propose(
            world_id=desk.world_id,
            order_id=order_id,
            thread_id=thread_id,
            plan=plan,
            plan_digest=plan_digest(plan),
            order_version=desk.store.order_version(desk.world_id, order_id),
            policy_ref=desk.policy.ref,
        )
        reason = f"awaiting approval of {plan.strategy.value} ({plan.tier.value}, {proposal_id})"
        place_hold(desk, order_id, kind, reason, f"{thread_id}:{kind}:await:{proposal_id}")
        pending[kind] = proposal_id
        decisions[kind] = _decision(
            status="awaiting_approval",
            strategy=plan.strategy,
            tier=plan.tier,
            proposal_id=proposal_id,
        )
    desk.audit.append(
        AGENT, "gate.decided", {"order_id": order_id, "run_now": to_run, "awaiting": pending}
    )
    desk.commit()
    return {"decisions": decisions, "pending": pending, "to_run": to_run}


def _failed_hold(desk: Desk, state: DeskState, kind: str, why: str) -> None:
    """Leave the exception with a person: a hold naming what went wrong."""
    if desk.order(state["order_id"]).status == "cancelled":
        return
    key = f"{state['thread_id']}:{kind}:failed"
    place_hold(desk, state["order_id"], kind, f"needs a person: {why}", key)


def node_execute(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    decisions = dict(state.get("decisions", {}))
    for kind in state.get("to_run", []):
        plan = _top(state, kind)
        outcome = run_plan(desk, state["order_id"], plan)
        if outcome.ok:
            decisions[kind] = _decision(status="executed", strategy=plan.strategy, tier=plan.tier)
        else:
            _failed_hold(desk, state, kind, outcome.detail)
            decisions[kind] = _decision(
                status="failed", strategy=plan.strategy, tier=plan.tier, detail=outcome.detail
            )
    desk.commit()
    return {"decisions": decisions}


def _settle(desk: Desk, state: DeskState, kind: str, proposal_id: str) -> dict[str, Any] | None:
    """The decision for one open proposal, or None while it still waits for votes."""
    proposal = desk.review.get(proposal_id)
    plan = _top(state, kind)
    base = {"strategy": plan.strategy, "tier": plan.tier, "proposal_id": proposal_id}
    if proposal.status == "rejected":
        _failed_hold(desk, state, kind, proposal.detail or "plan rejected")
        return _decision(status="rejected", detail=proposal.detail, **base)
    if proposal.status not in ("pending", "approved", "executed"):
        return _decision(status="failed", detail=f"proposal is {proposal.status}", **base)
    if proposal.status != "executed" and desk.review.missing(proposal, desk.policy) is not None:
        return None
    void = _binding_problem(desk, state, plan, proposal)
    if void:
        desk.review.set_status(proposal_id, "void", void)
        desk.audit.append(AGENT, "approval.void", {"proposal_id": proposal_id, "why": void})
        _failed_hold(desk, state, kind, f"approval void: {void}")
        return _decision(status="failed", detail=f"approval void: {void}", **base)
    # An executed proposal (run again by a re-run of the same order) replays: same keys.
    voters = [a.by for a in desk.review.approvals(proposal)]
    outcome = run_plan(desk, state["order_id"], plan, approved_by=voters)
    if not outcome.ok:
        desk.review.set_status(proposal_id, "failed", outcome.detail)
        _failed_hold(desk, state, kind, outcome.detail)
        return _decision(status="failed", detail=outcome.detail, **base)
    desk.review.set_status(proposal_id, "executed", f"approved by {', '.join(voters)}")
    return _decision(status="executed", **base)


def _binding_problem(desk: Desk, state: DeskState, plan: Plan, proposal: Proposal) -> str | None:
    """Why the approvals no longer hold (fail closed), or None when they bind."""
    if plan_digest(plan) != proposal.plan_digest:
        return "the plan changed after it was approved"
    if desk.policy.ref != proposal.policy_ref:
        return f"the policy changed ({proposal.policy_ref} → {desk.policy.ref})"
    current = desk.store.order_version(desk.world_id, state["order_id"])
    if current != proposal.order_version:
        return f"the order changed (version {proposal.order_version} → {current})"
    if desk.order(state["order_id"]).status == "cancelled":
        return "the order has been cancelled"
    return None


def node_await(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    """Run what has its approvals; pause while anything still waits for votes.

    Settling comes before the pause, so a proposal approved earlier (or already decided)
    does not wait for a wake-up; everything it does is idempotent, because a resumed node
    runs again from its start.
    """
    pending = dict(state.get("pending", {}))
    if not pending:
        return {}
    desk = runtime.context
    decisions = dict(state.get("decisions", {}))
    for kind, proposal_id in list(pending.items()):
        decision = _settle(desk, state, kind, proposal_id)
        if decision is not None:
            decisions[kind] = decision
            del pending[kind]
    desk.commit()
    if pending:
        interrupt({"order_id": state["order_id"], "pending": pending})
    return {"decisions": decisions, "pending": pending}


def _after_await(state: DeskState) -> str:
    return "await_approval" if state.get("pending") else "record"


def node_record(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    order = desk.order(state["order_id"])
    desk.audit.append(
        AGENT,
        "order.recorded",
        {
            "order_id": order.order_id,
            "status": order.status,
            "holds": [h.kind for h in order.holds],
            "decisions": state.get("decisions", {}),
        },
    )
    return {}


def build_graph(*, checkpointer: BaseCheckpointSaver[Any] | None) -> Any:
    graph = StateGraph(DeskState, context_schema=Desk)
    graph.add_node("detect", node_detect)
    graph.add_node("retrieve", node_retrieve)
    graph.add_node("draft", node_draft)
    graph.add_node("rank", node_rank)
    graph.add_node("gate", node_gate)
    graph.add_node("execute", node_execute)
    graph.add_node("await_approval", node_await)
    graph.add_node("record", node_record)
    graph.add_edge(START, "detect")
    graph.add_edge("detect", "retrieve")
    graph.add_edge("retrieve", "draft")
    graph.add_edge("draft", "rank")
    graph.add_edge("rank", "gate")
    graph.add_edge("gate", "execute")
    graph.add_edge("execute", "await_approval")
    graph.add_conditional_edges("await_approval", _after_await, ["await_approval", "record"])
    graph.add_edge("record", END)
    return graph.compile(checkpointer=checkpointer)
