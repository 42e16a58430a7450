"""Tiering and ranking of drafted plans, by policy and, on strong evidence, by past cases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.models import Draft, Plan, Tier
from domain.policy import Policy
from tools.registry import action_tier


def tier_of(plan: Draft, policy: Policy) -> Tier:
    """Policy's tier for the strategy, raised by its variant, its money impact and its actions."""
    tier = policy.tiers[plan.strategy]
    floor = policy.tier_floors.get(plan.rank_key)
    if floor is not None:
        tier = Tier.at_least(tier, floor)
    tier = Tier.at_least(tier, policy.money_tier(plan.cost_usd))
    for action in plan.actions:
        tier = Tier.at_least(tier, action_tier(action))
    return tier


def _position(plan: Draft, order: Sequence[str]) -> int:
    for key in (plan.rank_key, plan.strategy.value):
        if key in order:
            return order.index(key)
    return len(order)


def _failure_rates(cases: Sequence[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """strategy → (cases, failure rate) among the similar past cases."""
    counts: dict[str, list[int]] = {}
    for case in cases:
        seen = counts.setdefault(str(case["strategy"]), [0, 0])
        seen[0] += 1
        seen[1] += 0 if case.get("success") else 1
    return {s: (n, failed / n) for s, (n, failed) in counts.items()}


def _beats(a: Draft, b: Draft, rates: dict[str, tuple[int, float]], policy: Policy) -> bool:
    """True when past cases show strongly that ``a`` fails less often than ``b``."""
    rule = policy.ranking.evidence
    if a.strategy == b.strategy or a.strategy not in rates or b.strategy not in rates:
        return False
    (na, fa), (nb, fb) = rates[a.strategy], rates[b.strategy]
    return na + nb >= rule.min_cases and fb - fa >= rule.min_failure_gap


def rank(
    plans: Sequence[Draft], policy: Policy, similar: Sequence[dict[str, Any]] = ()
) -> list[Plan]:
    """Plans, tiered and best first, each with its score and the similar cases it cites."""
    order = policy.ranking.order_for(plans[0].kind) if plans else ()
    ranked = sorted(plans, key=lambda p: _position(p, order))
    rates = _failure_rates(similar)
    if rates:
        for i in range(len(ranked)):
            for j in range(i + 1, len(ranked)):
                if _beats(ranked[j], ranked[i], rates, policy):
                    ranked.insert(i, ranked.pop(j))
    out: list[Plan] = []
    for i, plan in enumerate(ranked):
        cited = tuple(str(c["case_id"]) for c in similar if c["strategy"] == plan.strategy.value)
        out.append(
            Plan.model_validate(
                {
                    **plan.model_dump(include=set(Draft.model_fields)),
                    "tier": tier_of(plan, policy),
                    "score": round((len(ranked) - i) / len(ranked), 3),
                    "similar_cases": cited,
                }
            )
        )
    return out
