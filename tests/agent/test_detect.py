"""Detectors, one kind at a time, on both sides of each rule of contract §3."""

from __future__ import annotations

from typing import Any

import pytest

from agent.detect import detect
from tests.factories import clean_case, context, example, set_stock


def kinds(case: dict[str, Any]) -> list[str]:
    return [f.kind.value for f in detect(context(case))]


def test_clean_order_raises_nothing() -> None:
    assert kinds(example("EX-clean-001")) == []


@pytest.mark.parametrize(
    "case_id",
    [
        c
        for c in [
            "EX-addr-fix-002",
            "EX-addr-confirm-003",
            "EX-customs-prohibited-004",
            "EX-customs-bad_hs-005",
            "EX-stock-late-006",
            "EX-stock-substitute-007",
            "EX-payment-008",
            "EX-delay-009",
            "EX-dup-010",
            "EX-multi-011",
            "EX-inject-stock-012",
        ]
    ],
)
def test_examples_raise_what_they_expect(case_id: str) -> None:
    case = example(case_id)
    assert sorted(kinds(case)) == sorted(case["expect"]["kinds"])


def test_invalid_address_is_bad_address_with_a_repair() -> None:
    case = clean_case(order={"ship_to": {"postal_code": "1012-JS"}})
    case["order"]["ship_to"]["postal_code"] = "10l2JS"
    findings = detect(context(case))
    assert [f.kind.value for f in findings] == ["bad_address"]
    assert findings[0].facts["errors"] == {"postal_code": "invalid"}


def test_carrier_exception_on_a_valid_address_is_bad_address_without_repair() -> None:
    case = clean_case()
    case["world"]["events"] = [
        {
            "type": "carrier_exception",
            "order_id": "EX-0001",
            "at": "2026-11-20T08:00:00+08:00",
            "data": {"code": "address_incomplete"},
        }
    ]
    (finding,) = detect(context(case))
    assert finding.kind.value == "bad_address"
    assert finding.facts["repair"] is None
    assert "carrier reported address_incomplete" in finding.evidence


def test_events_of_other_orders_and_other_codes_are_ignored() -> None:
    case = clean_case()
    case["world"]["events"] = [
        {
            "type": "carrier_exception",
            "order_id": "OTHER",
            "at": "2026-11-20T08:00:00+08:00",
            "data": {"code": "address_undeliverable"},
        },
        {
            "type": "carrier_exception",
            "order_id": "EX-0001",
            "at": "2026-11-20T08:00:00+08:00",
            "data": {"code": "weather"},
        },
    ]
    assert kinds(case) == []


def test_domestic_order_needs_no_customs_even_with_a_bad_hs_code() -> None:
    case = clean_case(
        order={
            "ship_to": {
                "country_code": "DE",
                "city": "Berlin",
                "postal_code": "10117",
                "street_address": "Unter den Linden 1",
            }
        }
    )
    case["order"]["lines"][0]["hs_code"] = "XX"
    case["order"].pop("customs")
    assert kinds(case) == []


@pytest.mark.parametrize(
    ("code", "blocked"),
    [
        ("610910", False),
        ("6109100010", False),
        ("999999", True),
        ("6109", True),
        ("61091012345", True),
        (None, True),
        ("6109.10", True),
    ],
)
def test_hs_code_rule(code: str | None, blocked: bool) -> None:
    case = clean_case()
    if code is None:
        case["order"]["lines"][0].pop("hs_code")
    else:
        case["order"]["lines"][0]["hs_code"] = code
    assert kinds(case) == (["customs_block"] if blocked else [])


def test_missing_invoice_and_battery_declaration() -> None:
    case = clean_case()
    case["order"]["customs"]["documents"] = []
    (finding,) = detect(context(case))
    assert {"type": "missing_document", "document": "commercial_invoice"} in finding.facts[
        "problems"
    ]
    case = clean_case()
    case["order"]["lines"][0].update(sku="PWR-BANK-10K", hs_code="850760")
    (finding,) = detect(context(case))
    assert finding.facts["problems"] == [
        {"type": "missing_document", "document": "battery_declaration"}
    ]


def test_embargoed_destination() -> None:
    case = clean_case(
        order={
            "ship_to": {
                "country_code": "IR",
                "city": "Tehran",
                "postal_code": "1136956111",
                "street_address": "1 Ferdowsi Ave",
            }
        }
    )
    findings = {f.kind.value: f for f in detect(context(case))}
    assert findings["customs_block"].facts["embargoed"] is True


def test_stockout_sums_lines_of_the_same_sku() -> None:
    case = clean_case()
    set_stock(case["world"], "WH-FRA", "TEE-COT-NVY", 4)
    line = dict(case["order"]["lines"][0], line_id="EX-0001-2", qty=2)
    case["order"]["lines"].append(line)
    (finding,) = detect(context(case))
    assert finding.facts["short"] == {"TEE-COT-NVY": {"need": 5, "available": 4}}
    set_stock(case["world"], "WH-FRA", "TEE-COT-NVY", 5)
    assert kinds(case) == []


def test_reserved_stock_is_not_available() -> None:
    case = clean_case()
    for row in case["world"]["inventory"]:
        if row["warehouse_id"] == "WH-FRA" and row["sku"] == "TEE-COT-NVY":
            row["reserved"] = row["on_hand"] - 2
    assert kinds(case) == ["stockout"]


def test_payment_failed_event_gives_its_code() -> None:
    case = clean_case()
    case["world"]["events"] = [
        {
            "type": "payment_failed",
            "order_id": "EX-0001",
            "at": "2026-11-20T08:00:00+08:00",
            "data": {"failure_code": "soft_decline"},
        }
    ]
    (finding,) = detect(context(case))
    assert finding.facts["failure_code"] == "soft_decline"


def test_carrier_delay_only_when_after_the_promise() -> None:
    case = clean_case()
    promised = case["order"]["fulfillment"]["promised_by"]
    case["world"]["events"] = [
        {
            "type": "carrier_delay",
            "order_id": "EX-0001",
            "at": "2026-11-20T08:00:00+08:00",
            "data": {"new_eta": promised},
        }
    ]
    assert kinds(case) == []
    case["world"]["events"][0]["data"]["new_eta"] = "2026-12-02T10:00:00+08:00"
    assert kinds(case) == ["carrier_delay"]


def _recent(case: dict[str, Any], minutes_before: int, **patch: Any) -> dict[str, Any]:
    from datetime import datetime, timedelta

    created = datetime.fromisoformat(case["order"]["created_at"]) - timedelta(
        minutes=minutes_before
    )
    other = dict(case["order"], order_id="EX-0001-A", created_at=created.isoformat(), **patch)
    return other


@pytest.mark.parametrize(("minutes", "dup"), [(0, True), (10, True), (30, True), (31, False)])
def test_duplicate_window(minutes: int, dup: bool) -> None:
    case = clean_case()
    case["world"]["recent_orders"] = [_recent(case, minutes)]
    assert kinds(case) == (["duplicate_order"] if dup else [])


def test_duplicate_needs_same_customer_address_and_items() -> None:
    case = clean_case()
    case["world"]["recent_orders"] = [
        _recent(case, 5, customer={"id": "C-other", "tier": "regular"}),
        _recent(case, 5, ship_to=dict(case["order"]["ship_to"], street_address="Dam 2")),
        _recent(case, 5, lines=[dict(case["order"]["lines"][0], qty=1)]),
        _recent(case, 5, status="cancelled"),
    ]
    assert kinds(case) == []


def test_later_order_is_not_flagged_against_an_earlier_one_in_the_future() -> None:
    case = clean_case()
    case["world"]["recent_orders"] = [_recent(case, -5)]
    assert kinds(case) == []


def test_cancelled_orders_are_not_handled() -> None:
    case = example("EX-payment-008")
    case["order"]["status"] = "cancelled"
    assert kinds(case) == []


def _event(kind: str, at: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "order_id": "EX-0001", "at": at, "data": data}


def test_the_latest_delay_event_decides() -> None:
    case = clean_case()
    late, on_time = "2026-12-05T09:00:00+08:00", "2026-12-01T09:00:00+08:00"
    case["world"]["events"] = [
        _event("carrier_delay", "2026-11-20T08:00:00+08:00", new_eta=late),
        _event("carrier_delay", "2026-11-20T08:30:00+08:00", new_eta=on_time),
    ]
    assert kinds(case) == []
    case["world"]["events"].reverse()  # order in the file does not matter, `at` does
    assert kinds(case) == []
    case["world"]["events"][1]["at"] = "2026-11-20T08:45:00+08:00"  # the late one, now latest
    assert kinds(case) == ["carrier_delay"]


def test_the_latest_payment_event_overrides_the_order_code() -> None:
    case = example("EX-payment-008")
    case["order"]["payment"]["failure_code"] = "soft_decline"
    (finding,) = detect(context(case))
    assert finding.facts["failure_code"] == "soft_decline"
    case["world"]["events"] = [
        {
            "type": "payment_failed",
            "order_id": "EX-0008",
            "at": "2026-11-20T08:00:00+08:00",
            "data": {"failure_code": "hard_decline"},
        }
    ]
    (finding,) = detect(context(case))
    assert finding.facts["failure_code"] == "hard_decline"


def test_a_shipped_order_gets_only_what_events_report() -> None:
    case = clean_case()
    case["order"]["status"] = "fulfilled"
    set_stock(case["world"], "WH-FRA", "TEE-COT-NVY", 0)
    case["order"]["ship_to"]["postal_code"] = "garbage"
    case["order"]["lines"][0]["hs_code"] = "XX"
    case["world"]["recent_orders"] = [_recent(case, 5)]
    assert kinds(case) == []
    case["world"]["events"] = [
        _event("carrier_delay", "2026-11-20T08:00:00+08:00", new_eta="2026-12-05T09:00:00+08:00"),
        _event("carrier_exception", "2026-11-20T08:00:00+08:00", code="address_undeliverable"),
        _event("customs_hold", "2026-11-20T08:00:00+08:00", reason="valuation_query"),
    ]
    assert kinds(case) == ["bad_address", "customs_block", "carrier_delay"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            _event("carrier_delay", "2026-11-20T08:00:00+08:00", new_eta="soon"),
            "not an RFC 3339 timestamp",
        ),
        (
            _event("carrier_delay", "2026-11-20T08:00:00+08:00", new_eta="2026-12-05T09:00:00"),
            "offset",
        ),
        (_event("carrier_delay", "2026-11-20T08:00:00+08:00"), "needs data.new_eta"),
        (_event("customs_hold", "2026-11-20T08:00:00+08:00"), "needs data.reason"),
    ],
)
def test_events_missing_what_they_must_carry_are_refused(
    event: dict[str, Any], message: str
) -> None:
    case = clean_case()
    case["world"]["events"] = [event]
    with pytest.raises(ValueError, match=message):
        context(case)


def test_usd_needs_no_rate() -> None:
    case = example("EX-delay-009")
    case["world"]["fx_to_usd"].pop("USD")
    assert kinds(case) == ["carrier_delay"]
