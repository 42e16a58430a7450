"""The LangGraph graph: one thread per order version and policy.

detect → [gate] → execute → [await_approval ⟲ → record]

``detect`` finds what is wrong, drafts the plans for it, fetches the evidence (matched on
each drafted plan's own parameters) and ranks the plans with it. When every top plan is L1 it
makes the gate's decision too (there is nothing to queue), and it records all of it in one
transaction, before any side effect; otherwise ``gate`` queues the L2/L3 top plans as
proposals and holds the order. ``execute`` runs the L1 ones; when nothing waits for
approval it records where the order ended too, in the commit of the last plan's outcome, and
the thread ends. Otherwise ``await_approval`` interrupts while proposals are open; a later
resume (after people vote) runs the approved ones, fail-closed if the plan, order version or
policy changed, and ``record`` ends the thread. State holds domain models; the
``Desk`` comes in as the runtime context at each invoke.

``retrieve``, ``draft`` and ``rank`` are steps of their own only for threads checkpointed
before ``detect`` did what they do (a thread of an earlier version goes on where it stopped:
``retrieve`` then leads to ``gate``, which decides as it always did).

A node may run again from its start (a crash before its checkpoint, a resume): everything a
node does is keyed, so running it again repeats nothing. Audit entries carry keys made of the
thread id, which is made of the order version and policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from sqlalchemy import Connection

from agent import playbooks
from agent.context import Context
from agent.desk import Desk
from agent.detect import detect
from agent.execute import Trail, place_hold, run_plan
from agent.inputs import case_inputs, detected_payload, policy_entry
from agent.learn import learned_case, learned_case_id, succeeded
from agent.notes import must_read, read_notes
from agent.rank import rank, retrieve_evidence, situation_for
from audit.models import AuditEntry
from audit.personal import refs_in, restore
from domain.approvals import approvals_of
from domain.digest import plan_digest
from domain.models import (
    Decision,
    DecisionStatus,
    Draft,
    Finding,
    Kind,
    Order,
    Plan,
    Proposal,
    ProposalStatus,
    Tier,
)
from knowledge.errors import CaseMemoryUnavailable
from knowledge.memory import SimilarCase
from knowledge.situation import Situation
from store.review import proposal_id_for


class DeskState(TypedDict, total=False):
    thread_id: str
    order_id: str
    order_version: int
    findings: list[Finding]
    similar: dict[Kind, list[SimilarCase]]
    # kind → the finding's situation as JSON (knowledge.situation): what the case memory was
    # searched with, and what a learned case is filed under
    situations: dict[Kind, dict[str, Any]]
    drafts: dict[Kind, list[Draft]]
    plans: dict[Kind, list[Plan]]
    decisions: dict[Kind, Decision]
    pending: dict[Kind, str]  # kind → proposal id
    to_run: list[Kind]  # kinds whose L1 top plan runs now
    recorded: bool  # the run reached its end (the record step)
    gated: bool  # detect made the gate's decision too (every top plan was L1)


_V = TypeVar("_V")


def by_kind(mapping: Mapping[Any, _V] | None) -> dict[Kind, _V]:
    """A state map keyed by kind, read back from a checkpoint (which keeps keys as text)."""
    return {Kind(k): v for k, v in (mapping or {}).items()}


def _top(state: DeskState, kind: Kind) -> Plan:
    return state["plans"][kind][0]


def node_detect(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    """Detect, draft, retrieve and rank; and when every top plan is L1 (so the gate has
    nothing to queue), the gate's decision too: all recorded in one transaction, before any
    side effect, so a try done again starts from the same facts. A plan that needs approval
    goes on to ``gate``, which queues it."""
    desk = runtime.context
    ctx = desk.context(state["order_id"])
    reading = None
    if desk.model is not None and must_read(desk.model, ctx.order):
        reading = read_notes(desk.model, desk.audit, ctx, state["thread_id"]).reading
    findings = detect(ctx, reading)
    policy_item, policy_key = policy_entry(desk.policy)
    detected = detected_payload(
        desk.world_id,
        ctx,
        findings,
        version=state["order_version"],
        thread_id=state["thread_id"],
    )
    items = [policy_item, ("agent", "order.detected", detected)]
    keys = [policy_key, f"{state['thread_id']}:detected"]
    out: DeskState = {
        "findings": findings,
        "drafts": {f.kind: playbooks.draft(ctx, f) for f in findings},
    }
    if findings:
        more, more_keys, ranked = _retrieve_and_rank({**state, **out}, desk, ctx)
        items, keys, out = items + more, keys + more_keys, {**out, **ranked}
    else:
        out = {**out, "similar": {}, "plans": {}}
    plans = out["plans"]
    gated = all(kind_plans[0].tier is Tier.L1 for kind_plans in plans.values())
    if gated:  # nothing to queue: the gate decides here, in the same commit
        to_run = list(plans)
        items.append(_gate_entry(state, to_run, {}))
        keys.append(f"{state['thread_id']}:gate")
        out = {**out, "decisions": {}, "pending": {}, "to_run": to_run}
    desk.audit.append_many(items, keys=keys)
    return {**out, "gated": gated}


def _after_detect(state: DeskState) -> str:
    return "execute" if state.get("gated") else "gate"


def node_retrieve(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    """Retrieve and rank on a thread checkpointed between detection and retrieval before
    ``detect`` did both (see the module)."""
    desk = runtime.context
    if not state.get("findings", []):
        return {"similar": {}, "plans": {}}
    items, keys, out = _retrieve_and_rank(state, desk)
    desk.audit.append_many(items, keys=keys)
    return out


def _retrieve_and_rank(
    state: DeskState, desk: Desk, ctx: Context | None = None
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str], DeskState]:
    """Fetch the evidence for every finding and rank its drafted plans with it: (the entries
    that record both, their keys, the state they make). A try done again (its process died
    after recording, before the step's checkpoint) ranks with what the first try recorded
    (``_as_recorded``). ``ctx``: the facts detection read, when it ran in the same step."""
    findings = state.get("findings", [])
    ctx = ctx or desk.context(state["order_id"])
    situations = {f.kind: situation_for(ctx, f) for f in findings}
    kept: DeskState = {"situations": {k: v.model_dump(mode="json") for k, v in situations.items()}}
    key = f"{state['thread_id']}:retrieved"
    earlier = desk.audit.by_key(key)  # one process works on an order at a time (the lock)
    drafts = by_kind(state.get("drafts"))
    item, similar, evidence = _retrieve(desk, state, situations, drafts)
    if earlier is not None:
        similar = _as_recorded(desk, earlier, similar, evidence)
    plans = _ranked(desk, drafts, similar)
    items, keys = [item], [key]
    if plans:
        items.append(_ranked_entry(desk, state, plans))
        keys.append(f"{state['thread_id']}:ranked")
    return items, keys, {"similar": similar, "plans": plans, **kept}


def _retrieve(
    desk: Desk,
    state: DeskState,
    situations: dict[Kind, Situation],
    drafts: dict[Kind, list[Draft]],
) -> tuple[tuple[str, str, dict[str, Any]], dict[Kind, Any], dict[str, Any] | None]:
    """(the entry that records the retrieval, the similar cases by kind, what ranking counts
    of them), or the memory's absence and no cases."""
    try:
        similar = {
            k: retrieve_evidence(desk.memory, v, desk.policy, drafts.get(k, ()))
            for k, v in situations.items()
        }
    except CaseMemoryUnavailable as exc:
        # History only ever reorders plans on strong evidence: go on without it, and say so.
        why = {"order_id": state["order_id"], "why": str(exc)}
        return ("agent", "cases.unavailable", why), {}, None
    evidence = case_inputs(similar)  # what ranking counts, for replay
    payload = {
        "order_id": state["order_id"],
        "thread_id": state["thread_id"],
        "cases": {k.value: [c["case_id"] for c in v] for k, v in similar.items()},
        "evidence": evidence,
    }
    return ("agent", "cases.retrieved", payload), similar, evidence


def _ranked(
    desk: Desk, drafts: dict[Kind, list[Draft]], similar: dict[Kind, Any]
) -> dict[Kind, list[Plan]]:
    return {kind: rank(d, desk.policy, similar.get(kind, [])) for kind, d in drafts.items()}


def _ranked_entry(
    desk: Desk, state: DeskState, plans: dict[Kind, list[Plan]]
) -> tuple[str, str, dict[str, Any]]:
    payload = {
        "order_id": state["order_id"],
        "thread_id": state["thread_id"],
        "policy": desk.policy.ref,
        "plans": {k.value: [p.model_dump(mode="json") for p in v] for k, v in plans.items()},
    }
    return ("agent", "plans.ranked", payload)


def _as_recorded(
    desk: Desk,
    entry: AuditEntry,
    similar: dict[Kind, Any],
    evidence: dict[str, Any] | None = None,
) -> dict[Kind, Any]:
    """The past cases ranking counts: those just retrieved, unless an earlier try of this run
    recorded its retrieval (the process died before the step's checkpoint) and the memory has
    changed since; then the recorded ones, so the decision is the one the log replays."""
    if entry.event != "cases.retrieved":  # the earlier try found the memory away
        return {}
    recorded = entry.payload.get("evidence") or {}
    if recorded == (evidence or {}):
        return similar
    refs = sorted(refs_in(recorded))
    return by_kind(restore(recorded, desk.audit.clear_values(refs) if refs else {}))


def node_draft(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    findings = state.get("findings", [])
    if not findings:
        return {"drafts": {}}
    ctx = desk.context(state["order_id"])
    return {"drafts": {f.kind: playbooks.draft(ctx, f) for f in findings}}


def node_rank(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    """Rank on a thread checkpointed between retrieval and ranking before ``retrieve`` ranked
    (see the module)."""
    desk = runtime.context
    plans = _ranked(desk, by_kind(state.get("drafts")), by_kind(state.get("similar")))
    if plans:
        desk.audit.append(*_ranked_entry(desk, state, plans), key=f"{state['thread_id']}:ranked")
    return {"plans": plans}


def node_gate(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    desk = runtime.context
    order_id, thread_id = state["order_id"], state["thread_id"]
    decisions: dict[Kind, Decision] = {}
    pending: dict[Kind, str] = {}
    to_run: list[Kind] = []
    for kind in by_kind(state.get("plans")):
        plan = _top(state, kind)
        if plan.tier is Tier.L1:
            to_run.append(kind)
            continue
        proposal_id = _propose(desk, state, plan)
        reason = f"awaiting approval of {plan.strategy.value} ({plan.tier.value}, {proposal_id})"
        place_hold(desk, order_id, kind.value, reason, f"{thread_id}:{kind.value}:await")
        pending[kind] = proposal_id
        decisions[kind] = Decision(
            status=DecisionStatus.AWAITING_APPROVAL,
            strategy=plan.strategy,
            tier=plan.tier,
            proposal_id=proposal_id,
        )
    desk.audit.append(*_gate_entry(state, to_run, pending), key=f"{thread_id}:gate")
    return {"decisions": decisions, "pending": pending, "to_run": to_run}


def _gate_entry(
    state: DeskState, to_run: list[Kind], pending: dict[Kind, str]
) -> tuple[str, str, dict[str, Any]]:
    payload = {
        "order_id": state["order_id"],
        "thread_id": state["thread_id"],
        "run_now": [k.value for k in to_run],
        "awaiting": {k.value: v for k, v in pending.items()},
    }
    return ("agent", "gate.decided", payload)


def _propose(desk: Desk, state: DeskState, plan: Plan) -> str:
    """Queue the plan and record it, in one transaction."""
    digest = plan_digest(plan)
    order_id, version = state["order_id"], state["order_version"]
    proposal_id = proposal_id_for(
        world_id=desk.world_id,
        order_id=order_id,
        order_version=version,
        policy_ref=desk.policy.ref,
        plan=plan,
        digest=digest,
    )

    deadline, expires_at = _deadlines(desk, order_id, plan.tier)

    def change(conn: Connection) -> None:
        desk.review.propose(
            conn,
            world_id=desk.world_id,
            order_id=order_id,
            thread_id=state["thread_id"],
            plan=plan,
            plan_digest=digest,
            order_version=version,
            policy_ref=desk.policy.ref,
            deadline=deadline,
            expires_at=expires_at,
        )

    desk.record(
        "proposal.created",
        {
            "proposal_id": proposal_id,
            "order_id": order_id,
            "order_version": version,
            "kind": plan.kind.value,
            "strategy": plan.strategy.value,
            "tier": plan.tier.value,
            "plan_digest": digest,
            "policy": desk.policy.ref,
        },
        key=f"{state['thread_id']}:{plan.kind.value}:proposed",
        change=change,
    )
    return proposal_id


def _deadlines(desk: Desk, order_id: str, tier: Tier) -> tuple[datetime, datetime]:
    """When supervisors are told, and when the proposal expires: by policy for its tier, and
    never after the order's promised delivery."""
    rule = desk.policy.deadlines
    promised = desk.order(order_id).fulfillment.promised_by
    deadline = min(datetime.now(UTC) + timedelta(hours=rule.hours_for(tier)), promised)
    return deadline, deadline + timedelta(hours=rule.expire_after_hours)


def _failed_hold(desk: Desk, state: DeskState, kind: Kind, why: str) -> None:
    """Leave the exception with a person: a hold naming what went wrong."""
    if desk.order(state["order_id"]).status == "cancelled":
        return
    key = f"{state['thread_id']}:{kind.value}:failed"
    place_hold(desk, state["order_id"], kind.value, f"needs a person: {why}", key)


def node_execute(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    """Run the L1 top plans; when nothing waits for approval, record where the order ended
    too, in the commit that writes the last plan's outcome (the thread ends here)."""
    desk = runtime.context
    decisions = by_kind(state.get("decisions"))
    trail = Trail(desk)
    for kind in [Kind(k) for k in state.get("to_run", [])]:
        plan = _top(state, kind)
        outcome = run_plan(desk, state["order_id"], plan, trail=trail)
        if outcome.ok:
            decisions[kind] = Decision(
                status=DecisionStatus.EXECUTED, strategy=plan.strategy, tier=plan.tier
            )
        else:
            trail.flush()  # the outcome before the hold that follows it
            _failed_hold(desk, state, kind, outcome.detail)
            decisions[kind] = Decision(
                status=DecisionStatus.FAILED,
                strategy=plan.strategy,
                tier=plan.tier,
                detail=outcome.detail,
            )
    if state.get("pending"):
        trail.flush()
        return {"decisions": decisions, "recorded": False}
    for item, key in zip(*_record_entries(desk, {**state, "decisions": decisions}), strict=True):
        trail.owe(item, key)
    trail.flush()
    return {"decisions": decisions, "recorded": True}


def _after_execute(state: DeskState) -> str:
    return END if state.get("recorded") else "await_approval"


def _close(
    desk: Desk,
    state: DeskState,
    proposal_id: str,
    status: ProposalStatus,
    detail: str,
    event: str,
    *,
    only_from: tuple[ProposalStatus, ...],
) -> None:
    """Move a proposal to its outcome and record it, in one transaction."""
    desk.record(
        event,
        {"proposal_id": proposal_id, "order_id": state["order_id"], "detail": detail},
        key=f"{proposal_id}:{event}",
        change=lambda conn: desk.review.set_status(
            conn, proposal_id, status, detail, only_from=only_from
        ),
    )


def _settle(desk: Desk, state: DeskState, kind: Kind, proposal_id: str) -> Decision | None:
    """The decision for one open proposal, or None while it still waits for votes.

    What runs is the proposal's plan: the one people approved (an edit replaces it and resets
    the approvals, which are bound to its digest).
    """
    proposal = desk.review.get(proposal_id)
    plan = proposal.plan

    def decision(status: DecisionStatus, detail: str | None = None) -> Decision:
        return Decision(
            status=status,
            strategy=plan.strategy,
            tier=plan.tier,
            proposal_id=proposal_id,
            detail=detail,
        )

    if proposal.status is ProposalStatus.REJECTED:
        _failed_hold(desk, state, kind, proposal.detail or "plan rejected")
        return decision(DecisionStatus.REJECTED, proposal.detail)
    if proposal.status is ProposalStatus.PENDING:
        return None
    if proposal.status is ProposalStatus.EXECUTED:
        return decision(DecisionStatus.EXECUTED)
    if proposal.status is ProposalStatus.EXPIRED:
        _failed_hold(desk, state, kind, proposal.detail or "no approval in time")
        return decision(DecisionStatus.FAILED, proposal.detail or "expired")
    if proposal.status is not ProposalStatus.APPROVED:
        return decision(DecisionStatus.FAILED, f"proposal is {proposal.status.value}")
    void = _binding_problem(desk, state, proposal)
    if void:
        _close(
            desk,
            state,
            proposal_id,
            ProposalStatus.VOID,
            void,
            "approval.void",
            only_from=(ProposalStatus.APPROVED,),
        )
        _failed_hold(desk, state, kind, f"approval void: {void}")
        return decision(DecisionStatus.FAILED, f"approval void: {void}")
    voters = [a.by for a in approvals_of(proposal, desk.review.votes(proposal_id))]
    outcome = run_plan(desk, state["order_id"], plan, approved_by=voters)
    if not outcome.ok:
        _close(
            desk,
            state,
            proposal_id,
            ProposalStatus.FAILED,
            outcome.detail,
            "proposal.failed",
            only_from=(ProposalStatus.APPROVED,),
        )
        _failed_hold(desk, state, kind, outcome.detail)
        return decision(DecisionStatus.FAILED, outcome.detail)
    _close(
        desk,
        state,
        proposal_id,
        ProposalStatus.EXECUTED,
        f"approved by {', '.join(voters)}",
        "proposal.executed",
        only_from=(ProposalStatus.APPROVED,),
    )
    return decision(DecisionStatus.EXECUTED)


def _binding_problem(desk: Desk, state: DeskState, proposal: Proposal) -> str | None:
    """Why the approvals no longer hold (fail closed), or None when they bind. The plan is
    bound by the votes' digest; the order version and the policy are checked here."""
    if plan_digest(proposal.plan) != proposal.plan_digest:
        return "the plan changed after it was approved"
    if desk.policy.ref != proposal.policy_ref:
        return f"the policy changed ({proposal.policy_ref} → {desk.policy.ref})"
    current = desk.version(state["order_id"])
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
    pending = by_kind(state.get("pending"))
    if not pending:
        return {}
    desk = runtime.context
    decisions = by_kind(state.get("decisions"))
    for kind, proposal_id in list(pending.items()):
        settled = _settle(desk, state, kind, proposal_id)
        if settled is not None:
            decisions[kind] = settled
            del pending[kind]
    if pending:
        interrupt(
            {"order_id": state["order_id"], "pending": {k.value: v for k, v in pending.items()}}
        )
    return {"decisions": decisions, "pending": pending}


def _after_await(state: DeskState) -> str:
    return "await_approval" if state.get("pending") else "record"


def node_record(state: DeskState, runtime: Runtime[Desk]) -> DeskState:
    """Record where the order ended and what the case memory learned from it, in one
    transaction (learning again is an update: a try done again repeats nothing)."""
    desk = runtime.context
    items, keys = _record_entries(desk, state)
    desk.audit.append_many(items, keys=keys)
    return {"recorded": True}


def _record_entries(
    desk: Desk, state: DeskState
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
    """The entries that record where the order ended (and what was learned), with keys."""
    order = desk.order(state["order_id"])
    recorded = {
        "order_id": order.order_id,
        "order_version": state["order_version"],
        "status": order.status,
        "holds": [h.kind for h in order.holds],
        "decisions": {k.value: d.as_json() for k, d in by_kind(state.get("decisions")).items()},
    }
    items: list[tuple[str, str, dict[str, Any]]] = [("agent", "order.recorded", recorded)]
    keys = [f"{state['thread_id']}:recorded"]
    learned = _learn(desk, state, order)
    if learned is not None:
        items.append(learned)
        keys.append(f"{state['thread_id']}:learned")
    return items, keys


def _learn(desk: Desk, state: DeskState, order: Order) -> tuple[str, str, dict[str, Any]] | None:
    """Every plan that reached an outcome becomes a past case (``agent.learn``); the entry
    that says so, or None when nothing was learned."""
    findings = {f.kind: f for f in state.get("findings", [])}
    plans = by_kind(state.get("plans"))
    situations = by_kind(state.get("situations"))
    ctx: Context | None = None
    learned: list[str] = []
    try:
        for kind, decision in by_kind(state.get("decisions")).items():
            success = succeeded(decision, desk.review)
            if success is None or kind not in findings or not plans.get(kind):
                continue
            ctx = ctx or desk.context(state["order_id"])
            case_id = learned_case_id(
                desk.world_id, order.order_id, state["order_version"], findings[kind]
            )
            situation = (
                Situation.model_validate(situations[kind])
                if kind in situations
                else situation_for(ctx, findings[kind])  # a thread checkpointed before
            )
            case = learned_case(
                ctx,
                situation,
                plans[kind][0],
                success,
                case_id=case_id,
                detail=decision.detail,
            )
            if desk.memory.learn(case):
                learned.append(case_id)
    except CaseMemoryUnavailable as exc:
        why = {"order_id": order.order_id, "learned": learned, "why": str(exc)}
        return ("agent", "cases.unlearned", why)
    if not learned:
        return None
    return ("agent", "cases.learned", {"order_id": order.order_id, "cases": learned})


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
    graph.add_conditional_edges("detect", _after_detect, ["execute", "gate"])
    # Reached only from a thread checkpointed before detect did what they do (see the module):
    graph.add_edge("retrieve", "gate")
    graph.add_edge("draft", "retrieve")
    graph.add_edge("rank", "gate")
    graph.add_edge("gate", "execute")
    graph.add_conditional_edges("execute", _after_execute, ["await_approval", END])
    graph.add_conditional_edges("await_approval", _after_await, ["await_approval", "record"])
    graph.add_edge("record", END)
    return graph.compile(checkpointer=checkpointer)
