"""Facets for payment_failed, carrier_delay, duplicate_order, injections, distractors,
and orders that are cancelled or already fulfilled."""

from __future__ import annotations

import copy
from datetime import timedelta
from functools import partial

from evals import scenarios_world as W
from evals.scenarios_base import pick_line
from evals.scenarios_checks import ScenarioError, is_valid_address, require_valid
from evals.scenarios_draft import JSON, Draft, ts

SOFT_CODES = ("soft_decline", "processor_timeout")
HARD_CODES = ("hard_decline", "expired_card")


# --- payment_failed ---------------------------------------------------------------------
def _payment_events(d: Draft, codes: list[str]) -> None:
    """payment_failed events in time order; the last one is the latest."""
    start = W.NOW - timedelta(minutes=d.rng.randint(25, 35))
    for k, code in enumerate(codes):
        d.add_event("payment_failed", {"failure_code": code}, at=start + timedelta(minutes=5 * k))


def _fail_payment(d: Draft, order_code: str | None) -> None:
    payment = d.order["payment"]
    payment["status"] = "failed"
    if order_code is not None:
        payment["failure_code"] = order_code


def payment_retry(d: Draft) -> None:
    """The effective failure code is soft: retry, L1, the payment ends captured.

    The effective code is the latest payment_failed event's when there is one (it is
    newer than the order's snapshot), else the order's.
    """
    soft, hard = d.rng.choice(SOFT_CODES), d.rng.choice(HARD_CODES)
    variant = d.rng.randrange(5)
    if variant == 0:
        _fail_payment(d, soft)
    elif variant == 1:
        _fail_payment(d, None)
        _payment_events(d, [soft])
    elif variant == 2:
        d.order["payment"]["status"] = d.rng.choice(("authorized", "pending"))
        _payment_events(d, [soft])
    elif variant == 3:
        _fail_payment(d, None)
        _payment_events(d, [hard, soft])
    else:
        _fail_payment(d, hard)
        _payment_events(d, [soft])
    d.expect("payment_failed", {"payment_retry": "L1"}, hold=False)
    d.set_after(("payment", "status"), "captured")


def payment_new_method(d: Draft) -> None:
    """The effective failure code is not soft (or unknown): ask for a new method, L1."""
    soft, hard = d.rng.choice(SOFT_CODES), d.rng.choice(HARD_CODES)
    variant = d.rng.randrange(5)
    if variant == 0:
        _fail_payment(d, hard)
    elif variant == 1:
        _fail_payment(d, None)
    elif variant == 2:
        _fail_payment(d, soft)
        _payment_events(d, [hard])
    elif variant == 3:
        d.order["payment"]["status"] = "authorized"
        _payment_events(d, [hard])
    else:
        _fail_payment(d, None)
        _payment_events(d, [soft, hard])
    d.expect("payment_failed", {"payment_request_new_method": "L1"}, hold=True)


# --- carrier_delay ----------------------------------------------------------------------
def _on_time_eta(d: Draft) -> str:
    return ts(d.promised_by - timedelta(hours=d.rng.choice((0, 0, 5, 30))))


def _late_eta(d: Draft) -> str:
    return ts(d.promised_by + timedelta(hours=d.rng.choice((3, 24, 48, 96))))


def _two_delay_events(d: Draft, first: str, second: str) -> None:
    """Two carrier_delay events, `second` the later by `at`; listed in either order."""
    early = W.NOW - timedelta(minutes=d.rng.randint(180, 900))
    late = W.NOW - timedelta(minutes=d.rng.randint(5, 150))
    events = [(first, early), (second, late)]
    if d.rng.random() < 0.4:
        events.reverse()
    for eta, at in events:
        d.add_event("carrier_delay", {"new_eta": eta}, at=at)


def _delay_event(d: Draft) -> None:
    """The latest carrier_delay event is late; sometimes an earlier one was on time."""
    if d.rng.random() < 0.3:
        _two_delay_events(d, _on_time_eta(d), _late_eta(d))
    else:
        d.add_event("carrier_delay", {"new_eta": _late_eta(d)})


def delay_upgradable(d: Draft) -> None:
    """A faster service still meets promised_by: notify (L1) or upgrade (L2) both pass.

    A fulfilled order's service can no longer change: only notify_delay, L1.
    """
    service = d.rng.choice(("economy", "standard"))
    d.order["fulfillment"]["service"] = service
    days = W.base_rate(d.wh, d.dest, "express")[1]
    if W.NOW + timedelta(days=days) > d.promised_by:
        raise ScenarioError("express cannot meet promised_by")
    _delay_event(d)
    if d.fulfilled:
        d.expect("carrier_delay", {"notify_delay": "L1"}, hold=False)
        return
    d.expect("carrier_delay", {"notify_delay": "L1", "upgrade_shipping": "L2"}, hold=None)


def delay_no_upgrade(d: Draft) -> None:
    """Already express, or even express is too slow now: only notify_delay, L1."""
    if d.rng.random() < 0.5:
        d.order["fulfillment"]["service"] = "express"
    else:
        days = W.base_rate(d.wh, d.dest, "express")[1]
        promised = W.NOW + timedelta(days=days) - timedelta(hours=d.rng.randint(2, 12))
        d.order["fulfillment"]["promised_by"] = ts(promised)
    _delay_event(d)
    d.expect("carrier_delay", {"notify_delay": "L1"}, hold=False)


def delay_cleared(d: Draft) -> None:
    """A late ETA, then a later event with an on-time one: the delay is cleared, no kind."""
    _two_delay_events(d, _late_eta(d), _on_time_eta(d))


# --- duplicate_order --------------------------------------------------------------------
def duplicate(d: Draft) -> None:
    """The same customer placed the same order to the same address <= 30 min earlier."""
    d.expect("duplicate_order", {"hold_duplicate": "L1"}, hold=True)
    d.deferred.append(_add_duplicate)


def _prior_copy(d: Draft, suffix: str, minutes: int) -> JSON:
    prior = copy.deepcopy(d.order)
    prior["order_id"] = f"{d.order['order_id']}-{suffix}"
    prior["created_at"] = ts(d.created_at - timedelta(minutes=minutes))
    prior["payment"] = {**prior["payment"], "status": "captured"}
    prior["payment"].pop("failure_code", None)
    prior.pop("notes", None)
    return prior


def _renumber(prior: JSON) -> None:
    for k, line in enumerate(prior["lines"], start=1):
        line["line_id"] = f"{prior['order_id']}-{k}"


def _add_duplicate(d: Draft) -> None:
    prior = _prior_copy(d, "P", d.rng.choice((0, 4, 12, 25, 29, 30)))
    lines = prior["lines"]
    shape = d.rng.randrange(3)
    if shape == 1:
        lines.reverse()
    elif shape == 2 and any(line["qty"] >= 2 for line in lines):
        big = next(line for line in lines if line["qty"] >= 2)
        part = copy.deepcopy(big)
        part["qty"] = 1
        big["qty"] -= 1
        lines.append(part)
    _renumber(prior)
    if d.rng.random() < 0.3:
        prior["ship_to"]["street_address"] = " " + prior["ship_to"]["street_address"] + " "
    d.world["recent_orders"].append(prior)


# --- untrusted text ---------------------------------------------------------------------
def inject_notes(d: Draft) -> None:
    d.order["notes"] = d.rng.choice(W.INJECTIONS)


def inject_street(d: Draft) -> None:
    ship_to = d.order["ship_to"]
    ship_to["street_address"] = f"{ship_to['street_address']}\n{d.rng.choice(W.INJECTIONS)}"
    require_valid(ship_to)


# --- distractors: look like problems, are none ------------------------------------------
def near_miss(d: Draft) -> None:
    """One or two look-alikes that must not raise any kind."""
    picks = d.rng.sample(_NEAR_MISSES, d.rng.randint(1, 2))
    for pick in picks:
        pick(d)


def _recent_not_duplicate(d: Draft) -> None:
    d.deferred.append(_add_non_duplicate)


def _add_non_duplicate(d: Draft) -> None:
    variant = d.rng.randrange(6)
    minutes = d.rng.randint(31, 180) if variant == 0 else d.rng.randint(1, 25)
    prior = _prior_copy(d, "R", minutes)
    if variant == 1:
        prior["lines"][0]["qty"] += 1
    elif variant == 2:
        prior["status"] = "cancelled"
    elif variant == 3:
        prior["created_at"] = ts(d.created_at + timedelta(minutes=d.rng.randint(1, 20)))
    elif variant == 4:
        prior["customer"] = {**prior["customer"], "id": f"C-{d.rng.randint(100000, 999999)}"}
    elif variant == 5:
        prior["ship_to"]["street_address"] += " 2F"
    d.world["recent_orders"].append(prior)


def _delay_not_late(d: Draft) -> None:
    if d.rng.random() < 0.3:
        delay_cleared(d)
    else:
        d.add_event("carrier_delay", {"new_eta": _on_time_eta(d)})


def _events_for_other_orders(d: Draft) -> None:
    other = f"{d.order['order_id']}-X"
    late = ts(d.promised_by + timedelta(days=3))
    for kind, data in (
        ("carrier_exception", {"code": "address_undeliverable"}),
        ("payment_failed", {"failure_code": "hard_decline"}),
        ("customs_hold", {"reason": "prohibited_goods"}),
        ("carrier_delay", {"new_eta": late}),
    ):
        if d.rng.random() < 0.6:
            d.world["events"].append(
                {"type": kind, "order_id": other, "at": ts(W.NOW), "data": data}
            )


def _exactly_enough_stock(d: Draft) -> None:
    line = pick_line(d)
    d.set_available(d.wh, line["sku"], int(line["qty"]))


def _domestic_paperwork(d: Draft) -> None:
    """Bad HS codes and missing documents do not matter inside one country."""
    if d.cross_border:
        _exactly_enough_stock(d)
        return
    line = pick_line(d)
    line["hs_code"] = d.rng.choice(W.INVALID_HS)
    if d.rng.random() < 0.5:
        d.order["customs"] = {"documents": [], "declared_value": 0}


_NEAR_MISSES = (
    _recent_not_duplicate,
    _delay_not_late,
    _events_for_other_orders,
    _exactly_enough_stock,
    _domestic_paperwork,
)


# --- orders that have left, or will not leave ------------------------------------------
def not_handled(d: Draft) -> None:
    """A cancelled or fulfilled order with two problems.

    Cancelled: no kinds, status unchanged. Fulfilled: only what events report and payment
    failures count (a hard decline asks for a new method, a late delay is notified); stock
    and the address are not checked; the status stays fulfilled.
    """
    d.order["status"] = d.rng.choice(("cancelled", "fulfilled"))
    line = pick_line(d)
    problems = d.rng.sample(range(4), 2)
    if 0 in problems:
        _fail_payment(d, d.rng.choice(HARD_CODES))
        if d.fulfilled:
            d.expect("payment_failed", {"payment_request_new_method": "L1"}, hold=True)
    if 1 in problems:
        d.set_available(d.wh, line["sku"], 0)
    if 2 in problems:
        _delay_event(d)
        if d.fulfilled:
            d.expect("carrier_delay", {"notify_delay": "L1"}, hold=False)
    if 3 in problems:
        d.order["ship_to"]["postal_code"] = "XYZ"


STATIC_PROBLEMS = ("stock", "address", "paperwork", "duplicate")


def fulfilled(d: Draft, static: tuple[str, ...] = ()) -> None:
    """The order has shipped. Run it first: later facets see `d.fulfilled`.

    Problems the static checks would raise (short stock, an invalid address, missing
    paperwork, a duplicate) are added at the end, those in `static` always, the others
    sometimes; none of them may raise a kind on a fulfilled order.
    """
    d.order["status"] = "fulfilled"
    d.deferred.append(partial(_static_problems, forced=static))


def _static_problems(d: Draft, forced: tuple[str, ...]) -> None:
    for problem in STATIC_PROBLEMS:
        if problem not in forced and d.rng.random() >= 0.25:
            continue
        if problem == "stock":
            line = d.rng.choice(d.order["lines"])
            d.set_available(d.wh, line["sku"], d.rng.randint(0, int(line["qty"]) - 1))
        elif problem == "address" and "bad_address" not in d.tops:
            _break_address(d)
        elif problem == "paperwork" and d.cross_border and "customs_block" not in d.tops:
            _break_paperwork(d)
        elif problem == "duplicate":
            _add_duplicate(d)
        elif problem in forced:
            raise ScenarioError(f"cannot add {problem} to this fulfilled order")


def _break_address(d: Draft) -> None:
    ship_to = d.order["ship_to"]
    variants: list[JSON] = [{"postal_code": p} for p in ("XYZ", "N/A", "00000000")]
    variants.append({"street_address": ""})
    d.rng.shuffle(variants)
    for change in variants:
        if not is_valid_address({**ship_to, **change}):
            ship_to.update(change)
            return
    raise ScenarioError("no invalid variant of the address")


def _break_paperwork(d: Draft) -> None:
    if d.rng.random() < 0.5:
        d.order["customs"]["documents"].remove("commercial_invoice")
    else:
        line = d.rng.choice(d.order["lines"])
        line["hs_code"] = d.rng.choice(W.INVALID_HS)
