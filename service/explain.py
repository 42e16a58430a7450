"""Words for approvers (contract §8): a plan explained in plain language, and a summary with a
suggested next step on ``manual_review`` proposals. Marked as the model's when it wrote them
(``agent.words``); written once per proposal, plan digest and language."""

from __future__ import annotations

from typing import Any

from agent import words
from domain.models import Proposal, Strategy
from service.wiring import Exdesk
from store.words import Words, WordsCache
from tools.registry import ACTIONS


def _context(proposal: Proposal) -> dict[str, Any]:
    plan = proposal.plan
    return {
        "order_id": proposal.order_id,
        "kind": proposal.kind.value,
        "strategy": plan.strategy.value,
        "tier": proposal.tier.value,
        "money_at_stake_usd": str(plan.cost_usd),
        "rationale": plan.rationale,
        "evidence": list(plan.evidence),
        "actions": [
            {
                "does": ACTIONS[(a.tool, a.op)].describe if (a.tool, a.op) in ACTIONS else "?",
                "tool": a.tool,
                "op": a.op,
                "args": a.args,
            }
            for a in plan.actions
        ],
    }


def language(accept: str | None) -> str:
    """The approver's language from an Accept-Language header (or a --lang value)."""
    return "zh" if (accept or "").strip().lower().startswith("zh") else "en"


def explanation(app: Exdesk, proposal: Proposal, lang: str) -> Words:
    return words.write(
        app.model,
        WordsCache(app.engine),
        app.audit,
        purpose="explanation",
        subject=proposal.proposal_id,
        plan_digest=proposal.plan_digest,
        lang=lang,
        context=_context(proposal),
        template=words.plan_template(proposal.plan, lang),
    )


def summary(app: Exdesk, proposal: Proposal, lang: str) -> Words | None:
    """A manual_review proposal's summary and next step (None for other strategies)."""
    if proposal.strategy is not Strategy.MANUAL_REVIEW:
        return None
    return words.write(
        app.model,
        WordsCache(app.engine),
        app.audit,
        purpose="summary",
        subject=proposal.proposal_id,
        plan_digest=proposal.plan_digest,
        lang=lang,
        context=_context(proposal),
        template=words.plan_template(proposal.plan, lang, summary=True),
    )


def shown(said: Words | None) -> dict[str, Any] | None:
    if said is None:
        return None
    return {"text": said.text, "by": said.by, "language": said.language, "model": said.by_model}
