"""Whether the approvals a proposal holds satisfy its tier. Pure rules, no IO."""

from __future__ import annotations

from collections.abc import Sequence

from domain.models import Approval, Tier
from domain.policy import Policy

AGENT_ACTORS = frozenset({"agent", "exdesk", "system"})


def approvals_missing(tier: Tier, approvals: Sequence[Approval], policy: Policy) -> str | None:
    """None when the approvals are enough for ``tier``; otherwise what is still needed."""
    if tier is Tier.L1:
        return None
    rule = policy.approvals[tier]
    valid = [a for a in approvals if a.role in rule.roles and a.by not in AGENT_ACTORS]
    people = {a.by for a in valid}
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
