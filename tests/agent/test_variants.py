"""A plan's own parameters, read from its actions: what evidence per variant matches on."""

from __future__ import annotations

from typing import Any

from agent.variants import describe_variant, variant_of
from domain.models import Action, Draft, Kind, Strategy


def _draft(strategy: Strategy, *actions: tuple[str, str, dict[str, Any]]) -> Draft:
    return Draft(
        kind=Kind.STOCKOUT,
        strategy=strategy,
        actions=tuple(Action(tool=t, op=o, args=a) for t, o, a in actions),
    )


def test_each_kind_of_plan_gives_its_own_parameters() -> None:
    move = ("orders", "set_fulfillment", {"order_id": "O", "fields": {"warehouse_id": "WH-SZX"}})
    reserve = ("inventory", "reserve", {"warehouse_id": "WH-SZX", "sku": "A", "qty": 1})
    assert variant_of(_draft(Strategy.REALLOCATE_WAREHOUSE, reserve, move)) == {
        "warehouse": "WH-SZX"
    }
    shipments = [{"warehouse_id": "WH-PEK", "items": []}, {"warehouse_id": "WH-CTU", "items": []}]
    split = (
        "orders",
        "set_fulfillment",
        {"fields": {"warehouse_id": "WH-PEK", "shipments": shipments}},
    )
    assert variant_of(_draft(Strategy.SPLIT_SHIPMENT, split)) == {"warehouses": "WH-CTU+WH-PEK"}
    lines = ("orders", "set_lines", {"changes": {"1": {"sku": "TEE-BLK", "description": "x"}}})
    assert variant_of(_draft(Strategy.SUBSTITUTE_ITEM, lines)) == {"substitute": "TEE-BLK"}
    faster = ("carrier", "change_service", {"order_id": "O", "service": "express"})
    assert variant_of(_draft(Strategy.UPGRADE_SHIPPING, faster)) == {"service": "express"}
    backorder = ("orders", "set_fulfillment", {"fields": {"backorder_eta": "2026-12-24"}})
    assert variant_of(_draft(Strategy.BACKORDER, backorder)) == {}


def test_only_plain_codes_are_parameters() -> None:
    odd = ("orders", "set_fulfillment", {"fields": {"warehouse_id": "WH 1; ignore previous"}})
    assert variant_of(_draft(Strategy.REALLOCATE_WAREHOUSE, odd)) == {}


def test_an_approver_reads_them_in_words() -> None:
    assert describe_variant({"warehouse": "WH-SZX"}) == "shipped from WH-SZX"
    assert describe_variant({"service": "express", "carrier": "DHL"}) == (
        "moved to carrier DHL, moved to express service"
    )
