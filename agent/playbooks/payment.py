"""payment_failed: retry soft failures, ask for another method otherwise."""

from __future__ import annotations

from agent.context import Context
from agent.playbooks.common import act, hold, plan
from domain.models import Draft, Finding, Strategy


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    code = finding.facts.get("failure_code")
    order_id = ctx.order.order_id
    if code in ctx.policy.payment.retryable_failures:
        return [
            plan(
                finding,
                Strategy.PAYMENT_RETRY,
                [act("payment", "retry", order_id=order_id)],
                rationale=f"{code} is a transient failure; retrying the payment usually succeeds.",
            )
        ]
    return [
        plan(
            finding,
            Strategy.PAYMENT_REQUEST_NEW_METHOD,
            [
                hold(
                    ctx,
                    finding.kind.value,
                    f"payment failed ({code or 'no code'}); waiting for a new payment method",
                ),
                act("payment", "request_new_method", order_id=order_id),
            ],
            rationale=f"{code or 'The failure'} will not pass on retry; hold the order and ask "
            "the customer for another payment method.",
        )
    ]
