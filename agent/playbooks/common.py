"""Small builders the playbooks share."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from agent.context import Context
from domain.models import Action, Draft, Finding, Strategy


def act(tool: str, op: str, **args: Any) -> Action:
    return Action(tool=tool, op=op, args=args)


def hold(ctx: Context, kind: str, reason: str, *, until: str | None = None) -> Action:
    extra = {"until": until} if until else {}
    return act(
        "orders", "place_hold", order_id=ctx.order.order_id, kind=kind, reason=reason, **extra
    )


def notify(ctx: Context, template: str, **data: Any) -> Action:
    return act("notify", "send", order_id=ctx.order.order_id, template=template, data=data)


def plan(
    finding: Finding,
    strategy: Strategy,
    actions: Sequence[Action],
    *,
    rationale: str,
    variant: str | None = None,
    cost_usd: Decimal = Decimal(0),
    evidence: Sequence[str] = (),
) -> Draft:
    return Draft(
        kind=finding.kind,
        strategy=strategy,
        actions=tuple(actions),
        cost_usd=max(cost_usd, Decimal(0)),
        rank_key=f"{strategy.value}:{variant}" if variant else strategy.value,
        rationale=rationale,
        evidence=tuple(evidence) or finding.evidence,
    )


def manual_review(ctx: Context, finding: Finding, why: str) -> Draft:
    return plan(
        finding,
        Strategy.MANUAL_REVIEW,
        [hold(ctx, finding.kind.value, f"queued for manual review: {why}")],
        rationale=f"Hold the order and queue it for a person: {why}.",
    )


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def cancel(ctx: Context, finding: Finding, why: str) -> Draft:
    """Cancel the order and refund what was captured."""
    order = ctx.order
    actions = [act("orders", "set_status", order_id=order.order_id, status="cancelled")]
    refund = Decimal(0)
    if order.payment.status == "captured" and order.payment.amount > 0:
        refund = ctx.to_usd(order.payment.amount)
        actions.append(
            act(
                "payment",
                "refund",
                order_id=order.order_id,
                amount=money(order.payment.amount),
                currency=order.currency,
            )
        )
    actions.append(notify(ctx, "order_cancelled", reason=why))
    refund_text = (
        f" and refund {money(order.payment.amount)} {order.currency} ({money(refund)} USD)"
        if refund
        else ""
    )
    return plan(
        finding,
        Strategy.CANCEL_ORDER,
        actions,
        cost_usd=refund,
        rationale=f"{why[0].upper()}{why[1:]}: cancel the order{refund_text}.",
    )
