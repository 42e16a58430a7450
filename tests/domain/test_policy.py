"""The policy file: defaults, errors that name the line, tier rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from domain.approvals import approvals_missing
from domain.models import Approval, Order, Tier
from domain.policy import PolicyError, default_policy, parse_policy
from tests.factories import example

TEXT = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()


def test_default_policy_carries_the_contract_defaults() -> None:
    policy = default_policy()
    assert (policy.limits.l1_usd, policy.limits.l2_usd) == (Decimal(50), Decimal(2000))
    assert set(policy.customs.embargoed) == {"KP", "IR", "SY", "CU"}
    assert policy.tiers["cancel_order"] is Tier.L3
    assert policy.documents_for_hs("850760") == ("battery_declaration",)
    assert policy.ref.startswith("2026-11-22.1@")


@pytest.mark.parametrize(
    ("impact", "tier"),
    [("0", "L1"), ("50", "L1"), ("50.01", "L2"), ("2000", "L2"), ("2000.01", "L3")],
)
def test_money_tier(impact: str, tier: str) -> None:
    assert default_policy().money_tier(Decimal(impact)).value == tier


def test_a_change_changes_the_digest() -> None:
    assert (
        parse_policy(TEXT, "a").digest
        != parse_policy(TEXT.replace("l1_usd = 50", "l1_usd = 60"), "b").digest
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("l1_usd = 50", "l1_usd = -1"),
            r"p\.toml line 13: limits\.l1_usd: Input should be greater",
        ),
        (('hold_duplicate = "L1"', 'hold_duplicate = "L9"'), r"line \d+: tiers\.hold_duplicate"),
        (
            ('"address_autocorrect", "address_confirm', '"address_fix", "address_confirm'),
            "not a strategy",
        ),
        (("[limits]", "[limits"), "not valid TOML"),
        (('manual_review = "L2"\ncancel_order', "cancel_order"), "no tier for manual_review"),
    ],
)
def test_errors_name_the_file_line_and_field(edit: tuple[str, str], message: str) -> None:
    assert edit[0] in TEXT
    with pytest.raises(PolicyError, match=message):
        parse_policy(TEXT.replace(edit[0], edit[1], 1), "p.toml")


def _a(by: str, role: str = "approver", reason: str | None = None) -> Approval:
    return Approval(by=by, role=role, at=datetime.now(UTC), reason=reason)  # type: ignore[arg-type]


def test_approval_rules() -> None:
    policy = default_policy()
    assert approvals_missing(Tier.L1, [], policy) is None
    assert approvals_missing(Tier.L2, [_a("a")], policy)
    assert approvals_missing(Tier.L2, [_a("a"), _a("a")], policy)
    assert approvals_missing(Tier.L2, [_a("a"), _a("b", "supervisor")], policy) is None
    assert approvals_missing(Tier.L2, [_a("agent"), _a("b")], policy)
    assert (
        approvals_missing(Tier.L3, [_a("a"), _a("b")], policy)
        == "a supervisor's approval with a written reason"
    )
    assert approvals_missing(Tier.L3, [_a("s", "supervisor")], policy)
    assert approvals_missing(Tier.L3, [_a("s", "supervisor", "ok"), _a("b")], policy) is None


def test_money_is_written_as_numbers_and_read_back_exactly() -> None:
    order = Order.model_validate(example("EX-clean-001")["order"])
    data = order.as_json()
    assert data["lines"][0]["unit_price"] == 11.11
    assert data["payment"]["amount"] == 33.33
    assert Order.model_validate(data) == order
    assert order.lines[0].unit_price == Decimal("11.11")


def test_orders_need_offsets_and_positive_quantities() -> None:
    raw = example("EX-clean-001")["order"]
    with pytest.raises(ValueError, match="timezone"):
        Order.model_validate(dict(raw, created_at="2026-11-20T07:00:00"))
    with pytest.raises(ValueError, match="greater than 0"):
        Order.model_validate(dict(raw, lines=[dict(raw["lines"][0], qty=0)]))
    with pytest.raises(ValueError, match="ISO 3166"):
        Order.model_validate(dict(raw, ship_to=dict(raw["ship_to"], country_code="XX1")))
