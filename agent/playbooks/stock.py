"""stockout: reallocate, split, backorder, substitute; cancel when nothing else works."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from agent.context import Context
from agent.playbooks.common import act, cancel, money, notify, plan
from domain.models import Action, Draft, Finding, Strategy

Allocation = dict[str, dict[str, int]]  # warehouse → sku → qty


@dataclass(frozen=True)
class Option:
    warehouses: tuple[str, ...]
    allocation: Allocation
    cost_usd: Decimal
    same_country: bool


def _old_cost(ctx: Context) -> Decimal:
    rate = ctx.rate(ctx.assigned)
    return rate.cost_usd if rate else Decimal(0)


def _same_country(ctx: Context, warehouse_id: str) -> bool:
    return ctx.warehouse_country(warehouse_id) == ctx.ship_from


def _shipping_cost(ctx: Context, warehouse_ids: list[str]) -> Decimal | None:
    total = Decimal(0)
    for wh in warehouse_ids:
        rate = ctx.rate(wh)
        if rate is None:
            return None
        total += rate.cost_usd
    return total


def reallocations(ctx: Context, need: dict[str, int]) -> list[Option]:
    """The cheapest single other warehouse in the same country, and elsewhere."""
    best: dict[bool, Option] = {}
    for wh in ctx.warehouse_ids:
        if wh == ctx.assigned or any(ctx.available(wh, s) < q for s, q in need.items()):
            continue
        cost = _shipping_cost(ctx, [wh])
        if cost is None:
            continue
        option = Option((wh,), {wh: dict(need)}, cost - _old_cost(ctx), _same_country(ctx, wh))
        current = best.get(option.same_country)
        if current is None or (option.cost_usd, wh) < (current.cost_usd, current.warehouses[0]):
            best[option.same_country] = option
    return [best[k] for k in (True, False) if k in best]


def _allocate(ctx: Context, need: dict[str, int], pool: list[str]) -> Allocation | None:
    allocation: Allocation = {}
    for sku, qty in need.items():
        remaining = qty
        for wh in pool:
            take = min(ctx.available(wh, sku), remaining)
            if take > 0:
                allocation.setdefault(wh, {})[sku] = take
                remaining -= take
            if remaining == 0:
                break
        if remaining:
            return None
    return allocation


def split(ctx: Context, need: dict[str, int]) -> Option | None:
    """Assigned warehouse first, then others (same country first, then cheapest)."""
    others = [wh for wh in ctx.warehouse_ids if wh != ctx.assigned and ctx.rate(wh) is not None]
    others.sort(key=lambda wh: (not _same_country(ctx, wh), ctx.rate(wh).cost_usd, wh))  # type: ignore[union-attr]
    same = [wh for wh in others if _same_country(ctx, wh)]
    for pool, same_country in (([ctx.assigned, *same], True), ([ctx.assigned, *others], False)):
        allocation = _allocate(ctx, need, pool)
        if allocation is None or len(allocation) < 2:
            continue
        used = [wh for wh in pool if wh in allocation]
        cost = _shipping_cost(ctx, used)
        if cost is None:
            continue
        return Option(tuple(used), allocation, cost - _old_cost(ctx), same_country)
    return None


def backorder_eta(
    ctx: Context, need: dict[str, int], short: dict[str, dict[str, int]]
) -> datetime | None:
    latest: datetime | None = None
    for sku in short:
        missing = need[sku] - ctx.available(ctx.assigned, sku)
        incoming = sorted(
            (
                r
                for r in ctx.world.replenishment
                if r.warehouse_id == ctx.assigned and r.sku == sku and r.eta > ctx.world.now
            ),
            key=lambda r: r.eta,
        )
        for row in incoming:
            missing -= row.qty
            latest = row.eta if latest is None else max(latest, row.eta)
            if missing <= 0:
                break
        if missing > 0:
            return None
    return latest


def substitutes(
    ctx: Context, need: dict[str, int], short: dict[str, dict[str, int]]
) -> dict[str, str] | None:
    catalog = {item.sku: item for item in ctx.world.catalog}
    chosen: dict[str, str] = {}
    for sku in short:
        item = catalog.get(sku)
        options = item.substitutes if item else ()
        pick = next(
            (
                s
                for s in options
                if ctx.available(ctx.assigned, s) >= need[sku] + need.get(s, 0) and s not in short
            ),
            None,
        )
        if pick is None:
            return None
        chosen[sku] = pick
    return chosen


def _reserve(ctx: Context, allocation: Allocation) -> list[Action]:
    return [
        act("inventory", "reserve", warehouse_id=wh, sku=sku, qty=qty)
        for wh, items in allocation.items()
        for sku, qty in items.items()
    ]


def _customs_for_route(ctx: Context, warehouses: tuple[str, ...]) -> tuple[list[Action], str]:
    """A new route that crosses a border needs its customs papers: attach the ones exdesk
    generates, and say which a person must still provide."""
    if all(ctx.warehouse_country(wh) == ctx.destination for wh in warehouses):
        return [], ""
    attached = ctx.attached_documents()
    missing = [d for d in ctx.required_documents() if d not in attached]
    generated = [d for d in missing if d in ctx.policy.customs.generated]
    others = [d for d in missing if d not in generated]
    actions = [
        act("customs", "attach_document", order_id=ctx.order.order_id, document=d)
        for d in generated
    ]
    note = f" Crosses a border: attach {', '.join(generated)}." if generated else ""
    if others:
        note += f" Customs will also need {', '.join(others)}, which a person must provide."
    return actions, note


def _reallocate_plan(ctx: Context, finding: Finding, option: Option) -> Draft:
    wh = option.warehouses[0]
    where = "same country" if option.same_country else f"ships from {ctx.warehouse_country(wh)}"
    customs, note = _customs_for_route(ctx, option.warehouses)
    return plan(
        finding,
        Strategy.REALLOCATE_WAREHOUSE,
        [
            *_reserve(ctx, option.allocation),
            act(
                "orders",
                "set_fulfillment",
                order_id=ctx.order.order_id,
                fields={"warehouse_id": wh},
            ),
            *customs,
        ],
        variant="same_country" if option.same_country else "cross_border",
        cost_usd=option.cost_usd,
        rationale=f"{wh} has every line in stock ({where}); "
        f"added shipping {money(option.cost_usd)} USD.{note}",
    )


def _split_plan(ctx: Context, finding: Finding, option: Option) -> Draft:
    main = max(
        option.allocation, key=lambda wh: (sum(option.allocation[wh].values()), wh == ctx.assigned)
    )
    shipments = [
        {"warehouse_id": wh, "items": sorted([s, q] for s, q in option.allocation[wh].items())}
        for wh in option.warehouses
    ]
    parts = "; ".join(
        f"{wh}: " + ", ".join(f"{q}× {s}" for s, q in sorted(option.allocation[wh].items()))
        for wh in option.warehouses
    )
    customs, note = _customs_for_route(ctx, option.warehouses)
    return plan(
        finding,
        Strategy.SPLIT_SHIPMENT,
        [
            *_reserve(ctx, {wh: a for wh, a in option.allocation.items() if wh != ctx.assigned}),
            act(
                "orders",
                "set_fulfillment",
                order_id=ctx.order.order_id,
                fields={"warehouse_id": main, "shipments": shipments},
            ),
            *customs,
        ],
        variant="same_country" if option.same_country else "cross_border",
        cost_usd=option.cost_usd,
        rationale=f"Ship in {len(option.warehouses)} parcels ({parts}); added shipping "
        f"{money(option.cost_usd)} USD.{note}",
    )


def draft(ctx: Context, finding: Finding) -> list[Draft]:
    need = ctx.order.qty_by_sku()
    short: dict[str, dict[str, int]] = finding.facts["short"]
    order_id = ctx.order.order_id
    plans = [_reallocate_plan(ctx, finding, o) for o in reallocations(ctx, need)]
    option = split(ctx, need)
    if option:
        plans.append(_split_plan(ctx, finding, option))
    restock = backorder_eta(ctx, need, short)
    if restock is not None:
        rate = ctx.rate(ctx.assigned)
        delivery = restock + timedelta(days=rate.transit_days if rate else 0)
        on_time = delivery <= ctx.order.fulfillment.promised_by
        fields = {"backorder_eta": restock.isoformat(), "expected_delivery": delivery.isoformat()}
        actions = [act("orders", "set_fulfillment", order_id=order_id, fields=fields)]
        if not on_time:
            actions.append(notify(ctx, "backorder", expected_delivery=delivery.isoformat()))
        plans.append(
            plan(
                finding,
                Strategy.BACKORDER,
                actions,
                variant="on_time" if on_time else "late",
                rationale=f"Replenishment reaches {ctx.assigned} by {restock.isoformat()}; "
                f"delivered by {delivery.isoformat()}, "
                + ("on or before the promised date." if on_time else "after the promised date."),
            )
        )
    subs = substitutes(ctx, need, short)
    if subs:
        catalog = {item.sku: item for item in ctx.world.catalog}
        changes = {
            line.line_id: {
                "sku": subs[line.sku],
                "description": catalog[subs[line.sku]].description,
            }
            for line in ctx.order.lines
            if line.sku in subs
        }
        reserve = {ctx.assigned: {sub: need[sku] for sku, sub in subs.items()}}
        plans.append(
            plan(
                finding,
                Strategy.SUBSTITUTE_ITEM,
                [
                    act("orders", "set_lines", order_id=order_id, changes=changes),
                    *_reserve(ctx, reserve),
                    notify(ctx, "substitution", substitutes=subs),
                ],
                rationale="Ship catalog substitutes from "
                + ctx.assigned
                + ": "
                + ", ".join(f"{a} → {b}" for a, b in subs.items())
                + ".",
            )
        )
    if not plans:
        plans.append(
            cancel(ctx, finding, "no warehouse, replenishment or substitute can fill the order")
        )
    return plans
