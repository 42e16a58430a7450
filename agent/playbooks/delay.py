"""carrier_delay: tell the customer (with a voucher); upgrade when that still meets the promise."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from agent.context import Context
from agent.playbooks.common import act, money, notify, plan
from domain.models import Draft, Finding, Strategy

SPEED = ("economy", "standard", "express")


def _voucher_usd(ctx: Context) -> Decimal:
    pct = ctx.policy.delay.voucher_pct / Decimal(100)
    value = ctx.to_usd(ctx.order_total()) * pct
    return min(value, ctx.policy.limits.l1_usd).quantize(Decimal("0.01"))


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    order = ctx.order
    new_eta = finding.facts["new_eta"]
    voucher = _voucher_usd(ctx)
    plans = [
        plan(
            finding,
            Strategy.NOTIFY_DELAY,
            [notify(ctx, "delay", new_eta=new_eta, voucher_usd=money(voucher))],
            cost_usd=voucher,
            rationale=f"Tell the customer the parcel now arrives {new_eta}, with a "
            f"{money(voucher)} USD voucher.",
        )
    ]
    if ctx.shipped:
        return plans  # the parcel is on its way: its service can no longer change
    current = order.fulfillment.service
    old = ctx.rate(ctx.assigned, current)
    options = []
    for service in SPEED[SPEED.index(current) + 1 :]:
        rate = ctx.rate(ctx.assigned, service)
        if rate is None:
            continue
        eta = ctx.world.now + timedelta(days=rate.transit_days)
        if eta <= order.fulfillment.promised_by:
            options.append((rate.cost_usd - (old.cost_usd if old else Decimal(0)), service, eta))
    if options:
        cost, service, eta = min(options)
        plans.append(
            plan(
                finding,
                Strategy.UPGRADE_SHIPPING,
                [act("carrier", "change_service", order_id=order.order_id, service=service)],
                cost_usd=cost,
                rationale=f"Ship {service} from {ctx.assigned}: arrives by {eta.isoformat()}, "
                f"within the promise, for {money(cost)} USD more.",
            )
        )
    return plans
