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
