"""customs_block: cancel what may not ship, fix what the order itself can fix, else a person."""

from __future__ import annotations

from typing import Any

from agent.context import Context
from agent.playbooks.common import act, cancel, manual_review, plan
from domain.models import Action, Draft, Finding, Strategy


def _catalog_code(ctx: Context, sku: str) -> str | None:
    for item in ctx.world.catalog:
        if item.sku == sku and ctx.checkers.hs.is_valid(item.hs_code):
            return item.hs_code
    return None


def _hs_fix(ctx: Context, line_ids: list[str]) -> dict[str, str] | None:
    """line_id → catalog code for the lines named, or None when some line has no fix."""
    fixes: dict[str, str] = {}
    for line in ctx.order.lines:
        if line.line_id not in line_ids:
            continue
        code = _catalog_code(ctx, line.sku)
        if code is None or code == line.hs_code:
            return None
        fixes[line.line_id] = code
    return fixes


def _fixes(
    ctx: Context, problems: list[dict[str, Any]]
) -> tuple[list[str], dict[str, str], list[str]]:
    """(documents to attach, HS codes to set by line, problems without a fix)."""
    documents: list[str] = []
    codes: dict[str, str] = {}
    unfixable: list[str] = []
    for problem in problems:
        kind = problem["type"]
        if kind == "missing_document":
            doc = problem["document"]
            if doc in ctx.policy.customs.generated:
                documents.append(doc)
            else:
                unfixable.append(f"{doc} cannot be generated from the order")
        elif kind in ("hs_code", "hs_hold"):
            named = [problem["line_id"]] if problem.get("line_id") else []
            if not named and problem.get("sku"):
                named = [ln.line_id for ln in ctx.order.lines if ln.sku == problem["sku"]]
            if not named:
                named = [
                    ln.line_id
                    for ln in ctx.order.lines
                    if (code := _catalog_code(ctx, ln.sku)) and code != ln.hs_code
                ]
            fix = _hs_fix(ctx, named) if named else None
            if fix:
                codes.update(fix)
            else:
                unfixable.append("no valid catalog HS code differs from the one declared")
        else:
            unfixable.append(f"customs hold: {problem['reason']}")
    return sorted(set(documents)), codes, unfixable


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    facts = finding.facts
    if facts["embargoed"]:
        return [cancel(ctx, finding, f"{ctx.destination} is an embargoed destination")]
    if facts["prohibited"]:
        return [cancel(ctx, finding, "customs holds the goods as prohibited")]
    documents, codes, unfixable = _fixes(ctx, facts["problems"])
    order_id = ctx.order.order_id
    plans: list[Draft] = []
    if not unfixable and (documents or codes):
        actions: list[Action] = []
        if codes:
            actions.append(
                act(
                    "orders",
                    "set_lines",
                    order_id=order_id,
                    changes={line_id: {"hs_code": code} for line_id, code in codes.items()},
                )
            )
        actions += [
            act("customs", "attach_document", order_id=order_id, document=d) for d in documents
        ]
        parts = [f"line {lid} HS code → {code} (catalog)" for lid, code in codes.items()]
        parts += [f"generate and attach {d}" for d in documents]
        strategy = Strategy.CUSTOMS_FIX_HS_CODE if codes else Strategy.CUSTOMS_ATTACH_DOCUMENT
        text = "; ".join(parts)
        plans.append(plan(finding, strategy, actions, rationale=text[0].upper() + text[1:] + "."))
    why = "; ".join(unfixable) if unfixable else "customs problems need a person's check"
    plans.append(manual_review(ctx, finding, why))
    return plans
