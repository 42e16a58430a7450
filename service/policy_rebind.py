"""Open proposals when another policy version comes to decide their orders (issue 15).

An approval is bound to the plan, the order's version and the policy version that drafted the
plan. When a change of what is in force (an activation, a rollback, a rollout's share, the
kill switch) puts another version in charge of an order with an open proposal (pending, or
approved and not run yet), the order is decided again under that version, by code, from the
inputs its run recorded (``agent.replay.derive``, as a shadow is: no tool, model or case
memory is called), and compared with the proposal:

- **the same decision** (the exception is still found, the same strategy comes first, at the
  same tier, with the same actions; a plan a person edited keeps its own actions and is tiered
  as an edit is): the proposal is bound to the new version and its votes stand
  (``proposal.rebound``). They are counted again under the new version's approval rules: an
  approved proposal that now needs more goes back to pending, saying what; a pending one that
  now has enough is approved (``exdesk review resume`` or a worker runs it). The order
  handled again goes on in the thread that drafted it (``agent.runner``), votes and all;
- **another decision**: the approvals are void (``approval.void``, naming the version and
  what it decides instead); the proposal says so, and the order is decided anew under the
  new version when it is handled again (``exdesk run``, ``POST /orders``, the stream).

Only proposals drafted under the version that decided their order until now are looked at
(one drafted by a process pinned to a policy file stays bound to that file). It all happens
in the transaction of the change and its audit entry: the proposals' rows are locked first,
so a vote waits for the change and then sees it; an approved proposal whose order another
process is working on (its plan may be running) is left to that process (``OrderLocks``).
A run that began under the old version and drafts a proposal after the change commits is
not looked at: it is bound to the old version and fails closed when it resumes.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from agent.rank import tier_of
from agent.replay import NotReplayable, Run, clear_for, derive
from domain.approvals import approvals_missing, approvals_of
from domain.errors import ExdeskError
from domain.models import Draft, Plan, Proposal, ProposalStatus, Tier
from domain.policy import Policy
from service.policy_book import deciding
from service.shadow import recorded_runs
from service.wiring import Exdesk
from store.locks import LockTimeout, named_lock
from store.policies import PolicyState

log = logging.getLogger(__name__)

REBOUND_EVENT = "proposal.rebound"
VOID_EVENT = "approval.void"  # as the graph records an approval found void when it resumes


@dataclass(frozen=True)
class Redecided:
    """What became of one open proposal."""

    proposal: Proposal
    version: int
    ref: str
    outcome: Literal["rebound", "void"]
    status: ProposalStatus
    detail: str
    differs: str | None  # how the new version decides otherwise (void), else None


def _draft(plan: Plan) -> Draft:
    return Draft.model_validate(plan.model_dump(include=set(Draft.model_fields)))


def _actions(plan: Plan) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in plan.actions]


def differs(app: Exdesk, proposal: Proposal, policy: Policy, run: Run | None) -> str | None:
    """How ``policy`` decides the proposal's order otherwise than the proposal does (its
    exception, strategy, tier, actions), or None when it decides the same; ``run``: what the
    log recorded of the run that drafted it (``service.shadow.recorded_runs``)."""
    if run is None:
        return "the audit log does not hold the inputs of the run that drafted it"
    try:
        derived = derive(run, policy, app.checkers, clear_for(run, app.audit.clear_values))
    except (NotReplayable, ExdeskError) as exc:
        return f"its order cannot be decided again from what was recorded ({exc})"
    except Exception as exc:  # fail closed: an approval nobody can check again is void
        log.exception("proposal %s could not be decided again", proposal.proposal_id)
        return f"its order cannot be decided again ({type(exc).__name__})"
    kind, plan = proposal.kind.value, proposal.plan
    ranked = derived.plans.get(kind)
    if not ranked:
        return f"it finds no {kind.replace('_', ' ')} exception in the order"
    top = Plan.model_validate(ranked[0])
    if top.strategy is not plan.strategy:
        return f"it puts {top.strategy.value} first, not {plan.strategy.value}"
    if proposal.earlier_plans:  # edited by a person: tiered as an edit is, never below
        tier = Tier.at_least(tier_of(_draft(plan), policy), top.tier)
    else:
        if _actions(top) != _actions(plan):
            return f"its {top.strategy.value} plan has other actions or arguments"
        tier = top.tier
    if tier is not plan.tier:
        return f"it puts the plan at {tier.value}, not {plan.tier.value}"
    return None


def _recount(
    app: Exdesk, conn: Connection, proposal: Proposal, policy: Policy
) -> tuple[ProposalStatus, str | None]:
    """The status the proposal's votes give it under ``policy``'s approval rules, and what
    it still needs."""
    votes = app.review.votes(proposal.proposal_id, conn)
    needs = approvals_missing(proposal.tier, approvals_of(proposal, votes), policy)
    return (ProposalStatus.APPROVED if needs is None else ProposalStatus.PENDING), needs


def _how(state: PolicyState) -> str:
    """How ``state`` put its version in charge, in words."""
    return {
        "activate": "activated",
        "rollback": "put back by a rollback",
        "rollout": f"rolled out to {state.percent} % of the orders",
        "kill": "back in force by the kill switch",
    }.get(state.action, f"in force ({state.action})")


class OrderLocks:
    """The order locks (``store.locks``) a change holds until it has committed: those of the
    approved proposals it decides again, so that none of them starts running meanwhile."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held: set[str] = set()
        self._stack = ExitStack()

    def __enter__(self) -> OrderLocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def take(self, world_id: str, order_id: str) -> bool:
        """Take the order's lock if it is free now; False when another process holds it
        (it is running the order, an approved plan perhaps: that run stands as it began)."""
        name = f"order:{world_id}/{order_id}"
        if name in self._held:
            return True
        try:
            self._stack.enter_context(named_lock(self.engine, name, timeout=0))
        except LockTimeout:
            return False
        self._held.add(name)
        return True


def redecide_open(
    app: Exdesk, conn: Connection, before: PolicyState, after: PolicyState, locks: OrderLocks
) -> list[Redecided]:
    """Rebind or void each open proposal whose order ``after`` puts under another version
    than ``before`` did (in ``conn``'s transaction; see the module). An approved one whose
    order another process is working on (resuming it) is left as it is: if it runs, it runs
    under the version its approvals were given for, and one that resumes after the change
    finds the policy changed and fails closed. Record them with ``record`` once the change's
    own entry is appended."""
    done: list[Redecided] = []
    store = app.policy_store
    refs: dict[int, str] = {}

    def ref_of(number: int) -> str:
        if number not in refs:
            refs[number] = store.get(number, conn).ref
        return refs[number]

    moved: list[tuple[Proposal, int]] = []
    for proposal in app.review.lock_open(conn):
        old, new = deciding(before, proposal.order_id), deciding(after, proposal.order_id)
        if old == new or proposal.policy_ref != ref_of(old):
            continue
        if proposal.status is ProposalStatus.APPROVED and not locks.take(
            proposal.world_id, proposal.order_id
        ):
            continue
        moved.append((proposal, new))
    runs = recorded_runs(app, [p.thread_id for p, _ in moved])
    for proposal, new in moved:
        ref, policy = ref_of(new), app.policies.version_policy(new)
        change = f"policy version {new} ({ref}), {_how(after)} by {after.by},"
        other = differs(app, proposal, policy, runs.get(proposal.thread_id))
        if other is None:
            status, needs = _recount(app, conn, proposal, policy)
            detail = f"kept under {change} which decides the order the same: the votes stand"
            if status is not proposal.status:
                detail += (
                    "; under its rules the approvals are complete"
                    if needs is None
                    else f"; under its rules it still needs {needs}"
                )
            app.review.rebind(
                conn, proposal.proposal_id, policy_ref=ref, status=status, detail=detail
            )
            done.append(Redecided(proposal, new, ref, "rebound", status, detail, None))
        else:
            detail = (
                f"approvals void: {change} decides the order differently: {other}. "
                f"Handle order {proposal.order_id} again to decide it under version {new}"
            )
            app.review.set_status(conn, proposal.proposal_id, ProposalStatus.VOID, detail)
            done.append(Redecided(proposal, new, ref, "void", ProposalStatus.VOID, detail, other))
    return done


def record(
    app: Exdesk, conn: Connection, done: list[Redecided], state: PolicyState, *, actor: str
) -> None:
    """The audit entries of ``redecide_open``'s outcomes, in the change's transaction."""
    items: list[tuple[str, str, dict[str, Any]]] = []
    keys: list[str | None] = []
    for r in done:
        p = r.proposal
        items.append(
            (
                actor,
                REBOUND_EVENT if r.outcome == "rebound" else VOID_EVENT,
                {
                    "proposal_id": p.proposal_id,
                    "order_id": p.order_id,
                    "policy_state": state.seq,
                    "policy_version": r.version,
                    "policy": r.ref,
                    "policy_before": p.policy_ref,
                    "status_before": p.status.value,
                    "status": r.status.value,
                    "differs": r.differs,
                    "detail": r.detail,
                },
            )
        )
        keys.append(f"{p.proposal_id}:policy-state:{state.seq}")
    if items:
        app.audit.append_many(items, keys=keys, conn=conn)


def summary(done: list[Redecided]) -> dict[str, Any]:
    """What the change's own audit entry says of the open proposals."""
    return {
        "proposals_rebound": sum(r.outcome == "rebound" for r in done),
        "proposals_void": sum(r.outcome == "void" for r in done),
    }
