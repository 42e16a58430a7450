"""bad_address: repair what the contract allows, else ask the customer."""

from __future__ import annotations

from agent.context import Context
from agent.playbooks.common import act, hold, notify, plan
from domain.models import Draft, Finding, Strategy


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    plans: list[Draft] = []
    repair = finding.facts.get("repair")
    if repair:
        changes = repair["changes"]
        shown = ", ".join(
            f"{k}: {ctx.order.ship_to.fields().get(k, '')!r} → {v!r}" for k, v in changes.items()
        )
        plans.append(
            plan(
                finding,
                Strategy.ADDRESS_AUTOCORRECT,
                [act("orders", "set_ship_to", order_id=ctx.order.order_id, fields=changes)],
                rationale=f"{repair['description']} makes the address valid ({shown}).",
            )
        )
    plans.append(
        plan(
            finding,
            Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER,
            [
                hold(ctx, finding.kind.value, "waiting for the customer to confirm the address"),
                notify(ctx, "confirm_address", problems=list(finding.evidence)),
            ],
            rationale="No allowed repair makes the address deliverable; hold the order and "
            "ask the customer to confirm it."
            if not repair
            else "Hold the order and ask the customer to confirm the address.",
        )
    )
    return plans
