"""The use-cases the CLI (and later the HTTP service) share: load a world, submit and handle an
order, vote on a proposal, resume a paused one.

A vote is one transaction: the vote, the proposal's new status and the audit entry that records
them commit together. When the vote completes the proposal (or rejects it) the order's paused
thread resumes and the plan runs. A process killed between the two leaves the proposal
``approved``; approving it again, ``exdesk review resume``, or handling the order again
finishes the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from agent.context import Context
from agent.execute import call_tool
from agent.runner import RunResult
from domain.approvals import (
    approvals_missing,
    approvals_of,
    check_vote,
    person,
    resolve_voter,
    status_after,
)
from domain.digest import digest, review_digest
from domain.errors import ApprovalError, InputError, NotAllowed
from domain.models import (
    Action,
    Kind,
    Order,
    Proposal,
    ProposalStatus,
    User,
    Vote,
    VoteDecision,
    World,
)
from service.people import check_adders
from service.shadow import decide_beside_quietly
from service.wiring import Exdesk
from store.db import write
from store.orders import Submission
from tools.ports import WorldSnapshots


def load_world(app: Exdesk, world_id: str, world: World, *, actor: str = "operator") -> None:
    """Load a world file's facts (merged as ``store.world`` says) and record it, in one
    transaction."""
    payload = {
        "world_id": world_id,
        "now": world.now.isoformat(),
        "warehouses": len(world.warehouses),
        "stock_rows": len(world.inventory),
        "events": len(world.events),
    }
    app.worlds.load(
        world_id,
        world,
        then=lambda conn: app.audit.append(actor, "world.loaded", payload, conn=conn),
    )


def submit(
    app: Exdesk, world_id: str, order: Order, *, actor: str = "operator", role: str | None = None
) -> Submission:
    """Take an order as submitted, and record it (``order.submitted``, once per version) in
    the same transaction. An order its world cannot serve (a warehouse the world lacks, a
    currency with no rate) raises InputError before anything is stored."""
    check_servable(app, world_id, order)

    def record(conn: Connection, taken: Submission) -> None:
        if not taken.changed:
            return  # the same content again: nothing was stored, nothing to record
        actor_, event, payload = _submitted(world_id, order.order_id, taken.version, actor, role)
        key = _submitted_key(world_id, order.order_id, taken.version)
        app.audit.append(actor_, event, payload, key=key, conn=conn)

    return app.orders.submit(world_id, order, then=record)


def check_servable(app: Exdesk, world_id: str, order: Order) -> None:
    """InputError when the order's world cannot serve it (a warehouse the world lacks, a
    currency with no rate): what ``submit`` checks before it stores anything."""
    (problem,) = servable(app, world_id, [order])
    if problem is not None:
        raise problem


def servable(app: Exdesk, world_id: str, orders: Sequence[Order]) -> list[InputError | None]:
    """``check_servable`` for several orders of one world, with one look at it (its
    snapshot, where the facts keep one): each order's InputError, or None. A world that is
    not in the store raises its InputError for all of them."""
    facts = app.facts(world_id)
    snapshot = facts.snapshot() if isinstance(facts, WorldSnapshots) else None
    out: list[InputError | None] = []
    for order in orders:
        try:
            Context(
                order=order,
                world=snapshot.view(order) if snapshot is not None else facts.view(order),
                policy=app.policy,
                checkers=app.checkers,
            )
        except InputError as exc:
            out.append(exc)
        else:
            out.append(None)
    return out


def submit_many(
    conn: Connection,
    app: Exdesk,
    world_id: str,
    orders: Sequence[Order],
    *,
    actor: str = "operator",
    role: str | None = None,
) -> list[Submission]:
    """``submit`` for several orders (each order id once, each checked with
    ``check_servable`` before), in the caller's transaction: their ``order.submitted``
    entries under one checkpoint. A concurrent first insert of one of them raises
    IntegrityError (run the transaction again)."""
    taken = app.orders.submit_many(conn, world_id, orders)
    items, keys = [], []
    for order, submission in zip(orders, taken, strict=True):
        if submission.changed:
            items.append(_submitted(world_id, order.order_id, submission.version, actor, role))
            keys.append(_submitted_key(world_id, order.order_id, submission.version))
    if items:
        app.audit.append_many(items, keys=keys, conn=conn)
    return taken


def _submitted(
    world_id: str, order_id: str, version: int, actor: str, role: str | None
) -> tuple[str, str, dict[str, object]]:
    payload: dict[str, object] = {"order_id": order_id, "world_id": world_id, "version": version}
    if role is not None:
        payload["role"] = role
    return actor, "order.submitted", payload


def _submitted_key(world_id: str, order_id: str, version: int) -> str:
    return "submitted:" + digest([world_id, order_id, version])[:32]


def handle(
    app: Exdesk,
    world_id: str,
    order: Order,
    *,
    actor: str = "operator",
    role: str | None = None,
    submit_it: bool = True,
) -> RunResult:
    """Submit the order and run it through the agent (replaying when nothing changed).
    ``submit_it=False``: submitted already (a stream worker's claim); the agent handles the
    order as it was last submitted."""
    if submit_it:
        submit(app, world_id, order, actor=actor, role=role)
    app.refresh_policy()  # a version activated meanwhile decides this order (one small query)
    result = app.runner.handle(app.desk(world_id, order.order_id), order.order_id)
    decide_beside_quietly(app, world_id, result)  # a shadow candidate's decision, recorded
    return result


@dataclass(frozen=True)
class VoteOutcome:
    proposal: Proposal
    missing: str | None  # what the proposal still needs, while it is pending
    run: RunResult | None  # what the resumed thread did, when the vote settled the proposal
    counted: bool = True  # False when the proposal had its approvals already


def missing(app: Exdesk, proposal: Proposal) -> str | None:
    if proposal.status is not ProposalStatus.PENDING:
        return None
    votes = app.review.votes(proposal.proposal_id)
    policy = app.policy_for(proposal.order_id)
    return approvals_missing(proposal.tier, approvals_of(proposal, votes), policy)


def current_digest(app: Exdesk, proposal: Proposal) -> str:
    """What an approver of ``proposal`` approves now: its plan, the order's current version
    and the policy in force."""
    version = app.orders.version(proposal.world_id, proposal.order_id)
    return review_digest(proposal.plan_digest, version, app.policy_for(proposal.order_id).ref)


def voter(app: Exdesk, *, user: User | None, by: str | None, role: str | None) -> tuple[str, str]:
    """(name, role) of who votes. Once the desk has users, a vote needs one (a token): the
    name and role are theirs, and a ``by``/``role`` given must agree. Before, both are as
    stated (and the policy's [people] roster, when filled in, decides)."""
    if user is None and app.users.any():
        raise NotAllowed(
            "this desk has users: vote with your token (--token or EXDESK_TOKEN); "
            "`exdesk users add NAME --role ROLE` gives one"
        )
    if user is not None:
        if by is not None and person(by) != user.person:
            raise NotAllowed(f"your token is {user.name}'s; you cannot vote as {by!r}")
        if role is not None and role != user.role:
            raise NotAllowed(f"{user.name} is {user.role}, not {role}")
        if user.role not in ("approver", "supervisor"):
            raise NotAllowed(f"{user.name} is {user.role}: only approvers and supervisors vote")
        by, role = user.name, user.role
    if by is None:
        raise ApprovalError("say who you are (--by NAME)")
    return resolve_voter(by, role, app.policy)


def vote(
    app: Exdesk,
    proposal_id: str,
    *,
    by: str | None,
    role: str | None,
    decision: VoteDecision,
    reason: str | None = None,
    digest: str | None = None,
    user: User | None = None,
) -> VoteOutcome:
    """Record one person's vote (rules: ``domain.approvals``); run the plan when it is due."""
    app.refresh_policy()
    name, role = voter(app, user=user, by=by, role=role)
    settled = (ProposalStatus.APPROVED, ProposalStatus.EXECUTED)

    def work(conn: Connection) -> tuple[Proposal, bool]:
        proposal = app.review.lock(conn, proposal_id)
        if proposal.status in settled and decision == "approve":
            # Approved before, but its run did not finish (a crash), or another approver's
            # vote completed it a moment ago: nothing to record; finish it (once) below.
            return proposal, False
        votes = app.review.votes(proposal_id, conn)
        check_vote(
            proposal,
            votes,
            by=name,
            role=role,
            decision=decision,
            reason=reason,
            digest_seen=digest,
            current_digest=current_digest(app, proposal),
            policy=app.policy_for(proposal.order_id),
        )
        if decision == "approve":
            check_adders(app, conn, proposal, votes, name)
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
        status = status_after(proposal, [*votes, cast], app.policy_for(proposal.order_id))
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
                "digest": current_digest(app, proposal),
                "status_after": status.value,
            },
            conn=conn,
        )
        return proposal.model_copy(update={"status": status}), True

    proposal, counted = write(app.engine, work)
    if proposal.status is ProposalStatus.PENDING:
        return VoteOutcome(proposal, missing(app, proposal), None)
    return VoteOutcome(proposal, None, resume(app, proposal), counted=counted)


def resume(app: Exdesk, proposal: Proposal) -> RunResult:
    """Wake the order's thread that drafted ``proposal``: what was approved runs."""
    app.refresh_policy()
    desk = app.desk(proposal.world_id, proposal.order_id)
    try:
        return app.runner.resume(desk, proposal.thread_id)
    except LookupError as exc:
        raise ApprovalError(
            f"{proposal.proposal_id}: the run that drafted it ({proposal.thread_id}) is not in "
            "this database's graph checkpoints; handle order "
            f"{proposal.order_id} again (exdesk run) to draft it anew"
        ) from exc


def resolve_hold(
    app: Exdesk, world_id: str, order_id: str, kind: Kind, user: User, reason: str
) -> Order:
    """A person lifts the order's hold of ``kind`` (the customer confirmed the address, sent a
    new payment method, explained the duplicate), saying why. Once: the same hold lifted again
    changes nothing.

    The hold is lifted through the orders port, an outside system's business that cannot
    share the desk's transaction: the log brackets it (``tool.requested``, naming the person
    and the reason, commits before the call; ``tool.called`` after), and ``hold.resolved``
    closes it. A resolve cut short after the call (a crash, an append that failed) is
    finished by the next one for that order and kind, under the same key, with the first
    person's name and reason: nothing runs twice and the log is completed."""
    desk = app.desk(world_id)
    # The n-th resolve of this kind for this order version: its key is known before the call
    # and after the hold is gone, so a resolve cut short is found again.
    base = digest([world_id, order_id, kind.value, desk.version(order_id)])[:24]
    n = 0
    while app.audit.by_key(f"resolve:{base}:{n}:resolved") is not None:
        n += 1
    key = f"resolve:{base}:{n}"
    earlier = app.audit.by_key(f"{key}:requested")
    order = desk.order(order_id)
    if earlier is None and not any(h.kind == kind.value for h in order.holds):
        raise InputError(f"order {order_id} has no {kind.value} hold to lift")
    if earlier is not None:  # finishing a resolve cut short: it was theirs, for their reason
        by, why = str(earlier.payload["resolved_by"]), str(earlier.payload["reason"])
    else:
        by, why = user.name, reason
    action = Action(
        tool="orders", op="release_hold", args={"order_id": order_id, "kind": kind.value}
    )
    call_tool(desk, action, key, resolved_by=by, reason=why)
    app.audit.append(
        f"person:{by}",
        "hold.resolved",
        {"order_id": order_id, "world_id": world_id, "kind": kind.value, "reason": why},
        key=f"{key}:resolved",
    )
    return desk.order(order_id)
