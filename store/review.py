"""The review queue: proposals waiting for people, and the votes they collect.

Writes take a connection in a transaction the caller owns, so that a vote, the proposal's new
status and the audit entry that records them commit together. The rules for votes are in
``domain.approvals``; this module only stores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from domain.errors import NotFound
from domain.models import Plan, Proposal, ProposalStatus, Vote
from store.schema import proposals, votes

FINAL = (ProposalStatus.EXECUTED, ProposalStatus.REJECTED)  # a re-run keeps these outcomes


def proposal_id_for(
    *, world_id: str, order_id: str, order_version: int, policy_ref: str, plan: Plan, digest: str
) -> str:
    """The same plan for the same order version under the same policy is the same proposal,
    whichever run drafts it."""
    seed = "|".join([world_id, order_id, str(order_version), policy_ref, plan.kind.value, digest])
    return "P-" + hashlib.sha256(seed.encode()).hexdigest()[:12]


def _proposal(row: Any) -> Proposal:
    m = row._mapping
    return Proposal.model_validate(
        {
            **{k: m[k] for k in Proposal.model_fields if k not in ("plan", "earlier_plans")},
            "plan": Plan.model_validate_json(m["plan"]),
            "earlier_plans": tuple(json.loads(m["earlier_plans"] or "[]")),
        }
    )


def _vote(row: Any) -> Vote:
    return Vote.model_validate({k: row._mapping[k] for k in Vote.model_fields})


class ReviewQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- writing (in the caller's transaction) --------------------------------------------

    def propose(
        self,
        conn: Connection,
        *,
        world_id: str,
        order_id: str,
        thread_id: str,
        plan: Plan,
        plan_digest: str,
        order_version: int,
        policy_ref: str,
        deadline: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[str, bool]:
        """Queue a plan; returns its id and whether it was queued just now.

        A proposal already queued keeps its votes and its outcome; one that was superseded or
        voided is pending again (the same plan, drafted again for the same order version).
        """
        proposal_id = proposal_id_for(
            world_id=world_id,
            order_id=order_id,
            order_version=order_version,
            policy_ref=policy_ref,
            plan=plan,
            digest=plan_digest,
        )
        now = datetime.now(UTC)
        where = proposals.c.proposal_id == proposal_id
        status = conn.execute(select(proposals.c.status).where(where).with_for_update()).scalar()
        if status is not None:
            values: dict[str, Any] = {"thread_id": thread_id, "updated_at": now}
            if not ProposalStatus(status).is_open and ProposalStatus(status) not in FINAL:
                values |= {
                    "status": ProposalStatus.PENDING,
                    "detail": f"drafted again (was {status})",
                }
            conn.execute(update(proposals).where(where).values(**values))
            return proposal_id, False
        conn.execute(
            insert(proposals).values(
                proposal_id=proposal_id,
                world_id=world_id,
                order_id=order_id,
                thread_id=thread_id,
                kind=plan.kind.value,
                strategy=plan.strategy.value,
                tier=plan.tier.value,
                plan=plan.model_dump_json(),
                plan_digest=plan_digest,
                order_version=order_version,
                policy_ref=policy_ref,
                status=ProposalStatus.PENDING.value,
                created_at=now,
                updated_at=now,
                deadline=deadline,
                expires_at=expires_at,
            )
        )
        return proposal_id, True

    def lock(self, conn: Connection, proposal_id: str) -> Proposal:
        """The proposal, its row held until the transaction ends (votes serialize on it)."""
        row = conn.execute(
            select(proposals).where(proposals.c.proposal_id == proposal_id).with_for_update()
        ).first()
        if row is None:
            raise _unknown(proposal_id)
        return _proposal(row)

    def replace_plan(self, conn: Connection, proposal: Proposal, plan: Plan, digest: str) -> int:
        """An edited plan takes the proposal's place; the votes given for the old one go.
        Returns how many votes went (the audit entry of the edit records them)."""
        pid = proposal.proposal_id
        dropped = conn.execute(delete(votes).where(votes.c.proposal_id == pid)).rowcount
        earlier = [*proposal.earlier_plans, proposal.plan_digest]
        conn.execute(
            update(proposals)
            .where(proposals.c.proposal_id == pid)
            .values(
                plan=plan.model_dump_json(),
                plan_digest=digest,
                tier=plan.tier.value,
                earlier_plans=json.dumps(earlier),
                updated_at=datetime.now(UTC),
            )
        )
        return int(dropped or 0)

    def lock_open(self, conn: Connection) -> list[Proposal]:
        """Every open proposal (pending or approved), oldest first, their rows held until the
        transaction ends (a vote waits for it)."""
        query = (
            select(proposals)
            .where(proposals.c.status.in_([s.value for s in ProposalStatus if s.is_open]))
            .order_by(proposals.c.created_at, proposals.c.proposal_id)
            .with_for_update()
        )
        return [_proposal(r) for r in conn.execute(query)]

    def rebind(
        self,
        conn: Connection,
        proposal_id: str,
        *,
        policy_ref: str,
        status: ProposalStatus,
        detail: str,
    ) -> None:
        """The proposal is bound to another policy version (which decides it the same)."""
        conn.execute(
            update(proposals)
            .where(proposals.c.proposal_id == proposal_id)
            .values(
                policy_ref=policy_ref,
                status=status.value,
                detail=detail,
                updated_at=datetime.now(UTC),
            )
        )

    def mark_escalated(self, conn: Connection, proposal_id: str, at: datetime) -> bool:
        query = (
            update(proposals)
            .where(proposals.c.proposal_id == proposal_id, proposals.c.escalated_at.is_(None))
            .values(escalated_at=at)
        )
        return bool(conn.execute(query).rowcount)

    def due(self, now: datetime) -> tuple[list[Proposal], list[Proposal]]:
        """Pending proposals past their deadline and not escalated yet, and those past their
        expiry."""
        pending = proposals.c.status == ProposalStatus.PENDING.value
        late = select(proposals).where(
            pending, proposals.c.deadline <= now, proposals.c.escalated_at.is_(None)
        )
        expired = select(proposals).where(pending, proposals.c.expires_at <= now)
        with self.engine.connect() as conn:
            return (
                [_proposal(r) for r in conn.execute(late)],
                [_proposal(r) for r in conn.execute(expired)],
            )

    def add_vote(self, conn: Connection, proposal_id: str, vote: Vote) -> None:
        conn.execute(insert(votes).values(proposal_id=proposal_id, **vote.model_dump()))

    def set_status(
        self,
        conn: Connection,
        proposal_id: str,
        status: ProposalStatus,
        detail: str | None = None,
        *,
        only_from: Sequence[ProposalStatus] | None = None,
    ) -> bool:
        """Move the proposal to ``status``; with ``only_from``, only from one of those.
        Returns whether it moved."""
        query = update(proposals).where(proposals.c.proposal_id == proposal_id)
        if only_from is not None:
            query = query.where(proposals.c.status.in_([s.value for s in only_from]))
        values = {"status": status.value, "detail": detail, "updated_at": datetime.now(UTC)}
        return bool(conn.execute(query.values(**values)).rowcount)

    # --- reading ---------------------------------------------------------------------------

    def get(self, proposal_id: str) -> Proposal:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(proposals).where(proposals.c.proposal_id == proposal_id)
            ).first()
        if row is None:
            raise _unknown(proposal_id)
        return _proposal(row)

    def find(
        self,
        *,
        status: ProposalStatus | None = None,
        world_id: str | None = None,
        order_id: str | None = None,
    ) -> list[Proposal]:
        query = select(proposals).order_by(proposals.c.created_at, proposals.c.proposal_id)
        if status is not None:
            query = query.where(proposals.c.status == status.value)
        if world_id is not None:
            query = query.where(proposals.c.world_id == world_id)
        if order_id is not None:
            query = query.where(proposals.c.order_id == order_id)
        with self.engine.connect() as conn:
            return [_proposal(r) for r in conn.execute(query)]

    def open_for(self, world_id: str, order_id: str) -> list[Proposal]:
        return [p for p in self.find(world_id=world_id, order_id=order_id) if p.status.is_open]

    def votes(self, proposal_id: str, conn: Connection | None = None) -> list[Vote]:
        query = select(votes).where(votes.c.proposal_id == proposal_id).order_by(votes.c.id)
        if conn is not None:
            return [_vote(r) for r in conn.execute(query)]
        with self.engine.connect() as own:
            return [_vote(r) for r in own.execute(query)]


def _unknown(proposal_id: str) -> NotFound:
    return NotFound(f"no proposal {proposal_id!r}; `exdesk review list` shows the open ones")
