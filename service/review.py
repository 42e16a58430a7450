"""The review desk's use-cases beyond a vote (``service.usecases.vote``): what an approver sees
of a proposal, the queue most urgent first, editing a plan, deadlines (escalation and expiry),
and an order's timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from agent.context import Context
from agent.rank import tier_of
from domain.approvals import approvals_of
from domain.digest import plan_digest, what_changed
from domain.errors import ApprovalError, InputError, StaleDigest, ToolRejected
from domain.models import Action, Draft, Order, Plan, Proposal, ProposalStatus, Tier, User
from knowledge.errors import CaseMemoryUnavailable
from service import explain, holds, usecases
from service.people import allow
from service.wiring import Exdesk
from store.db import write
from tools.effects import preview
from tools.registry import action_tier, checked_args

# --- what an approver sees ---------------------------------------------------------------------


def _flat(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for n, item in enumerate(value):
            name = item.get("line_id") or item.get("kind") or str(n)
            out.update(_flat(item, f"{path}[{name}]"))
        return out
    return {path: value}


def order_diff(before: Order, after: Order) -> list[dict[str, Any]]:
    """The fields a plan would change: ``{field, before, after}``, in field order."""
    old, new = _flat(before.as_json()), _flat(after.as_json())
    fields = [*old, *(k for k in new if k not in old)]
    return [
        {"field": f, "before": old.get(f), "after": new.get(f)}
        for f in fields
        if old.get(f) != new.get(f)
    ]


def tier_reasons(plan: Draft, tier: Tier, app: Exdesk, order_id: str) -> list[str]:
    """Why the plan needs the approvals it needs: each rule that sets its tier (under the
    policy version that decides the order)."""
    policy = app.policy_for(order_id)
    reasons = [f"the policy puts {plan.strategy.value} at {policy.tiers[plan.strategy].value}"]
    floor = policy.tier_floors.get(plan.rank_key)
    if floor is not None:
        reasons.append(f"{plan.rank_key.replace(':', ' ')} is never below {floor.value}")
    money = policy.money_tier(plan.cost_usd)
    if money is not Tier.L1:
        limit = policy.limits.l2_usd if money is Tier.L3 else policy.limits.l1_usd
        reasons.append(f"its money impact, {plan.cost_usd} USD, is over {limit} USD: {money.value}")
    for action in plan.actions:
        at_least = action_tier(action)
        if at_least is not Tier.L1:
            reasons.append(f"{action.tool}.{action.op} is never below {at_least.value}")
    reasons.append(f"so: {tier.value}")
    return reasons


def detail(app: Exdesk, proposal: Proposal, *, lang: str = "en") -> dict[str, Any]:
    """Everything an approver needs to decide, as JSON (``lang``: the approver's language, for
    the words written for them)."""
    order = app.orders.current(proposal.world_id, proposal.order_id)
    if order is None:
        raise InputError(f"order {proposal.order_id} of {proposal.proposal_id} is gone")
    try:
        after: Order | None = preview(order, proposal.plan.actions, datetime.now(UTC))
        diff = order_diff(order, after) if after is not None else []
        preview_problem = None
    except ToolRejected as exc:
        after, diff, preview_problem = None, [], str(exc)
    votes = app.review.votes(proposal.proposal_id)
    valid = {v.person for v in votes}
    return {
        **proposal.as_json(),
        "created_at": proposal.created_at.isoformat(),
        "digest": usecases.current_digest(app, proposal),
        "order_version_now": app.orders.version(proposal.world_id, proposal.order_id),
        "cost_usd": str(proposal.plan.cost_usd),
        "tier_reasons": tier_reasons(proposal.plan, proposal.tier, app, proposal.order_id),
        "rationale": proposal.plan.rationale,
        "evidence": list(proposal.plan.evidence),
        "similar_cases": list(proposal.plan.similar_cases),
        **cited(app, proposal.plan.similar_cases),
        "actions": [{"tool": a.tool, "op": a.op, "args": a.args} for a in proposal.plan.actions],
        "order": order.as_json(),
        "order_after": after.as_json() if after is not None else None,
        "diff": diff,
        "preview_problem": preview_problem,
        "votes": [
            {
                **v.model_dump(mode="json", exclude={"person"}),
                "counts": v.plan_digest == proposal.plan_digest,
                **added(app, v.person),
            }
            for v in votes
        ],
        "approvals": [a.by for a in approvals_of(proposal, votes)],
        "voters": sorted(valid),
        "still_needed": usecases.missing(app, proposal),
        "promised_by": order.fulfillment.promised_by.isoformat(),
        # manual_review only: what the problem is and a next step (the model's, marked)
        "summary": explain.shown(explain.summary(app, proposal, lang)),
        "replies": [
            r.as_json() for r in app.replies.for_order(proposal.world_id, proposal.order_id)
        ],
    }


def added(app: Exdesk, who: str) -> dict[str, Any]:
    """Who gave a voter their role, and when (``added_by`` None: the first supervisor, added
    without a token; ``known`` False: not one of the desk's people, a vote from before it
    had any)."""
    user = app.users.latest(who)
    if user is None:
        return {"added_by": None, "added_at": None, "known": False}
    when = user.added_at or user.created_at
    return {"added_by": user.added_by, "added_at": when.isoformat(), "known": True}


def cited(app: Exdesk, case_ids: Sequence[str]) -> dict[str, Any]:
    """The past cases a plan cites, as the case memory holds them now (an outcome may have
    been updated since the plan was drafted); the memory being unavailable is said, not
    hidden."""
    if not case_ids:
        return {"cited_cases": [], "cited_cases_problem": None}
    try:
        return {"cited_cases": app.case_memory.cases(case_ids), "cited_cases_problem": None}
    except CaseMemoryUnavailable as exc:
        return {"cited_cases": [], "cited_cases_problem": str(exc)}


# --- the queue -------------------------------------------------------------------------------


def queue(
    app: Exdesk,
    *,
    status: ProposalStatus | None = ProposalStatus.PENDING,
    kind: str | None = None,
    tier: str | None = None,
) -> list[tuple[Proposal, Order | None]]:
    """Proposals with their orders, most urgent first: higher tier, more money at stake, the
    earliest promised delivery."""
    found = [
        p
        for p in app.review.find(status=status)
        if (kind is None or p.kind.value == kind) and (tier is None or p.tier.value == tier)
    ]
    rows = [(p, app.orders.current(p.world_id, p.order_id)) for p in found]
    far = datetime.max.replace(tzinfo=UTC)

    def urgency(row: tuple[Proposal, Order | None]) -> tuple[int, Decimal, datetime, str]:
        p, order = row
        promised = order.fulfillment.promised_by if order is not None else far
        return (-p.tier.level, -p.plan.cost_usd, promised, p.proposal_id)

    return sorted(rows, key=urgency)


# --- editing a plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionEdit:
    """New values for some arguments of one action of the plan (by its position)."""

    index: int
    args: dict[str, Any]


def _edited(plan: Plan, changes: Sequence[ActionEdit]) -> tuple[Action, ...]:
    actions = list(plan.actions)
    for change in changes:
        if not 0 <= change.index < len(actions):
            raise InputError(
                f"action {change.index} is not in the plan (it has {len(actions)}, from 0)"
            )
        old = actions[change.index]
        unknown = sorted(set(change.args) - set(old.args))
        if unknown:
            raise InputError(
                f"action {change.index} ({old.tool}.{old.op}) has no argument "
                f"{', '.join(unknown)}; an edit changes arguments, not what the action is"
            )
        actions[change.index] = Action(tool=old.tool, op=old.op, args={**old.args, **change.args})
    return tuple(actions)


def _feasible(app: Exdesk, proposal: Proposal, order: Order, actions: tuple[Action, ...]) -> None:
    """ToolRejected unless every action is well formed, the order after them is valid, and
    the stock they reserve is there."""
    for action in actions:
        checked_args(action)
    preview(order, actions, datetime.now(UTC))
    world = app.worlds.view(proposal.world_id, order)
    policy = app.policy_for(proposal.order_id)
    ctx = Context(order=order, world=world, policy=policy, checkers=app.checkers)
    wanted: dict[tuple[str, str], int] = {}
    for action in actions:
        if (action.tool, action.op) == ("inventory", "reserve"):
            key = (str(action.args["warehouse_id"]), str(action.args["sku"]))
            wanted[key] = wanted.get(key, 0) + int(action.args["qty"])
    for (warehouse, sku), qty in wanted.items():
        if ctx.available(warehouse, sku) < qty:
            raise ToolRejected(
                f"{warehouse} has {ctx.available(warehouse, sku)} of {sku} available; "
                f"the edited plan reserves {qty}"
            )


def edit(
    app: Exdesk,
    proposal_id: str,
    *,
    user: User,
    changes: Sequence[ActionEdit],
    digest: str | None,
    reason: str | None = None,
) -> Proposal:
    """Change some action arguments of a pending plan. The edit is checked (well formed,
    feasible), tiered again (never below the tier it had), gets a new digest, and the
    approvals given so far no longer count: the plan must be approved anew."""
    allow(user, "decide")
    if not changes:
        raise InputError("an edit changes at least one action's arguments")
    current = app.review.get(proposal_id)
    order = app.orders.current(current.world_id, current.order_id)
    if order is None:
        raise InputError(f"order {current.order_id} is gone")
    actions = _edited(current.plan, changes)
    _feasible(app, current, order, actions)
    draft = Draft.model_validate(
        {**current.plan.model_dump(include=set(Draft.model_fields)), "actions": actions}
    )
    tier = Tier.at_least(tier_of(draft, app.policy_for(current.order_id)), current.tier)
    plan = Plan.model_validate({**current.plan.model_dump(), "actions": actions, "tier": tier})
    new_digest = plan_digest(plan)

    def work(conn: Connection) -> Proposal:
        proposal = app.review.lock(conn, proposal_id)
        if proposal.status is not ProposalStatus.PENDING:
            raise ApprovalError(
                f"{proposal_id} is {proposal.status.value}; only pending plans change"
            )
        if proposal.plan_digest != current.plan_digest:
            raise StaleDigest(f"{proposal_id}: the plan changed while you edited it; look again")
        if digest is not None:
            changed = what_changed(
                digest, usecases.current_digest(app, proposal), proposal.earlier_plans
            )
            if changed is not None:
                raise StaleDigest(
                    f"{proposal_id}: the {changed} changed since you looked; look at it again"
                )
        dropped = app.review.replace_plan(conn, proposal, plan, new_digest)
        app.audit.append(
            f"person:{user.name}",
            "proposal.edited",
            {
                "proposal_id": proposal_id,
                "order_id": proposal.order_id,
                "role": user.role,
                "reason": reason,
                "changes": [{"index": c.index, "args": c.args} for c in changes],
                "plan_digest_before": proposal.plan_digest,
                "plan_digest": new_digest,
                "tier_before": proposal.tier.value,
                "tier": tier.value,
                "votes_reset": dropped,
            },
            conn=conn,
        )
        return app.review.lock(conn, proposal_id)

    return write(app.engine, work)


# --- deadlines ---------------------------------------------------------------------------------


def sweep(app: Exdesk, now: datetime | None = None) -> list[tuple[str, str]]:
    """Escalate the proposals past their deadline (supervisors are told, recorded), expire
    those past their expiry (nothing runs; the order stays held for a person), and release the
    holds whose date has come (``service.holds``). Safe to run from several processes at once,
    and again: each step happens once."""
    now = now or datetime.now(UTC)
    late, expired = app.review.due(now)
    done: list[tuple[str, str]] = []
    supervisors = sorted(
        {u.name for u in app.users.list() if u.role == "supervisor" and u.revoked_at is None}
        | {name for name, role in app.policy.people.items() if role == "supervisor"}
    )
    for proposal in late:
        pid = proposal.proposal_id

        def escalate(conn: Connection, pid: str = pid) -> bool:
            return app.review.mark_escalated(conn, pid, now)

        if app.desk(proposal.world_id).record(
            "proposal.escalated",
            {
                "proposal_id": pid,
                "order_id": proposal.order_id,
                "deadline": proposal.deadline.isoformat() if proposal.deadline else None,
                "told": supervisors,
                "still_needed": usecases.missing(app, proposal),
            },
            key=f"{pid}:escalated",
            change=escalate,
        ):
            done.append((pid, "escalated"))
    why = "no approval before its deadline"
    for proposal in expired:
        pid = proposal.proposal_id

        def expire(conn: Connection, pid: str = pid) -> bool:
            return app.review.set_status(
                conn, pid, ProposalStatus.EXPIRED, why, only_from=(ProposalStatus.PENDING,)
            )

        app.desk(proposal.world_id).record(
            "proposal.expired",
            {"proposal_id": pid, "order_id": proposal.order_id, "detail": why},
            key=f"{pid}:expired",
            change=expire,
        )
        usecases.resume(app, app.review.get(pid))  # the thread holds the order for a person
        done.append((pid, "expired"))
    return done + holds.release_due(app, now)


# --- an order's story --------------------------------------------------------------------------


def timeline(app: Exdesk, order_id: str) -> list[dict[str, Any]]:
    """Everything the audit log says happened to an order (and to its proposals), in order."""
    proposals = {p.proposal_id for p in app.review.find(order_id=order_id)}
    out = []
    for entry in app.audit.entries():
        payload = entry.payload
        about = payload.get("order_id") == order_id or payload.get("proposal_id") in proposals
        if not about and entry.event.startswith("tool."):
            about = payload.get("args", {}).get("order_id") == order_id
        if about:
            out.append(entry.model_dump(mode="json"))
    return out
