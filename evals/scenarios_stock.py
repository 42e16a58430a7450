"""stockout facets, one per top strategy and tier of the stockout ranking.

Ranking (docs/semantics.md): same-country reallocate, same-country split, on-time
backorder, cross-border reallocate, cross-border split, substitute, late backorder,
cancel. A backorder is on time when the restock plus the transit days of the assigned
warehouse's rate meets promised_by. Each facet makes the intended strategy feasible and
everything ranked above it infeasible; what ranks below may stay feasible (it must not
win).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from evals import scenarios_world as W
from evals.scenarios_base import ensure_sku_line, pick_line
from evals.scenarios_checks import ScenarioError
from evals.scenarios_draft import JSON, Draft, ts

SUBSTITUTABLE = tuple(s for s in W.SKUS if W.SKU_SUBSTITUTES[s])


def _short_line(d: Draft, min_qty: int = 1) -> tuple[str, int]:
    """A line to run short: its SKU is unique in the order and no substitute is ordered."""
    ordered = tuple(d.qty_by_sku())
    exclude = tuple(s for s in W.SKUS if set(W.SKU_SUBSTITUTES[s]) & set(ordered))
    line = pick_line(d, exclude=exclude)
    if line["qty"] < min_qty:
        line["qty"] = d.rng.randint(min_qty, min_qty + 3)
    return line["sku"], int(line["qty"])


def _peer(d: Draft) -> str:
    peers = d.peers()
    if len(peers) != 1:
        raise ScenarioError(f"{d.wh} has no single same-country peer")
    return peers[0]


def _no_substitute(d: Draft, sku: str, qty: int) -> None:
    for sub in W.SKU_SUBSTITUTES[sku]:
        d.set_available(d.wh, sub, d.rng.randint(0, qty - 1))


def _only_at(d: Draft, sku: str, stock: dict[str, int]) -> None:
    """Set the SKU's availability everywhere: as given, else 0."""
    for wid in W.WAREHOUSE_IDS:
        d.set_available(wid, sku, stock.get(wid, 0))


def _expect(d: Draft, strategy: str, tier: str) -> None:
    d.expect("stockout", {strategy: tier}, hold=tier != "L1")


def _surcharge(d: Draft, warehouse_id: str) -> None:
    """Raise a rate so that using this warehouse adds more than the L1 limit."""
    cost = d.rate(d.wh) + W.L1_LIMIT_USD + d.rng.choice((5, 12.5, 30, 70))
    d.set_rate(warehouse_id, round(cost, 2))


def reallocate_same_country(d: Draft, expensive: bool = False) -> None:
    """The same-country peer has every SKU: L1 (L2 when it costs > 50 USD more)."""
    peer = _peer(d)
    sku, qty = _short_line(d)
    d.set_available(d.wh, sku, d.rng.randint(0, qty - 1))
    d.set_available(peer, sku, d.rng.randint(qty, qty + 30))
    if expensive:
        _surcharge(d, peer)
        _expect(d, "reallocate_warehouse", "L2")
        return
    _expect(d, "reallocate_warehouse", "L1")
    d.set_after(("fulfillment", "warehouse_id"), peer)


def reallocate_cross_border(d: Draft) -> None:
    """Only warehouses in other countries have the SKU in full: L2."""
    sku, qty = _short_line(d)
    foreign = d.foreign()
    chosen = d.rng.sample(foreign, d.rng.randint(1, len(foreign)))
    stock = {w: d.rng.randint(qty, qty + 40) for w in chosen}
    stock[d.wh] = d.rng.randint(0, qty - 1)
    _only_at(d, sku, stock)
    if d.rng.random() < 0.4:
        _replenish(d, sku, qty - stock[d.wh], on_time=False)
    _expect(d, "reallocate_warehouse", "L2")


def split_same_country(d: Draft, expensive: bool = False) -> None:
    """Assigned + same-country peer cover the SKU; no warehouse alone does: L1 (or L2).

    A split is drafted only when no single warehouse (any country) suffices.
    """
    peer = _peer(d)
    sku, qty = _short_line(d, min_qty=2)
    mine = d.rng.randint(1, qty - 1)
    stock = {wid: d.rng.randint(0, qty - 1) for wid in d.foreign()}
    stock[d.wh] = mine
    stock[peer] = d.rng.randint(qty - mine, qty - 1)
    _only_at(d, sku, stock)
    if expensive:
        _surcharge(d, peer)
        _expect(d, "split_shipment", "L2")
        return
    _expect(d, "split_shipment", "L1")
    units_here = sum(d.qty_by_sku().values()) - qty + mine
    units_peer = qty - mine
    if units_here != units_peer:
        d.set_after(("fulfillment", "warehouse_id"), d.wh if units_here > units_peer else peer)


def split_cross_border(d: Draft) -> None:
    """No warehouse has the SKU in full; with foreign stock together they do: L2."""
    sku, qty = _short_line(d, min_qty=3)
    mine = d.rng.randint(1, qty - 2)
    rest = qty - mine
    first, second = d.rng.sample(d.foreign(), 2)
    a = d.rng.randint(1, rest)
    stock = {d.wh: mine, first: a}
    if a < rest:
        stock[second] = d.rng.randint(rest - a, qty - 1)
    _only_at(d, sku, stock)
    _expect(d, "split_shipment", "L2")


def _replenish(d: Draft, sku: str, need: int, on_time: bool) -> datetime:
    """Replenishment rows at the assigned warehouse covering `need`; returns when it arrives.

    The new ETA is the arrival plus the transit days of the assigned warehouse's rate.
    On time: new ETA <= promised_by (sometimes exactly); when even a restock tomorrow
    would deliver late, the promise is pushed out. Late: new ETA > promised_by, and often
    the restock itself lands before promised_by (only transit makes it late).
    """
    transit = timedelta(days=d.transit_days())
    floor = W.NOW + timedelta(hours=12)
    if on_time:
        slack = timedelta(hours=d.rng.choice((0, 0, 6, 24, 48)))
        if d.promised_by - transit - slack < floor:
            days = transit.days + d.rng.randint(3, 5)
            d.order["fulfillment"]["promised_by"] = ts(W.NOW + timedelta(days=days))
        last = d.promised_by - transit - slack
    else:
        over = timedelta(hours=d.rng.choice((1, 6, 20, 24, 72, 120)))
        last = max(d.promised_by - transit + over, floor)
    if (last + transit <= d.promised_by) != on_time or last < floor:
        raise ScenarioError("replenishment does not land as intended")
    rows: list[JSON] = []
    if need > 1 and d.rng.random() < 0.5:
        early = d.rng.randint(1, need - 1)
        rows.append(_row(d.wh, sku, early, W.NOW + timedelta(hours=d.rng.randint(2, 10))))
        rows.append(_row(d.wh, sku, need - early + d.rng.randint(0, 10), last))
    else:
        rows.append(_row(d.wh, sku, need + d.rng.randint(0, 20), last))
    if on_time and d.rng.random() < 0.4:
        rows.append(_row(d.wh, sku, 30, d.promised_by + timedelta(days=5)))
    d.world["replenishment"].extend(rows)
    _replenishment_distractors(d, sku)
    return last


def _row(wid: str, sku: str, qty: int, eta: datetime) -> JSON:
    return {"warehouse_id": wid, "sku": sku, "qty": qty, "eta": ts(eta)}


def _replenishment_distractors(d: Draft, sku: str) -> None:
    """Rows that must not count: another warehouse's, or one already past `now`."""
    if d.rng.random() < 0.5:
        other = d.rng.choice([w for w in W.WAREHOUSE_IDS if w != d.wh])
        d.world["replenishment"].append(_row(other, sku, 50, W.NOW + timedelta(days=1)))
    if d.rng.random() < 0.3:
        d.world["replenishment"].append(_row(d.wh, sku, 50, W.NOW - timedelta(days=2)))


def backorder(d: Draft, on_time: bool) -> None:
    """Replenishment at the assigned warehouse covers the SKU: L1 on time, else L2.

    On time means the restock plus the assigned rate's transit days meets promised_by.
    """
    sku, qty = _short_line(d)
    mine = d.rng.randint(0, qty - 1)
    stock = {d.wh: mine}
    for peer in d.peers():
        stock[peer] = d.rng.randint(0, qty - 1 - mine)
    if on_time:
        for wid in d.foreign():
            stock[wid] = d.rng.choice((0, qty + 20))
    else:
        _no_substitute(d, sku, qty)
    _only_at(d, sku, stock)
    arrival = _replenish(d, sku, qty - mine, on_time)
    if on_time:
        _expect(d, "backorder", "L1")
        d.set_after(("fulfillment", "backorder_eta"), ts(arrival))
        delivery = arrival + timedelta(days=d.transit_days())
        d.set_after(("fulfillment", "expected_delivery"), ts(delivery))
    else:
        _expect(d, "backorder", "L2")


def substitute(d: Draft) -> None:
    """Nobody has the SKU, its catalog substitute is at the assigned warehouse: L2."""
    ordered = set(d.qty_by_sku())
    options = [s for s in SUBSTITUTABLE if not set(W.SKU_SUBSTITUTES[s]) & ordered]
    sku = d.rng.choice(options)
    qty = int(ensure_sku_line(d, sku)["qty"])
    if set(W.SKU_SUBSTITUTES[sku]) & set(d.qty_by_sku()):
        raise ScenarioError("substitute already ordered")
    mine = d.rng.randint(0, qty - 1)
    _only_at(d, sku, {d.wh: mine})
    for sub in W.SKU_SUBSTITUTES[sku]:
        d.set_available(d.wh, sub, d.rng.randint(qty, qty + 30))
    if d.rng.random() < 0.4:
        _replenish(d, sku, qty - mine, on_time=False)
    _expect(d, "substitute_item", "L2")


def no_way_out(d: Draft) -> None:
    """Nothing covers the SKU anywhere, no replenishment, no substitute: cancel, L3."""
    sku, qty = _short_line(d)
    mine = d.rng.randint(0, qty - 1)
    _only_at(d, sku, {d.wh: mine})
    _no_substitute(d, sku, qty)
    roll = d.rng.random()
    if roll < 0.3 and qty - mine > 1:
        d.world["replenishment"].append(_row(d.wh, sku, qty - mine - 1, W.NOW + timedelta(days=2)))
    elif roll < 0.6:
        _replenishment_distractors(d, sku)
    _expect(d, "cancel_order", "L3")
