"""The use-cases the CLI (and later the HTTP service) share: load a world, submit and handle an
order, vote on a proposal, resume a paused one.

A vote is one transaction: the vote, the proposal's new status and the audit entry that records
them commit together. When the vote completes the proposal (or rejects it) the order's paused
thread resumes and the plan runs. A process killed between the two leaves the proposal
``approved``; approving it again, ``exdesk review resume``, or handling the order again
finishes the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from agent.context import Context
from agent.runner import RunResult
from domain.approvals import (
    approvals_missing,
    approvals_of,
    check_vote,
    person,
    resolve_voter,
    status_after,
)
from domain.errors import ApprovalError
from domain.models import Order, Proposal, ProposalStatus, Vote, VoteDecision, World
from service.wiring import Exdesk
from store.db import write
from store.orders import Submission


def load_world(app: Exdesk, world_id: str, world: World) -> None:
    """Load a world file's facts (merged as ``store.world`` says) and record it."""
    app.worlds.load(world_id, world)
    app.audit.append(
        "operator",
        "world.loaded",
        {
            "world_id": world_id,
            "now": world.now.isoformat(),
            "warehouses": len(world.warehouses),
            "stock_rows": len(world.inventory),
            "events": len(world.events),
        },
    )


def submit(app: Exdesk, world_id: str, order: Order) -> Submission:
    """Take an order as submitted. An order its world cannot serve (a warehouse the world
    lacks, a currency with no rate) raises InputError before anything is stored."""
    Context(
        order=order,
        world=app.worlds.view(world_id, order),
        policy=app.policy,
        checkers=app.checkers,
    )
    return app.orders.submit(world_id, order)


def handle(app: Exdesk, world_id: str, order: Order) -> RunResult:
    """Submit the order and run it through the agent (replaying when nothing changed)."""
    submit(app, world_id, order)
    return app.runner.handle(app.desk(world_id), order.order_id)


@dataclass(frozen=True)
class VoteOutcome:
    proposal: Proposal
    missing: str | None  # what the proposal still needs, while it is pending
    run: RunResult | None  # what the resumed thread did, when the vote settled the proposal


def missing(app: Exdesk, proposal: Proposal) -> str | None:
    if proposal.status is not ProposalStatus.PENDING:
        return None
    votes = app.review.votes(proposal.proposal_id)
    return approvals_missing(proposal.tier, approvals_of(proposal, votes), app.policy)


def vote(
    app: Exdesk,
    proposal_id: str,
    *,
    by: str,
    role: str | None,
    decision: VoteDecision,
    reason: str | None = None,
    digest: str | None = None,
) -> VoteOutcome:
    """Record one person's vote (rules: ``domain.approvals``); run the plan when it is due."""
    name, role = resolve_voter(by, role, app.policy)
    current = app.review.get(proposal_id)
    if current.status is ProposalStatus.APPROVED and decision == "approve":
        # Approved before, but its run did not finish (a crash): finish it.
        return VoteOutcome(current, None, resume(app, current))

    def work(conn: Connection) -> Proposal:
        proposal = app.review.lock(conn, proposal_id)
        votes = app.review.votes(proposal_id, conn)
        check_vote(
            proposal,
            votes,
            by=name,
            role=role,
            decision=decision,
            reason=reason,
            digest_seen=digest,
            policy=app.policy,
        )
        cast = Vote(
            by=name,
            person=person(name),
            role=role,
            decision=decision,
            reason=reason,
            plan_digest=proposal.plan_digest,
            at=datetime.now(UTC),
        )
        app.review.add_vote(conn, proposal_id, cast)
        status = status_after(proposal, [*votes, cast], app.policy)
        if status is not proposal.status:
            detail = (
                f"rejected by {name}: {reason}"
                if status is ProposalStatus.REJECTED
                else "approvals complete"
            )
            app.review.set_status(conn, proposal_id, status, detail)
        app.audit.append(
            f"person:{name}",
            "proposal.approved" if decision == "approve" else "proposal.rejected",
            {
                "proposal_id": proposal_id,
                "order_id": proposal.order_id,
                "role": role,
                "reason": reason,
                "plan_digest": proposal.plan_digest,
                "status_after": status.value,
            },
            conn=conn,
        )
        return proposal.model_copy(update={"status": status})

    proposal = write(app.engine, work)
    if proposal.status is ProposalStatus.PENDING:
        return VoteOutcome(proposal, missing(app, proposal), None)
    return VoteOutcome(proposal, None, resume(app, proposal))


def resume(app: Exdesk, proposal: Proposal) -> RunResult:
    """Wake the order's thread that drafted ``proposal``: what was approved runs."""
    try:
        return app.runner.resume(app.desk(proposal.world_id), proposal.thread_id)
    except LookupError as exc:
        raise ApprovalError(
            f"{proposal.proposal_id}: the run that drafted it ({proposal.thread_id}) is not in "
            "this database's graph checkpoints; handle order "
            f"{proposal.order_id} again (exdesk run) to draft it anew"
        ) from exc
