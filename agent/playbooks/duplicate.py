"""duplicate_order: hold the later order and ask the customer."""

from __future__ import annotations

from agent.context import Context
from agent.playbooks.common import hold, notify, plan
from domain.models import Draft, Finding, Strategy


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    other = finding.facts["duplicate_of"]
    return [
        plan(
            finding,
            Strategy.HOLD_DUPLICATE,
            [
                hold(ctx, finding.kind.value, f"possible duplicate of {other}; asked the customer"),
                notify(ctx, "confirm_duplicate", duplicate_of=other),
            ],
            rationale=f"Same customer, address and items as {other} "
            f"{finding.facts['minutes_apart']} min earlier; hold it until the customer confirms.",
        )
    ]
