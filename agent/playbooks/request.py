"""customer_request (contract §8.1): what the customer's note asks, as a model read it.

Every plan here holds the order or asks a person: the model's reading never writes the
address (the customer confirms it first, §8.2), never releases anything, and a cancellation
is ``cancel_order`` at its §4 tier (L3, people approve). ``manual_review`` is always drafted
as the fallback. Nothing the customer wrote goes into a rationale: the quote stays in the
finding's facts (personal data in the audit log).
"""

from __future__ import annotations

from agent.context import Context
from agent.playbooks.common import cancel, hold, manual_review, notify, plan
from domain.models import Draft, Finding, Kind, Strategy

KIND = Kind.CUSTOMER_REQUEST.value


def _confirm(ctx: Context, finding: Finding) -> Draft:
    proposed = dict(finding.facts.get("new_address") or {})
    errors = dict(finding.facts.get("address_errors") or {})
    problems = [f"{name} is {err}" for name, err in sorted(errors.items())]
    data: dict[str, object] = {"proposed_address": proposed}
    if problems:
        data["problems"] = problems
    why = (
        "the proposed address does not validate ("
        + "; ".join(problems)
        + "): the question names what is wrong"
        if problems
        else "the proposed address validates"
    )
    return plan(
        finding,
        Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER,
        [
            hold(ctx, KIND, "waiting for the customer to confirm the new address they asked for"),
            notify(ctx, "confirm_new_address", **data),
        ],
        rationale="The customer's note asks to deliver to another address. exdesk does not "
        "change ship_to on a note: hold the order and ask the customer to confirm the proposed "
        f"address; {why}.",
    )


def _hold_until(ctx: Context, finding: Finding) -> Draft:
    until = str(finding.facts["hold_until"])
    days = int(finding.facts.get("days_after_promise", 0))
    late = bool(finding.facts.get("late"))
    after = f"{days} days after the promised date" if days > 0 else "on or before the promised date"
    return plan(
        finding,
        Strategy.HOLD_UNTIL_DATE,
        [hold(ctx, KIND, f"held until {until}, as the customer asked", until=until)],
        variant="late" if late else "on_time",
        rationale=f"The customer's note asks not to ship before {until} ({after}): hold the "
        "order until then; it is released on that date."
        + (" More than 30 days after the promise: people approve it." if late else ""),
    )


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    intent = finding.facts.get("intent")
    fallback = manual_review(ctx, finding, "the customer's note asks something a person must read")
    if intent == "change_address":
        return [_confirm(ctx, finding), fallback]
    if intent == "hold_until":
        if finding.facts.get("past"):
            return [manual_review(ctx, finding, "the note asks to hold until a date already past")]
        return [_hold_until(ctx, finding), fallback]
    if intent == "cancel":
        return [cancel(ctx, finding, "the customer asked to cancel the order"), fallback]
    return [fallback]
