"""Whether the approvals a proposal holds satisfy its tier. Pure rules, no IO."""

from __future__ import annotations

from collections.abc import Sequence

from domain.errors import ApprovalError
from domain.models import Approval, Tier
from domain.policy import Policy

AGENT_ACTORS = frozenset({"agent", "exdesk", "system"})
VOTING_ROLES = ("approver", "supervisor")


def person(name: str) -> str:
    """The identity behind a name as typed: case and spacing do not make another person."""
    return " ".join(name.split()).casefold()


def resolve_voter(by: str, role: str | None, policy: Policy) -> tuple[str, str]:
    """(name, role) of someone who wants to vote, or ApprovalError saying why they cannot.

    When the policy lists people, only they vote, with the role it gives them.
    """
    name = " ".join(by.split())
    if not name:
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
