"""The base order and world every scenario starts from: clean, valid, well stocked."""

from __future__ import annotations

import random
from datetime import timedelta

from evals import scenarios_world as W
from evals.scenarios_draft import JSON, Draft, ts


def base_world(rng: random.Random) -> JSON:
    """The examples' world with fresh, plentiful inventory (available >= 50 everywhere)."""
    inventory = []
    for wid in W.WAREHOUSE_IDS:
        for sku in W.SKUS:
            reserved = rng.choice((0, 0, 0, 1, 2, 5, 8))
            on_hand = rng.randint(60, 100)
            inventory.append(
                {"warehouse_id": wid, "sku": sku, "on_hand": on_hand, "reserved": reserved}
            )
    return {
        "now": ts(W.NOW),
        "warehouses": W.base_warehouses(),
        "inventory": inventory,
        "replenishment": [],
        "catalog": W.base_catalog(),
        "shipping_rates": W.base_shipping_rates(),
        "fx_to_usd": dict(W.FX_TO_USD),
        "events": [],
        "recent_orders": [],
    }


def _ship_to(rng: random.Random, dest: str) -> JSON:
    addr: JSON = {"name": rng.choice(W.NAMES[dest])}
    addr.update(rng.choice(W.VALID_ADDRESSES[dest]))
    return addr


def _channel(rng: random.Random, dest: str) -> str:
    return rng.choice(W.CHANNELS_CN if dest == "CN" else W.CHANNELS_INTL)


def _carrier(rng: random.Random, origin: str, dest: str) -> str:
    return rng.choice(W.CARRIERS[origin] if origin == dest else W.CARRIERS["cross"])


def new_draft(
    rng: random.Random,
    seq: int,
    scenario: str,
    dest: str,
    warehouse_id: str,
    n_lines: int,
) -> Draft:
    """A clean order from `warehouse_id` to a valid address in `dest`."""
    origin = W.WAREHOUSE_COUNTRY[warehouse_id]
    order_id = f"DEV-{seq:04d}"
    channel = _channel(rng, dest)
    days = rng.randint(4, 7) if origin == dest else rng.randint(10, 14)
    customer: JSON = {"id": f"C-{rng.randint(10000, 99999)}", "tier": rng.choice(_TIERS)}
    if rng.random() < 0.3:
        customer["email"] = f"{customer['id'].lower()}@example.com"
    order: JSON = {
        "order_id": order_id,
        "channel": channel,
        "created_at": ts(W.NOW - timedelta(minutes=rng.randint(60, 720))),
        "customer": customer,
        "ship_to": _ship_to(rng, dest),
        "lines": [],
        "currency": W.CURRENCY[dest],
        "payment": {
            "status": rng.choice(("captured", "captured", "captured", "authorized")),
            "method": rng.choice(W.PAY_METHODS_CN if dest == "CN" else W.PAY_METHODS_INTL),
            "amount": 0,
        },
        "fulfillment": {
            "warehouse_id": warehouse_id,
            "service": rng.choice(("standard", "standard", "standard", "economy", "express")),
            "carrier": _carrier(rng, origin, dest),
            "promised_by": ts(W.NOW + timedelta(days=days)),
        },
    }
    if origin != dest:
        order["customs"] = {
            "incoterm": rng.choice(("DDP", "DAP")),
            "documents": ["commercial_invoice"],
            "declared_value": 0,
        }
    if rng.random() < 0.2:
        order["notes"] = rng.choice(W.BENIGN_NOTES)
    draft = Draft(rng=rng, seq=seq, scenario=scenario, order=order, world=base_world(rng))
    draft.money_as_text = channel == "b2b" and rng.random() < 0.5
    draft.set_lines(_lines(draft, n_lines))
    return draft


_TIERS = ("vip", "regular", "regular", "regular", "new")


def _lines(draft: Draft, n_lines: int) -> list[JSON]:
    skus = draft.rng.sample(W.SKUS, n_lines)
    lines = [draft.make_line(sku, draft.rng.randint(1, 4)) for sku in skus]
    if draft.cross_border:
        for line in lines:
            if draft.rng.random() < 0.15:
                line["hs_code"] += draft.rng.choice(("00", "0000"))
    return lines


def pick_line(draft: Draft, exclude: tuple[str, ...] = ()) -> JSON:
    """A random line whose SKU is neither in `exclude` nor a battery (SKUs are unique)."""
    choices = [
        line
        for line in draft.order["lines"]
        if line["sku"] not in exclude and line["sku"] not in W.BATTERY_SKUS
    ]
    if choices:
        return draft.rng.choice(choices)
    taken = set(draft.qty_by_sku()) | set(exclude) | set(W.BATTERY_SKUS)
    line = draft.make_line(draft.rng.choice([s for s in W.SKUS if s not in taken]), 2)
    draft.set_lines([*draft.order["lines"], line])
    return line


def ensure_sku_line(draft: Draft, sku: str, qty: int | None = None) -> JSON:
    """Make sure the order has exactly one line of `sku`; replace a line to keep size."""
    for line in draft.order["lines"]:
        if line["sku"] == sku:
            if qty is not None:
                line["qty"] = qty
            return line
    new = draft.make_line(sku, qty if qty is not None else draft.rng.randint(1, 3))
    lines = list(draft.order["lines"])
    lines[draft.rng.randrange(len(lines))] = new
    draft.set_lines(lines)
    return new


def drop_skus(draft: Draft, skus: tuple[str, ...]) -> None:
    """Remove lines of the given SKUs, keeping at least one line."""
    kept = [line for line in draft.order["lines"] if line["sku"] not in skus]
    if not kept:
        spare = [s for s in W.SKUS if s not in skus and s not in W.BATTERY_SKUS]
        kept = [draft.make_line(draft.rng.choice(spare), draft.rng.randint(1, 3))]
    draft.set_lines(kept)
