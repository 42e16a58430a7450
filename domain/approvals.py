"""The vote rules: who may vote, whether a vote can be taken, and whether the approvals a
proposal holds satisfy its tier. Pure functions, no IO."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from domain.digest import what_changed
from domain.errors import ApprovalError, StaleDigest
from domain.models import Approval, Proposal, ProposalStatus, Tier, Vote, VoteDecision
from domain.policy import Policy

AGENT_ACTORS = frozenset({"agent", "exdesk", "system", "exdesk-agent"})
VOTING_ROLES = ("approver", "supervisor")


def person(name: str) -> str:
    """The identity behind a name as typed: Unicode compatibility forms (full-width letters),
    case, spacing and invisible characters do not make another person."""
    text = unicodedata.normalize("NFKC", name)
    kept = (c for c in text if not c.isspace() and unicodedata.category(c) not in ("Cf", "Cc"))
    return "".join(kept).casefold()


def resolve_voter(by: str, role: str | None, policy: Policy) -> tuple[str, str]:
    """(name, role) of someone who wants to vote, or ApprovalError saying why they cannot.

    When the policy lists people, only they vote, with the role it gives them.
    """
    name = " ".join(by.split())
    if not person(name):
        raise ApprovalError("say who you are (--by NAME)")
    if person(name) in AGENT_ACTORS:
        raise ApprovalError(f"{name!r} is the agent's name; the agent never approves")
    if policy.people:
        listed = {person(n): r for n, r in policy.people.items()}
        if person(name) not in listed:
            raise ApprovalError(
                f"{name} is not listed under [people] in the policy; ask to be added"
            )
        if role is not None and role != listed[person(name)]:
            raise ApprovalError(f"{name} is {listed[person(name)]} in the policy, not {role}")
        role = listed[person(name)]
    role = role or "approver"
    if role not in VOTING_ROLES:
        raise ApprovalError(f"role {role!r} cannot approve; use approver or supervisor")
    return name, role


def approvals_of(proposal: Proposal, votes: Sequence[Vote]) -> list[Approval]:
    """The approvals given for the proposal's plan as it stands (the digest matches)."""
    return [
        Approval(by=v.by, role=v.role, at=v.at, reason=v.reason)
        for v in votes
        if v.decision == "approve" and v.plan_digest == proposal.plan_digest
    ]


def approvals_missing(tier: Tier, approvals: Sequence[Approval], policy: Policy) -> str | None:
    """None when the approvals are enough for ``tier``; otherwise what is still needed."""
    if tier is Tier.L1:
        return None
    rule = policy.approvals[tier]
    valid = [a for a in approvals if a.role in rule.roles and person(a.by) not in AGENT_ACTORS]
    people = {person(a.by) for a in valid}
    needs: list[str] = []
    if len(people) < rule.approvals:
        needs.append(
            f"{rule.approvals - len(people)} more approval(s) from different people "
            f"with role {' or '.join(rule.roles)}"
        )
    if rule.supervisor_with_reason and not any(
        a.role == "supervisor" and (a.reason or "").strip() for a in valid
    ):
        needs.append("a supervisor's approval with a written reason")
    return "; ".join(needs) or None


def check_vote(
    proposal: Proposal,
    votes: Sequence[Vote],
    *,
    by: str,
    role: str,
    decision: VoteDecision,
    reason: str | None,
    digest_seen: str | None,
    current_digest: str,
    policy: Policy,
) -> None:
    """ApprovalError saying why this vote cannot be taken; None when it can.

    ``by`` and ``role`` come from :func:`resolve_voter`; ``current_digest`` is the proposal's
    review digest now (``domain.digest.review_digest``), which ``digest_seen`` must match.
    """
    pid = proposal.proposal_id
    if decision not in ("approve", "reject"):
        raise ApprovalError(f"decision must be approve or reject, not {decision!r}")
    if proposal.status is not ProposalStatus.PENDING:
        raise ApprovalError(f"{pid} is {proposal.status.value}; only pending proposals take votes")
    changed = (
        None
        if digest_seen is None
        else what_changed(digest_seen, current_digest, proposal.earlier_plans)
    )
    if changed == "digest":
        raise StaleDigest(
            f"{pid}: {digest_seen!r} is not a digest of this proposal; look at it again "
            f"(`exdesk review show {pid}`) and approve what it shows"
        )
    if changed is not None:
        raise StaleDigest(
            f"{pid}: the {changed} changed since you looked (digest {digest_seen} is now "
            f"{current_digest}); look at it again and approve what it shows"
        )
    if any(v.person == person(by) for v in votes):
        raise ApprovalError(f"{by} has already voted on {pid}; a second person must")
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
            f"{pid} is {proposal.tier.value}: a supervisor approves with a written reason "
            "(--reason)"
        )


def status_after(proposal: Proposal, votes: Sequence[Vote], policy: Policy) -> ProposalStatus:
    """The proposal's status once ``votes`` (the new one included) are counted."""
    if any(v.decision == "reject" for v in votes):
        return ProposalStatus.REJECTED
    if approvals_missing(proposal.tier, approvals_of(proposal, votes), policy) is None:
        return ProposalStatus.APPROVED
    return ProposalStatus.PENDING
