"""Detectors: one per exception kind, exactly as the contract (§3) defines them.

Each returns a ``Finding`` or None. Facts the playbooks need travel in ``Finding.facts``.
Order text (notes, address lines) is data: nothing here reads it as an instruction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from agent.context import Context
from domain.models import ADDRESS_FIELDS, HOLD_LATE_DAYS, Finding, Kind, Order
from domain.reading import Intent, Reading

ADDRESS_EVENT_CODES = frozenset({"address_undeliverable", "address_incomplete"})


def detect_bad_address(ctx: Context) -> Finding | None:
    check = ctx.checkers.address.check(ctx.order.ship_to.fields())
    codes = [
        str(e.data.get("code"))
        for e in ctx.events("carrier_exception")
        if e.data.get("code") in ADDRESS_EVENT_CODES
    ]
    if (check.valid or ctx.shipped) and not codes:
        return None
    evidence = [f"ship_to.{name} is {err}" for name, err in sorted(check.errors.items())]
    evidence += [f"carrier reported {code}" for code in codes]
    repair = None if check.valid else ctx.checkers.address.repair(ctx.order.ship_to.fields())
    facts = {
        "errors": dict(check.errors),
        "carrier_codes": codes,
        "repair": None
        if repair is None
        else {
            "changes": dict(repair.changes),
            "repairs": list(repair.repairs),
            "description": repair.description,
        },
    }
    summary = "address does not validate" if not check.valid else "carrier cannot deliver"
    return Finding(
        kind=Kind.BAD_ADDRESS,
        order_id=ctx.order.order_id,
        summary=summary,
        evidence=tuple(evidence),
        facts=facts,
    )


def detect_customs_block(ctx: Context) -> Finding | None:
    if not ctx.cross_border:
        return None
    order = ctx.order
    attached = ctx.attached_documents()
    embargoed = not ctx.shipped and ctx.destination in ctx.policy.customs.embargoed
    problems: list[dict[str, str]] = []
    for line in () if ctx.shipped else order.lines:
        if not ctx.checkers.hs.is_valid(line.hs_code):
            problems.append(
                {
                    "type": "hs_code",
                    "line_id": line.line_id,
                    "sku": line.sku,
                    "code": line.hs_code or "",
                }
            )
    for doc in () if ctx.shipped else ctx.required_documents():
        if doc not in attached:
            problems.append({"type": "missing_document", "document": doc})
    holds = ctx.events("customs_hold")
    prohibited = False
    for event in holds:
        reason = str(event.data.get("reason", ""))
        if reason == "prohibited_goods":
            prohibited = True
        elif reason == "missing_document":
            doc = str(event.data.get("document", ""))
            if doc and not any(p.get("document") == doc for p in problems):
                problems.append(
                    {"type": "missing_document", "document": doc, "source": "customs_hold"}
                )
            elif not doc:
                problems.append({"type": "hold", "reason": "missing_document (not named)"})
        elif reason == "invalid_hs_code":
            problems.append(
                {
                    "type": "hs_hold",
                    "line_id": str(event.data.get("line_id", "")),
                    "sku": str(event.data.get("sku", "")),
                }
            )
        else:
            problems.append({"type": "hold", "reason": reason or "unspecified"})
    if not (embargoed or prohibited or problems):
        return None
    evidence: list[str] = [f"ships {ctx.ship_from} → {ctx.destination}"]
    if embargoed:
        evidence.append(f"destination {ctx.destination} is embargoed by policy")
    if prohibited:
        evidence.append("customs hold: prohibited goods")
    evidence += [_describe_problem(p) for p in problems]
    return Finding(
        kind=Kind.CUSTOMS_BLOCK,
        order_id=order.order_id,
        summary="customs will not clear the order as it stands",
        evidence=tuple(evidence),
        facts={"embargoed": embargoed, "prohibited": prohibited, "problems": problems},
    )


def _describe_problem(problem: dict[str, str]) -> str:
    kind = problem["type"]
    if kind == "hs_code":
        code = problem["code"] or "missing"
        return f"line {problem['line_id']} ({problem['sku']}): HS code {code} is not valid"
    if kind == "missing_document":
        return f"document {problem['document']} is missing"
    if kind == "hs_hold":
        return f"customs hold: invalid HS code {problem.get('line_id') or '(line not named)'}"
    return f"customs hold: {problem['reason']}"


def detect_stockout(ctx: Context) -> Finding | None:
    short: dict[str, dict[str, int]] = {}
    for sku, need in ctx.order.qty_by_sku().items():
        have = ctx.available(ctx.assigned, sku)
        if need > have:
            short[sku] = {"need": need, "available": have}
    if not short:
        return None
    evidence = tuple(
        f"{sku}: need {v['need']}, {v['available']} available at {ctx.assigned}"
        for sku, v in sorted(short.items())
    )
    return Finding(
        kind=Kind.STOCKOUT,
        order_id=ctx.order.order_id,
        summary=f"{ctx.assigned} cannot ship every line",
        evidence=evidence,
        facts={"short": short},
    )


def detect_payment_failed(ctx: Context) -> Finding | None:
    events = ctx.events("payment_failed")
    payment = ctx.order.payment
    if payment.status != "failed" and not events:
        return None
    # The latest event is newer than the order's snapshot: its code decides.
    latest = str(events[-1].data.get("failure_code") or "") if events else ""
    code = latest or (payment.failure_code if payment.status == "failed" else None) or None
    evidence = [f"payment status {payment.status}"] + [
        f"payment_failed event at {e.at.isoformat()}: {e.data.get('failure_code', 'no code')}"
        for e in events
    ]
    return Finding(
        kind=Kind.PAYMENT_FAILED,
        order_id=ctx.order.order_id,
        summary=f"payment failed ({code or 'no failure code'})",
        evidence=tuple(evidence),
        facts={"failure_code": code},
    )


def detect_carrier_delay(ctx: Context) -> Finding | None:
    """The latest delay event decides: a later on-time ETA clears an earlier delay."""
    events = ctx.events("carrier_delay")
    new_eta = events[-1].new_eta if events else None
    promised = ctx.order.fulfillment.promised_by
    if new_eta is None or new_eta <= promised:
        return None
    return Finding(
        kind=Kind.CARRIER_DELAY,
        order_id=ctx.order.order_id,
        summary="the carrier will deliver after the promised date",
        evidence=(f"new ETA {new_eta.isoformat()} is after promised {promised.isoformat()}",),
        facts={
            "new_eta": new_eta.isoformat(),
            "late_hours": round((new_eta - promised).total_seconds() / 3600, 1),
        },
    )


def _same_address(a: Order, b: Order) -> bool:
    fa, fb = a.ship_to.fields(), b.ship_to.fields()
    return all((fa.get(n) or "").strip() == (fb.get(n) or "").strip() for n in ADDRESS_FIELDS)


def detect_duplicate(ctx: Context) -> Finding | None:
    order = ctx.order
    window = timedelta(minutes=ctx.policy.duplicates.window_minutes)
    for other in sorted(ctx.world.recent_orders, key=lambda o: o.created_at, reverse=True):
        if other.order_id == order.order_id or other.status == "cancelled":
            continue
        gap = order.created_at - other.created_at
        if not (timedelta(0) <= gap <= window):
            continue
        if other.customer.id != order.customer.id or not _same_address(order, other):
            continue
        if other.qty_by_sku() != order.qty_by_sku():
            continue
        minutes = round(gap.total_seconds() / 60, 1)
        return Finding(
            kind=Kind.DUPLICATE_ORDER,
            order_id=order.order_id,
            summary=f"same as order {other.order_id}, placed {minutes} min earlier",
            evidence=(
                f"order {other.order_id}: same customer {order.customer.id}, same ship-to, "
                f"same SKUs and quantities, {minutes} min earlier",
            ),
            facts={"duplicate_of": other.order_id, "minutes_apart": minutes},
        )
    return None


DETECTORS: tuple[Callable[[Context], Finding | None], ...] = (
    detect_bad_address,
    detect_customs_block,
    detect_stockout,
    detect_payment_failed,
    detect_carrier_delay,
    detect_duplicate,
)


# What can still go wrong once an order has shipped: what events report, and payment.
SHIPPED_DETECTORS = (
    detect_bad_address,
    detect_customs_block,
    detect_payment_failed,
    detect_carrier_delay,
)


_ASKS = {
    Intent.CHANGE_ADDRESS: "asks to deliver to another address",
    Intent.HOLD_UNTIL: "asks not to ship before a date",
    Intent.CANCEL: "asks to cancel the order",
    Intent.OTHER: "asks something a person must read",
}


def detect_customer_request(ctx: Context, reading: Reading | None) -> Finding | None:
    """Contract §8.1: what a model read in the order's notes, when it asks for something.
    The reading is a proposal: the address is checked here, the date measured against the
    promise, and the playbook and the policy decide what follows."""
    if reading is None or reading.intent not in _ASKS:
        return None
    order = ctx.order
    facts: dict[str, object] = {"intent": reading.intent.value, "quote": reading.quote}
    evidence = [f"the customer's note {_ASKS[reading.intent]} (read by a model)"]
    if reading.new_address is not None:
        proposed = reading.new_address.fields()
        check = ctx.checkers.address.check(proposed)
        facts["new_address"] = proposed
        facts["address_errors"] = dict(check.errors)
        evidence.append(
            "the proposed address validates"
            if check.valid
            else "the proposed address does not validate: "
            + ", ".join(f"{name} is {err}" for name, err in sorted(check.errors.items()))
        )
    when = reading.date
    if when is not None:
        promised = order.fulfillment.promised_by.date()
        facts["hold_until"] = when.isoformat()
        facts["days_after_promise"] = (when - promised).days
        facts["late"] = (when - promised).days > HOLD_LATE_DAYS
        facts["past"] = when <= ctx.world.now.date()
        evidence.append(f"hold until {when.isoformat()}; promised by {promised.isoformat()}")
    return Finding(
        kind=Kind.CUSTOMER_REQUEST,
        order_id=order.order_id,
        summary=f"the customer's note {_ASKS[reading.intent]}",
        evidence=tuple(evidence),
        facts=facts,
    )


def detect(ctx: Context, reading: Reading | None = None) -> list[Finding]:
    """Every kind the order carries. Cancelled orders carry none; shipped ones only
    what events report (and payment). ``reading``: what a model read in the notes (§8)."""
    if ctx.order.status == "cancelled":
        return []
    detectors = SHIPPED_DETECTORS if ctx.shipped else DETECTORS
    found = [f for f in (d(ctx) for d in detectors) if f is not None]
    request = None if ctx.shipped else detect_customer_request(ctx, reading)
    return found if request is None else [*found, request]
