"""Playbooks and ranking: which strategies are drafted, in which order, at which tier."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agent import playbooks
from agent.detect import detect
from agent.rank import rank
from domain.models import Plan
from domain.policy import default_policy
from tests.factories import clean_case, context, example, set_stock

POLICY = default_policy()


def ranked(
    case: dict[str, Any], kind: str, similar: list[dict[str, Any]] | None = None
) -> list[Plan]:
    ctx = context(case)
    (finding,) = [f for f in detect(ctx) if f.kind.value == kind]
    return rank(playbooks.draft(ctx, finding), POLICY, similar or [])


def top(case: dict[str, Any], kind: str) -> tuple[str, str]:
    plan = ranked(case, kind)[0]
    return plan.strategy.value, plan.tier.value


def stockout_case() -> dict[str, Any]:
    """An order from WH-SHA for 3 × CASE-PH-15B, none at WH-SHA."""
    return example("EX-multi-011") | {
        "order": {
            **example("EX-multi-011")["order"],
            "ship_to": example("EX-inject-stock-012")["order"]["ship_to"],
        }
    }


def test_same_country_reallocation_is_l1_and_moves_the_order() -> None:
    plans = ranked(stockout_case(), "stockout")
    assert (plans[0].strategy.value, plans[0].tier.value, plans[0].rank_key) == (
        "reallocate_warehouse",
        "L1",
        "reallocate_warehouse:same_country",
    )
    assert plans[0].actions[-1].args == {
        "order_id": "EX-0011",
        "fields": {"warehouse_id": "WH-SZX"},
    }


def test_cross_border_reallocation_is_l2() -> None:
    case = stockout_case()
    set_stock(case["world"], "WH-SZX", "CASE-PH-15B", 0)
    strategy, tier = top(case, "stockout")
    assert (strategy, tier) == ("reallocate_warehouse", "L2")


def test_costly_same_country_reallocation_rises_to_l2() -> None:
    case = stockout_case()
    for rate in case["world"]["shipping_rates"]:
        if rate["warehouse_id"] == "WH-SZX" and rate["country_code"] == "CN":
            rate["cost_usd"] = 80
    plan = ranked(case, "stockout")[0]
    assert plan.strategy.value == "reallocate_warehouse"
    assert plan.cost_usd == Decimal("78.0")
    assert plan.tier.value == "L2"


def test_same_country_split_beats_cross_border_reallocation() -> None:
    case = stockout_case()
    case["order"]["lines"].append(
        {
            "line_id": "EX-0011-2",
            "sku": "MUG-CER-01",
            "qty": 2,
            "unit_price": 10,
            "description": "Mug",
        }
    )
    set_stock(case["world"], "WH-SZX", "MUG-CER-01", 0)
    plans = ranked(case, "stockout")
    assert plans[0].rank_key == "split_shipment:same_country"
    fulfil = plans[0].actions[-1].args["fields"]
    assert {s["warehouse_id"] for s in fulfil["shipments"]} == {"WH-SHA", "WH-SZX"}
    assert "reallocate_warehouse:cross_border" in [p.rank_key for p in plans]


def test_backorder_on_time_is_l1_and_late_is_l2() -> None:
    case = example("EX-stock-late-006")
    assert top(case, "stockout") == ("backorder", "L2")
    case["world"]["replenishment"][0]["eta"] = "2026-11-24T09:00:00+08:00"
    assert top(case, "stockout") == ("backorder", "L1")


def test_replenishment_that_does_not_cover_the_order_is_no_backorder() -> None:
    case = example("EX-stock-late-006")
    case["world"]["replenishment"][0]["qty"] = 0 + 1
    case["order"]["lines"][0]["qty"] = 2
    assert top(case, "stockout") == ("cancel_order", "L3")


def test_replenishment_covers_an_oversold_deficit_first() -> None:
    """Contract §7: availability has no floor; what is owed comes first."""
    case = example("EX-stock-late-006")
    need = case["order"]["lines"][0]["qty"]
    for row in case["world"]["inventory"]:
        if (row["warehouse_id"], row["sku"]) == ("WH-SHA", "BAG-BPK-20"):
            row["on_hand"], row["reserved"] = 2, 5  # oversold by 3
    case["world"]["replenishment"][0]["qty"] = need + 2
    assert top(case, "stockout") == ("cancel_order", "L3")
    case["world"]["replenishment"][0]["qty"] = need + 3
    assert top(case, "stockout") == ("backorder", "L2")


def test_substitute_ranks_above_late_backorder() -> None:
    case = example("EX-stock-late-006")
    case["order"]["lines"][0].update(sku="TEE-COT-BLK")
    set_stock(case["world"], "WH-SHA", "TEE-COT-BLK", 0)
    for wh in ("WH-SZX", "WH-LAX", "WH-EWR", "WH-FRA"):
        set_stock(case["world"], wh, "TEE-COT-BLK", 0)
    case["world"]["replenishment"][0]["sku"] = "TEE-COT-BLK"
    keys = [p.rank_key for p in ranked(case, "stockout")]
    assert keys == ["substitute_item", "backorder:late"]


def test_nothing_feasible_means_cancel_with_refund_at_l3() -> None:
    case = example("EX-stock-late-006")
    case["world"]["replenishment"] = []
    (plan,) = ranked(case, "stockout")
    assert (plan.strategy.value, plan.tier.value) == ("cancel_order", "L3")
    assert [a.op for a in plan.actions] == ["set_status", "refund", "send"]
    assert plan.cost_usd == Decimal("45.00")  # 321.43 CNY at 0.14


def test_customs_attach_generated_documents_is_l1() -> None:
    case = clean_case()
    case["order"]["customs"]["documents"] = []
    assert top(case, "customs_block") == ("customs_attach_document", "L1")


def test_customs_fix_and_attach_together_is_one_l2_plan() -> None:
    case = example("EX-customs-bad_hs-005")
    case["order"]["customs"]["documents"] = []
    plan = ranked(case, "customs_block")[0]
    assert (plan.strategy.value, plan.tier.value) == ("customs_fix_hs_code", "L2")
    assert [a.op for a in plan.actions] == ["set_lines", "attach_document"]


def test_customs_problem_without_a_fix_goes_to_manual_review() -> None:
    case = clean_case()
    case["order"]["lines"][0].update(sku="PWR-BANK-10K", hs_code="850760")
    assert top(case, "customs_block") == ("manual_review", "L2")
    case = clean_case()
    case["world"]["events"] = [
        {
            "type": "customs_hold",
            "order_id": "EX-0001",
            "at": "2026-11-20T08:00:00+08:00",
            "data": {"reason": "valuation_query"},
        }
    ]
    assert top(case, "customs_block") == ("manual_review", "L2")


def test_embargo_is_cancel_only() -> None:
    case = clean_case(
        order={"ship_to": {"country_code": "IR", "city": "Tehran", "postal_code": "1136956111"}}
    )
    plans = ranked(case, "customs_block")
    assert [(p.strategy.value, p.tier.value) for p in plans] == [("cancel_order", "L3")]


def test_payment_retry_for_soft_declines_only() -> None:
    case = example("EX-payment-008")
    assert top(case, "payment_failed") == ("payment_request_new_method", "L1")
    case["order"]["payment"]["failure_code"] = "processor_timeout"
    assert top(case, "payment_failed") == ("payment_retry", "L1")


def test_delay_voucher_is_capped_at_the_l1_limit() -> None:
    case = example("EX-delay-009")
    case["order"]["lines"][0]["unit_price"] = 5000
    plans = ranked(case, "carrier_delay")
    assert (plans[0].strategy.value, plans[0].tier.value, plans[0].cost_usd) == (
        "notify_delay",
        "L1",
        Decimal("50"),
    )
    assert plans[1].strategy.value == "upgrade_shipping"
    assert plans[1].tier.value == "L2"


def test_no_upgrade_when_even_express_is_late() -> None:
    case = example("EX-delay-009")
    case["order"]["fulfillment"]["promised_by"] = "2026-11-20T10:00:00+08:00"
    case["world"]["events"][0]["data"]["new_eta"] = "2026-11-23T10:00:00+08:00"
    assert [p.strategy.value for p in ranked(case, "carrier_delay")] == ["notify_delay"]


def _cases(strategy: str, n: int, failed: int) -> list[dict[str, Any]]:
    return [
        {"case_id": f"{strategy}-{i}", "strategy": strategy, "success": i >= failed}
        for i in range(n)
    ]


def test_past_cases_reorder_only_on_strong_evidence() -> None:
    case = example("EX-inject-stock-012")
    default = [p.rank_key for p in ranked(case, "stockout")]
    assert default[0] == "reallocate_warehouse:same_country"
    weak = _cases("reallocate_warehouse", 2, 2) + _cases("substitute_item", 2, 0)  # 4 cases only
    assert [p.rank_key for p in ranked(case, "stockout", weak)] == default
    small_gap = _cases("reallocate_warehouse", 5, 2) + _cases("substitute_item", 5, 1)  # 40% vs 20%
    assert [p.rank_key for p in ranked(case, "stockout", small_gap)] == default
    strong = _cases("reallocate_warehouse", 4, 3) + _cases("substitute_item", 3, 0)  # 75% vs 0%
    plans = ranked(case, "stockout", strong)
    assert plans[0].strategy.value == "substitute_item"
    assert plans[0].similar_cases == ("substitute_item-0", "substitute_item-1", "substitute_item-2")
    assert plans[0].tier.value == "L2"  # evidence moves rank, never tier


def test_prompt_injection_in_notes_changes_nothing() -> None:
    case = example("EX-inject-stock-012")
    plain = example("EX-inject-stock-012")
    plain["order"].pop("notes")
    assert [p.model_dump() for p in ranked(case, "stockout")] == [
        p.model_dump() for p in ranked(plain, "stockout")
    ]


def test_backorder_counts_transit_to_the_delivery_promise() -> None:
    case = example("EX-stock-late-006")  # SHA → CN standard: 2 days transit, promised 11-26 09:00
    case["world"]["replenishment"][0]["eta"] = "2026-11-25T09:00:00+08:00"
    plan = ranked(case, "stockout")[0]
    assert (plan.strategy.value, plan.tier.value, plan.rank_key) == (
        "backorder",
        "L2",
        "backorder:late",
    )
    assert plan.actions[0].args["fields"] == {
        "backorder_eta": "2026-11-25T09:00:00+08:00",
        "expected_delivery": "2026-11-27T09:00:00+08:00",
    }


def test_no_upgrade_for_a_parcel_already_shipped() -> None:
    case = example("EX-delay-009")
    case["order"]["status"] = "fulfilled"
    assert [p.strategy.value for p in ranked(case, "carrier_delay")] == ["notify_delay"]


def test_a_move_across_a_border_brings_its_customs_papers() -> None:
    case = example("EX-stock-substitute-007")  # US order at WH-EWR, TEE-COT-BLK out everywhere
    set_stock(case["world"], "WH-FRA", "TEE-COT-BLK", 5)
    plan = next(p for p in ranked(case, "stockout") if p.strategy.value == "reallocate_warehouse")
    assert plan.rank_key == "reallocate_warehouse:cross_border"
    assert [(a.op, a.args.get("document")) for a in plan.actions][-1] == (
        "attach_document",
        "commercial_invoice",
    )
    assert "Crosses a border: attach commercial_invoice" in plan.rationale
    same = next(p for p in ranked(example("EX-inject-stock-012"), "stockout"))
    assert all(a.op != "attach_document" for a in same.actions)
