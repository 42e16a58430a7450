"""Digests that bind approvals to exactly what was approved."""

from __future__ import annotations

import hashlib
from typing import Any

from domain.canonical import canonical_json
from domain.models import Plan


def digest(obj: Any) -> str:
    """SHA-256 over the RFC 8785 canonical JSON of a JSON-able value."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def plan_digest(plan: Plan) -> str:
    """What an approver approves: the strategy, the tier, each action and its arguments."""
    return digest(
        {
            "kind": plan.kind.value,
            "strategy": plan.strategy.value,
            "tier": plan.tier.value,
            "cost_usd": str(plan.cost_usd),
            "actions": [a.model_dump(mode="json") for a in plan.actions],
        }
    )


def review_digest(plan_digest_hex: str, order_version: int, policy_ref: str) -> str:
    """What an approver approves, as one value: the plan (its actions and arguments), the
    order's version and the policy's version. ``plan.order.policy``, each part readable."""
    return f"{plan_digest_hex[:24]}.{order_version}.{policy_ref.rsplit('@', 1)[-1]}"


def what_changed(seen: str, current: str, earlier_plans: tuple[str, ...] = ()) -> str | None:
    """None when ``seen`` is ``current`` (a review digest, or just its plan part); otherwise
    which of the plan, the order and the policy changed since ``seen`` was shown, or
    ``"digest"`` when ``seen`` was never a digest of this proposal. ``earlier_plans``: the
    digests the proposal's plan had before it was edited."""
    if seen == current:
        return None
    now = current.split(".")
    parts = seen.split(".")
    if len(parts) not in (1, 3) or len(parts[0]) < 12:
        return "digest"

    def plan_is(digest: str) -> bool:
        return digest.startswith(parts[0]) or parts[0].startswith(digest[: len(parts[0])])

    changed: list[str] = []
    if not now[0].startswith(parts[0][:24]):
        if not any(plan_is(d) for d in earlier_plans):
            return "digest"
        changed.append("plan")
    if len(parts) == 3:
        if not parts[1].isdigit() or int(parts[1]) > int(now[1]):
            return "digest"
        if parts[1] != now[1]:
            changed.append("order")
        if parts[2] != now[2]:
            changed.append("policy")
    return " and ".join(changed) or None
