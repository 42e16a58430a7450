"""Tiering and ranking of drafted plans, by policy and, on strong evidence, by past cases.

Evidence per plan: for a finding, the case memory is asked, for every strategy the policy
ranks for its kind, for the past cases of that kind that used it and whose situation is
similar to this one (above the memory's similarity floor). A plan cites the cases of its
strategy (``similar_cases``) and says how they ended (``evidence``). The contract's rule
(§4: at least ``min_cases`` similar cases, one strategy failing at least ``min_failure_gap``
more often than another) moves a plan above another only when both have such evidence, and
never changes a tier. Retrieved summaries are data: only strategy and success are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.context import Context
from domain.models import REQUEST_FLOORS, Draft, Finding, Kind, Plan, Strategy, Tier
from domain.policy import Policy
from knowledge.memory import CaseMemory, SimilarCase
from knowledge.situation import Situation, describe, situation_of
from tools.registry import action_tier

EVIDENCE_PER_STRATEGY = 10  # similar cases fetched per strategy


def tier_of(plan: Draft, policy: Policy) -> Tier:
    """Policy's tier for the strategy, raised by its variant, its money impact and its actions."""
    tier = policy.tiers[plan.strategy]
    floor = policy.tier_floors.get(plan.rank_key)
    if floor is not None:
        tier = Tier.at_least(tier, floor)
    if plan.kind is Kind.CUSTOMER_REQUEST:  # contract §8.1: a policy raises these, never lowers
        tier = Tier.at_least(tier, REQUEST_FLOORS.get(plan.strategy, Tier.L2))
        if plan.rank_key == f"{Strategy.HOLD_UNTIL_DATE.value}:late":
            tier = Tier.at_least(tier, Tier.L2)
    tier = Tier.at_least(tier, policy.money_tier(plan.cost_usd))
    for action in plan.actions:
        tier = Tier.at_least(tier, action_tier(action))
    return tier


# --- retrieving the evidence -------------------------------------------------------------


def ranked_strategies(policy: Policy, kind: Kind) -> tuple[Strategy, ...]:
    """The strategies the policy ranks for ``kind``: those a plan for it may use."""
    return tuple(
        dict.fromkeys(Strategy(e.split(":", 1)[0]) for e in policy.ranking.order_for(kind))
    )


def situation_for(ctx: Context, finding: Finding) -> Situation:
    """The finding's situation, in the order's language: what the memory is searched with."""
    return situation_of(ctx.order, finding, ctx.world)


def retrieve_evidence(
    memory: CaseMemory, situation: Situation, policy: Policy
) -> list[SimilarCase]:
    """The similar past cases of every strategy a plan for the situation's kind may use."""
    return memory.evidence(
        describe(situation),
        situation.kind,
        ranked_strategies(policy, situation.kind),
        per_strategy=EVIDENCE_PER_STRATEGY,
    )


# --- ranking -----------------------------------------------------------------------------


def _position(plan: Draft, order: Sequence[str]) -> int:
    for key in (plan.rank_key, plan.strategy.value):
        if key in order:
            return order.index(key)
    return len(order)


def _outcomes(cases: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """strategy → (similar cases, failures)."""
    counts: dict[str, tuple[int, int]] = {}
    for case in cases:
        n, failed = counts.get(str(case["strategy"]), (0, 0))
        counts[str(case["strategy"])] = (n + 1, failed + (0 if case.get("success") else 1))
    return counts


def beats(a: Strategy, b: Strategy, seen: dict[str, tuple[int, int]], policy: Policy) -> bool:
    """True when past cases show strongly that ``a`` fails less often than ``b``: both have
    similar cases, at least ``min_cases`` together, and ``b``'s failure rate is at least
    ``min_failure_gap`` above ``a``'s."""
    rule = policy.ranking.evidence
    if a == b or a.value not in seen or b.value not in seen:
        return False
    (na, fa), (nb, fb) = seen[a.value], seen[b.value]
    gap = fb / nb - fa / na
    return na + nb >= rule.min_cases and gap >= rule.min_failure_gap - 1e-9


def _evidence_line(strategy: str, seen: dict[str, tuple[int, int]]) -> str:
    n, failed = seen.get(strategy, (0, 0))
    if not n:
        return f"past cases: no similar case used {strategy}"
    ok = n - failed
    return (
        f"past cases: {n} similar case{'s' if n != 1 else ''} used {strategy}, "
        f"{ok} succeeded ({round(100 * ok / n)}%)"
    )


def rank(
    plans: Sequence[Draft], policy: Policy, similar: Sequence[dict[str, Any]] = ()
) -> list[Plan]:
    """Plans, tiered and best first, each with its score, the similar cases it cites and
    what they say."""
    order = policy.ranking.order_for(plans[0].kind) if plans else ()
    ranked = sorted(plans, key=lambda p: _position(p, order))
    seen = _outcomes(similar)
    moved: dict[int, str] = {}  # id(plan) → why it moved up
    if seen:
        for i in range(len(ranked)):
            for j in range(i + 1, len(ranked)):
                a, b = ranked[j], ranked[i]
                if beats(a.strategy, b.strategy, seen, policy):
                    na, fa = seen[a.strategy.value]
                    nb, fb = seen[b.strategy.value]
                    moved[id(a)] = (
                        f"ranked above {b.strategy.value} on past cases: it failed in "
                        f"{fa} of {na} similar cases, {b.strategy.value} in {fb} of {nb}"
                    )
                    ranked.insert(i, ranked.pop(j))
    out: list[Plan] = []
    for i, plan in enumerate(ranked):
        cited = tuple(str(c["case_id"]) for c in similar if c["strategy"] == plan.strategy.value)
        notes = [_evidence_line(plan.strategy.value, seen)] if seen else []
        if id(plan) in moved:
            notes.append(moved[id(plan)])
        out.append(
            Plan.model_validate(
                {
                    **plan.model_dump(include=set(Draft.model_fields)),
                    "evidence": (*plan.evidence, *notes),
                    "tier": tier_of(plan, policy),
                    "score": round((len(ranked) - i) / len(ranked), 3),
                    "similar_cases": cited,
                }
            )
        )
    return out
