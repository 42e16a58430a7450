"""Playbooks: for each finding, every feasible strategy of the contract as a plan."""

from __future__ import annotations

from collections.abc import Callable

from agent.context import Context
from agent.playbooks import address, customs, delay, duplicate, payment, request, stock
from domain.models import Draft, Finding, Kind

PLAYBOOKS: dict[Kind, Callable[[Context, Finding], list[Draft]]] = {
    Kind.BAD_ADDRESS: address.draft,
    Kind.CUSTOMS_BLOCK: customs.draft,
    Kind.STOCKOUT: stock.draft,
    Kind.PAYMENT_FAILED: payment.draft,
    Kind.CARRIER_DELAY: delay.draft,
    Kind.DUPLICATE_ORDER: duplicate.draft,
    Kind.CUSTOMER_REQUEST: request.draft,
}


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    return PLAYBOOKS[finding.kind](ctx, finding)
