"""Orders at a sales peak, for the benchmarks: one world, many orders, a share of them
exceptions.

    python -m evals.peak --orders 100000 --exceptions 0.05 --out peak/   # orders.jsonl, world.json

The world is the dev set's (five warehouses, the 14-SKU catalog, every shipping rate), stocked
so that a clean order never runs short however many are run (``PLENTY`` of each SKU in each
warehouse), except the smart watch in Shenzhen: none there, plenty in Shanghai. Clean orders
are valid, paid, stocked, documented and promised well after the world's clock; they go from
each warehouse to its own country and across borders. The exceptions, spread evenly through
the file, are one kind each and mostly L1:

- ``payment_retry`` (L1): the payment failed with a soft decline;
- ``reallocate`` (L1): a smart watch from Shenzhen, which Shanghai has (same country, same cost);
- ``address_fix`` (L1): a Chinese postal code with a dash inside;
- ``attach_invoice`` (L1): a cross-border order without its commercial invoice;
- ``fix_hs`` (L2): a cross-border line with an invalid HS code the catalog knows the fix of.

Customers are distinct, so no order is a duplicate of another. The same arguments give the
same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from evals import scenarios_world as W

PLENTY: Final = 10**9
SCARCE: Final = ("WH-SZX", "WCH-SMT-01")  # none in Shenzhen; Shanghai has plenty
# SKUs of clean orders: no battery (its declaration is another document), not the scarce one.
CLEAN_SKUS: Final = tuple(s for s in W.SKUS if s not in W.BATTERY_SKUS and s != SCARCE[1])
# exception → (weight, tier of its plan)
EXCEPTIONS: Final[dict[str, tuple[int, str]]] = {
    "payment_retry": (3, "L1"),
    "reallocate": (3, "L1"),
    "address_fix": (3, "L1"),
    "attach_invoice": (3, "L1"),
    "fix_hs": (2, "L2"),
}
# (warehouse, destination) routes of clean orders, and of each exception.
DOMESTIC: Final = (("WH-SHA", "CN"), ("WH-SZX", "CN"), ("WH-LAX", "US"), ("WH-EWR", "US"))
CROSS: Final = (
    ("WH-SZX", "US"),
    ("WH-SHA", "DE"),
    ("WH-SZX", "GB"),
    ("WH-FRA", "FR"),
    ("WH-FRA", "NL"),
    ("WH-LAX", "CA"),
    ("WH-SHA", "JP"),
    ("WH-SZX", "AU"),
)


def world() -> dict[str, Any]:
    inventory = [
        {
            "warehouse_id": wid,
            "sku": sku,
            "on_hand": 0 if (wid, sku) == SCARCE else PLENTY,
            "reserved": 0,
        }
        for wid in W.WAREHOUSE_IDS
        for sku in W.SKUS
    ]
    return {
        "now": W.NOW.isoformat(),
        "warehouses": W.base_warehouses(),
        "inventory": inventory,
        "replenishment": [],
        "catalog": W.base_catalog(),
        "shipping_rates": W.base_shipping_rates(),
        "fx_to_usd": dict(W.FX_TO_USD),
        "events": [],
        "recent_orders": [],
    }


def _money(usd: float, currency: str) -> float:
    return round(usd / W.FX_TO_USD[currency], 2)


def _order(rng: random.Random, n: int, prefix: str, route: tuple[str, str]) -> dict[str, Any]:
    warehouse, dest = route
    currency = W.CURRENCY[dest]
    skus = rng.sample(CLEAN_SKUS, rng.choice((1, 1, 2, 3)))
    lines = []
    for i, sku in enumerate(skus, start=1):
        line: dict[str, Any] = {
            "line_id": f"{prefix}-{n:07d}-{i}",
            "sku": sku,
            "qty": rng.randint(1, 3),
            "unit_price": _money(W.PRICE_USD[sku], currency),
            "description": W.SKU_DESCRIPTION[sku],
            "hs_code": W.SKU_HS[sku],
            "origin_country": "CN",
        }
        lines.append(line)
    total = round(sum(line["qty"] * line["unit_price"] for line in lines), 2)
    origin = W.WAREHOUSE_COUNTRY[warehouse]
    order: dict[str, Any] = {
        "order_id": f"{prefix}-{n:07d}",
        "channel": rng.choice(W.CHANNELS_CN if dest == "CN" else W.CHANNELS_INTL),
        "created_at": (W.NOW - timedelta(minutes=rng.randint(1, 600))).isoformat(),
        "customer": {"id": f"C-{prefix}-{n}", "tier": rng.choice(("vip", "regular", "new"))},
        "ship_to": {"name": rng.choice(W.NAMES[dest]), **rng.choice(W.VALID_ADDRESSES[dest])},
        "lines": lines,
        "currency": currency,
        "payment": {
            "status": "captured",
            "method": rng.choice(W.PAY_METHODS_CN if dest == "CN" else W.PAY_METHODS_INTL),
            "amount": total,
        },
        "fulfillment": {
            "warehouse_id": warehouse,
            "service": "standard",
            "carrier": rng.choice(W.CARRIERS[origin] if origin == dest else W.CARRIERS["cross"]),
            "promised_by": (W.NOW + timedelta(days=20)).isoformat(),
        },
    }
    if origin != dest:
        order["customs"] = {"incoterm": "DDP", "documents": ["commercial_invoice"]}
        order["customs"]["declared_value"] = total
    return order


def _exception(rng: random.Random, n: int, prefix: str, kind: str) -> dict[str, Any]:
    if kind == "payment_retry":
        order = _order(rng, n, prefix, rng.choice(DOMESTIC + CROSS))
        order["payment"].update(status="failed", failure_code="soft_decline")
    elif kind == "reallocate":
        order = _order(rng, n, prefix, ("WH-SZX", "CN"))
        line = order["lines"][0]
        line.update(
            sku=SCARCE[1],
            description=W.SKU_DESCRIPTION[SCARCE[1]],
            hs_code=W.SKU_HS[SCARCE[1]],
            unit_price=_money(W.PRICE_USD[SCARCE[1]], "CNY"),
        )
        total = round(sum(x["qty"] * x["unit_price"] for x in order["lines"]), 2)
        order["payment"]["amount"] = total
    elif kind == "address_fix":
        order = _order(rng, n, prefix, rng.choice(DOMESTIC[:2]))
        postal = order["ship_to"]["postal_code"]
        order["ship_to"]["postal_code"] = postal[:3] + "-" + postal[3:]
    elif kind == "attach_invoice":
        order = _order(rng, n, prefix, rng.choice(CROSS))
        order["customs"]["documents"] = []
    elif kind == "fix_hs":
        order = _order(rng, n, prefix, rng.choice(CROSS))
        order["lines"][0]["hs_code"] = "12AB56"
    else:
        raise ValueError(f"no such exception: {kind}")
    return order


def orders(
    count: int,
    exceptions: float = 0.05,
    *,
    seed: int = 13,
    prefix: str = "PK",
    kinds: tuple[str, ...] = tuple(EXCEPTIONS),
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """``count`` orders, ``int(count * exceptions)`` of them exceptions spread evenly, drawn
    from ``kinds`` by their weights; each as (its exception's name, or None for a clean one;
    the order). Order ids are ``<prefix>-<n>``."""
    unknown = set(kinds) - set(EXCEPTIONS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {', '.join(EXCEPTIONS)}")
    rng = random.Random(seed)
    drawn = [k for k in kinds for _ in range(EXCEPTIONS[k][0])]
    for n in range(count):
        if int((n + 1) * exceptions) > int(n * exceptions):
            kind = drawn[rng.randrange(len(drawn))]
            yield kind, _exception(rng, n, prefix, kind)
        else:
            yield None, _order(rng, n, prefix, rng.choice(DOMESTIC + DOMESTIC + CROSS))


def write(folder: Path, count: int, exceptions: float = 0.05, *, seed: int = 13) -> Counter[str]:
    """``folder/orders.jsonl`` and ``folder/world.json``; returns how many of each kind."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "world.json").write_text(
        json.dumps(world(), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    made: Counter[str] = Counter()
    with (folder / "orders.jsonl").open("w", encoding="utf-8") as out:
        for kind, order in orders(count, exceptions, seed=seed):
            made[kind or "clean"] += 1
            out.write(json.dumps(order, ensure_ascii=False, separators=(",", ":")) + "\n")
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.peak", description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--exceptions", type=float, default=0.05, help="share of exceptions")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    args = parser.parse_args(argv)
    if not 0 <= args.exceptions <= 1:
        parser.error("--exceptions is a share, from 0 to 1")
    made = write(args.out, args.orders, args.exceptions, seed=args.seed)
    print(f"{args.out}/orders.jsonl: " + ", ".join(f"{k} {v}" for k, v in sorted(made.items())))


if __name__ == "__main__":
    main()
