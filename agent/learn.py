"""Learning from outcomes: every plan that reached an outcome becomes a past case.

A plan that ran (L1 at once, or L2/L3 once approved) is remembered as succeeded; one the
tools could not carry out as failed. A plan that was rejected, voided or superseded never
ran and teaches nothing about its strategy. The case is written in the order's language from
the finding's situation, with what was done and how it ended; its id names the world, the
order, its version and the kind, so running again updates it, and a later outcome (the
customer never answered, the parcel came back) can be recorded against it
(``exdesk knowledge outcome``).
"""

from __future__ import annotations

from agent.context import Context
from agent.variants import variant_of
from domain.models import Decision, DecisionStatus, Finding, Plan, ProposalStatus
from knowledge.cases import Outcome, PastCase
from knowledge.situation import Situation, describe, describe_outcome
from store.review import ReviewQueue


def learned_case_id(world_id: str, order_id: str, version: int, finding: Finding) -> str:
    return f"{world_id}:{order_id}:v{version}:{finding.kind.value}"


def succeeded(decision: Decision, review: ReviewQueue) -> bool | None:
    """True or False when the plan reached an outcome through the tools; None when it never
    ran (rejected, voided, superseded, still waiting)."""
    if decision.status is DecisionStatus.EXECUTED:
        return True
    if decision.status is not DecisionStatus.FAILED:
        return None
    if decision.proposal_id is None:
        return False  # an L1 plan the tools could not carry out
    proposal = review.get(decision.proposal_id)
    return False if proposal is not None and proposal.status is ProposalStatus.FAILED else None


def learned_summary(situation: Situation, strategy: str, success: bool) -> str:
    """What a learned case says (and the case memory embeds): the situation, what was done
    and whether it worked, in the situation's language."""
    lang = situation.lang
    sep = " " if lang == "en" else ""
    return describe(situation) + sep + describe_outcome(strategy, success, lang)


def learned_case(
    ctx: Context,
    situation: Situation,
    plan: Plan,
    success: bool,
    *,
    case_id: str,
    detail: str | None,
) -> PastCase:
    """The case to remember: the situation as it was found (before the plan changed the
    order), what was done and how it ended, in the order's language."""
    return PastCase(
        case_id=case_id,
        kind=situation.kind,
        summary=learned_summary(situation, plan.strategy.value, success),
        order=ctx.order,
        strategy=plan.strategy,
        outcome=Outcome(success=success, cost_usd=plan.cost_usd, note=detail),
        resolved_at=ctx.world.now,
        situation=situation,
        variant=variant_of(plan),
    )
