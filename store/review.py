"""The review queue: proposals waiting for people, and the approvals they collect.

Approvals are bound to the plan digest they were given for; a proposal whose plan,
order version or policy changed does not count them (see ``agent.approval``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from domain.approvals import approvals_missing, person, resolve_voter
from domain.errors import ApprovalError, InputError
from domain.models import Approval, Plan, Tier
from domain.policy import Policy
from store.db import approvals, proposals

OPEN = ("pending", "approved")
FINAL = ("executed", "rejected")  # a re-run keeps these outcomes


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    world_id: str
    order_id: str
    thread_id: str
    kind: str
    strategy: str
    tier: Tier
    plan: Plan
    plan_digest: str
    order_version: int
    policy_ref: str
    status: str
    detail: str | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _SHOWN}
        return {**shown, "tier": self.tier.value, "plan": self.plan.model_dump(mode="json")}


_SHOWN = {
    "proposal_id",
    "world_id",
    "order_id",
    "kind",
    "strategy",
    "status",
    "detail",
    "plan_digest",
    "order_version",
    "policy_ref",
}


def _row(r: Any) -> Proposal:
    values = {f.name: r._mapping[f.name] for f in fields(Proposal)}
    return Proposal(**{**values, "tier": Tier(r.tier), "plan": Plan.model_validate_json(r.plan)})


class ReviewQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def propose(
        self,
        *,
        world_id: str,
        order_id: str,
        thread_id: str,
        plan: Plan,
        plan_digest: str,
        order_version: int,
        policy_ref: str,
    ) -> str:
        """Queue a plan and return its id.

        The same plan for the same order version under the same policy is the same proposal,
        whichever run drafts it: a re-run keeps its votes (and its outcome), and the newest
        thread is the one a completed approval wakes.
        """
        seed = "|".join(
            [world_id, order_id, str(order_version), policy_ref, plan.kind.value, plan_digest]
        )
        proposal_id = "P-" + hashlib.sha256(seed.encode()).hexdigest()[:12]
        now = datetime.now(UTC)
        where = proposals.c.proposal_id == proposal_id
        with self.engine.begin() as conn:
            status = conn.execute(select(proposals.c.status).where(where)).scalar()
            if status is not None:
                if status not in FINAL:  # open again (a failed run, a superseded draft)
                    values = {"thread_id": thread_id, "updated_at": now}
                    if status not in OPEN:
                        values |= {"status": "pending", "detail": f"drafted again (was {status})"}
                    conn.execute(update(proposals).where(where).values(**values))
                return proposal_id
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
                    status="pending",
                    created_at=now,
                    updated_at=now,
                )
            )
        return proposal_id

    def get(self, proposal_id: str) -> Proposal:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(proposals).where(proposals.c.proposal_id == proposal_id)
            ).first()
        if row is None:
            raise InputError(
                f"no proposal {proposal_id!r}; `exdesk review list` shows the open ones"
            )
        return _row(row)

    def find(self, *, status: str | None = None, world_id: str | None = None) -> list[Proposal]:
        query = select(proposals).order_by(proposals.c.created_at, proposals.c.proposal_id)
        if status is not None:
            query = query.where(proposals.c.status == status)
        if world_id is not None:
            query = query.where(proposals.c.world_id == world_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def open_for(self, world_id: str, order_id: str) -> list[Proposal]:
        return [
            p for p in self.find(world_id=world_id) if p.order_id == order_id and p.status in OPEN
        ]

    def votes(self, proposal_id: str) -> list[dict[str, Any]]:
        query = (
            select(approvals).where(approvals.c.proposal_id == proposal_id).order_by(approvals.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def approvals(self, proposal: Proposal) -> list[Approval]:
        """The approvals given for this proposal's plan as it stands (digest matches)."""
        return [
            Approval(by=v["by"], role=v["role"], at=v["at"], reason=v["reason"])
            for v in self.votes(proposal.proposal_id)
            if v["decision"] == "approve" and v["plan_digest"] == proposal.plan_digest
        ]

    def missing(self, proposal: Proposal, policy: Policy) -> str | None:
        return approvals_missing(proposal.tier, self.approvals(proposal), policy)

    def vote(
        self,
        proposal_id: str,
        *,
        by: str,
        role: str | None,
        policy: Policy,
        decision: str = "approve",
        reason: str | None = None,
        plan_digest: str | None = None,
    ) -> Proposal:
        """Record one person's approve/reject. The agent never votes; each person once.

        ``role`` may be None when the policy lists people (their role comes from it).
        """
        by, role = resolve_voter(by, role, policy)
        if decision not in ("approve", "reject"):
            raise ApprovalError(f"decision must be approve or reject, not {decision!r}")
        proposal = self.get(proposal_id)
        if proposal.status != "pending":
            raise ApprovalError(
                f"{proposal_id} is {proposal.status}; only pending proposals take votes"
            )
        if plan_digest is not None and plan_digest != proposal.plan_digest:
            raise ApprovalError(
                f"{proposal_id}: the plan changed since you looked (digest {plan_digest[:12]} ≠ "
                f"{proposal.plan_digest[:12]}); review it again"
            )
        if any(person(v["by"]) == person(by) for v in self.votes(proposal_id)):
            raise ApprovalError(f"{by} has already voted on {proposal_id}; a second person must")
        if decision == "reject" and not (reason or "").strip():
            raise ApprovalError("a rejection needs a reason (--reason)")
        rule = policy.approvals.get(proposal.tier)
        if (
            decision == "approve"
            and rule is not None
            and rule.supervisor_with_reason
            and role == "supervisor"
            and not (reason or "").strip()
        ):
            raise ApprovalError(
                f"{proposal_id} is {proposal.tier.value}: a supervisor approves with a written "
                "reason (--reason)"
            )
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(approvals).values(
                        proposal_id=proposal_id,
                        by=by,
                        role=role,
                        reason=reason,
                        decision=decision,
                        plan_digest=proposal.plan_digest,
                        at=datetime.now(UTC),
                    )
                )
        except IntegrityError as exc:
            raise ApprovalError(
                f"{by} has already voted on {proposal_id}; a second person must"
            ) from exc
        if decision == "reject":
            self.set_status(proposal_id, "rejected", f"rejected by {by}: {reason}")
        elif self.missing(proposal, policy) is None:
            self.set_status(proposal_id, "approved", "approvals complete")
        return self.get(proposal_id)

    def set_status(self, proposal_id: str, status: str, detail: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(proposals)
                .where(proposals.c.proposal_id == proposal_id)
                .values(status=status, detail=detail, updated_at=datetime.now(UTC))
            )

    def summary(self, proposal: Proposal) -> dict[str, Any]:
        return {
            **proposal.as_json(),
            "votes": [
                {
                    k: (v.isoformat() if isinstance(v, datetime) else v)
                    for k, v in vote.items()
                    if k != "id"
                }
                for vote in self.votes(proposal.proposal_id)
            ],
        }
