"""Tiering and ranking of drafted plans, by policy and, on strong evidence, by past cases.

Evidence per plan: for a finding, the case memory is asked, for every strategy the policy
ranks for its kind, for the past cases of that kind that used it and whose situation is
similar to this one (above the memory's similarity floor), and, for each drafted plan with
parameters of its own (``agent.variants``: the warehouse a reallocation ships from, the SKU
a substitute is), for the cases of its strategy whose plan had those very parameters. A plan
cites the cases of its variant where the memory holds some, else those of its strategy
(``similar_cases``), and says which and how they ended (``evidence``). The contract's rule
(§4: at least ``min_cases`` similar cases, one strategy failing at least ``min_failure_gap``
more often than another) moves a plan above another only when both have such evidence, and
never changes a tier. Retrieved summaries are data: only strategy and success are counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.context import Context
from agent.variants import describe_variant, variant_of
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
    memory: CaseMemory, situation: Situation, policy: Policy, drafts: Sequence[Draft] = ()
) -> list[SimilarCase]:
    """The similar past cases of every strategy a plan for the situation's kind may use, and
    of every drafted plan's own parameters."""
    return memory.evidence(
        describe(situation),
        situation.kind,
        ranked_strategies(policy, situation.kind),
        per_strategy=EVIDENCE_PER_STRATEGY,
        variants=[(d.strategy, variant_of(d)) for d in drafts],
    )


# --- ranking -----------------------------------------------------------------------------


def _position(plan: Draft, order: Sequence[str]) -> int:
    for key in (plan.rank_key, plan.strategy.value):
        if key in order:
            return order.index(key)
    return len(order)


def _counts(cases: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(similar cases, failures)."""
    return len(cases), sum(1 for c in cases if not c.get("success"))


def cases_for(
    plan: Draft, similar: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], dict[str, str] | None]:
    """The past cases a plan's evidence counts, and the parameters they matched on: those of
    its variant where the memory found some, else those of its strategy (None)."""
    params = variant_of(plan)
    strategy = plan.strategy.value
    if params:
        matched = [c for c in similar if c["strategy"] == strategy and c.get("on") == params]
        if matched:
            return matched, params
    return [c for c in similar if c["strategy"] == strategy and not c.get("on")], None


def _strongly_better(a: tuple[int, int], b: tuple[int, int], policy: Policy) -> bool:
    rule = policy.ranking.evidence
    (na, fa), (nb, fb) = a, b
    if not na or not nb:
        return False
    gap = fb / nb - fa / na
    return na + nb >= rule.min_cases and gap >= rule.min_failure_gap - 1e-9


def beats(a: Strategy, b: Strategy, seen: dict[str, tuple[int, int]], policy: Policy) -> bool:
    """True when past cases show strongly that ``a`` fails less often than ``b``: both have
    similar cases, at least ``min_cases`` together, and ``b``'s failure rate is at least
    ``min_failure_gap`` above ``a``'s."""
    if a == b or a.value not in seen or b.value not in seen:
        return False
    return _strongly_better(seen[a.value], seen[b.value], policy)


def _evidence_line(strategy: str, counts: tuple[int, int], on: Mapping[str, str] | None) -> str:
    """What a plan's past cases say: those of its own parameters (``past cases that shipped
    from WH-SZX: ...``), else those of its strategy (``past cases: ...``, as before variants
    were matched, so that runs recorded before replay the same)."""
    n, failed = counts
    head = f"past cases that {describe_variant(on)}" if on else "past cases"
    if not n:
        return f"{head}: no similar case used {strategy}"
    ok = n - failed
    return (
        f"{head}: {n} similar case{'s' if n != 1 else ''} used {strategy}, "
        f"{ok} succeeded ({round(100 * ok / n)}%)"
    )


def rank(
    plans: Sequence[Draft], policy: Policy, similar: Sequence[dict[str, Any]] = ()
) -> list[Plan]:
    """Plans, tiered and best first, each with its score, the similar cases it cites and
    what they say."""
    order = policy.ranking.order_for(plans[0].kind) if plans else ()
    ranked = sorted(plans, key=lambda p: _position(p, order))
    own = {id(p): cases_for(p, similar) for p in ranked}  # id(plan) → (cases, matched on)
    counts = {key: _counts(found) for key, (found, _) in own.items()}
    moved: dict[int, str] = {}  # id(plan) → why it moved up
    if similar:
        for i in range(len(ranked)):
            for j in range(i + 1, len(ranked)):
                a, b = ranked[j], ranked[i]
                if a.strategy != b.strategy and _strongly_better(
                    counts[id(a)], counts[id(b)], policy
                ):
                    na, fa = counts[id(a)]
                    nb, fb = counts[id(b)]
                    moved[id(a)] = (
                        f"ranked above {b.strategy.value} on past cases: it failed in "
                        f"{fa} of {na} similar cases, {b.strategy.value} in {fb} of {nb}"
                    )
                    ranked.insert(i, ranked.pop(j))
    out: list[Plan] = []
    for i, plan in enumerate(ranked):
        found, on = own[id(plan)]
        cited = tuple(str(c["case_id"]) for c in found)
        line = _evidence_line(plan.strategy.value, counts[id(plan)], on)
        notes = [line] if similar else []
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
