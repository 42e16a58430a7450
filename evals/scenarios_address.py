"""bad_address facets: repairable breakages (autocorrect) and the rest (confirm)."""

from __future__ import annotations

from evals import scenarios_world as W
from evals.scenarios_checks import (
    ScenarioError,
    is_valid_address,
    postal_examples_all_digits,
    repair_outcomes,
    require_repair,
    require_unrepairable,
    require_valid,
    strip_postal,
)
from evals.scenarios_draft import JSON, Draft

AUTOCORRECT = {"address_autocorrect": "L1"}
CONFIRM = {"address_confirm_with_customer": "L1"}

POSTAL_PUNCT_COUNTRIES = ("CN", "US", "GB", "DE", "NL", "FR", "JP", "AU", "CA")
LETTER_COUNTRIES = ("CN", "DE", "FR", "AU")
FILL_AREA_COUNTRIES = ("US", "AU", "CA", "JP")
SWAP_COUNTRIES = ("CN", "US", "AU", "CA")
AMBIGUOUS_COUNTRIES = ("JP", "CA", "AU", "CN")


def _autocorrected(d: Draft, changed: dict[str, str]) -> None:
    require_repair(d.order["ship_to"], changed)
    for key, value in changed.items():
        d.set_after(("ship_to", key), value)
    d.expect("bad_address", dict(AUTOCORRECT), hold=False)


def _confirmed(d: Draft) -> None:
    d.expect("bad_address", dict(CONFIRM), hold=True)


def _first_breakage(d: Draft, candidates: list[str], fixed: str) -> str:
    """The first candidate postal code that is invalid and repairs exactly to `fixed`."""
    ship_to = d.order["ship_to"]
    d.rng.shuffle(candidates)
    for broken in candidates:
        trial = {**ship_to, "postal_code": broken}
        if not is_valid_address(trial) and repair_outcomes(trial) == [{"postal_code": fixed}]:
            return broken
    raise ScenarioError(f"no breakage of {ship_to['postal_code']} repairs to {fixed}")


def postal_punct(d: Draft) -> None:
    """Whitespace or punctuation inside the postal code (repair a)."""
    postal = d.order["ship_to"]["postal_code"]
    fixed = strip_postal(postal)
    if fixed != postal:
        seps = [c for c in postal if not c.isalnum()]
        candidates = [postal.replace(seps[0], s) for s in (" - ", "-", ".", "  ", "/", " ")]
    else:
        candidates = [fixed[:i] + s + fixed[i:] for i in range(2, len(fixed) - 1) for s in " -."]
    d.order["ship_to"]["postal_code"] = _first_breakage(d, candidates, fixed)
    _autocorrected(d, {"postal_code": fixed})


def postal_letters(d: Draft) -> None:
    """Letter O / I / l inside an all-digit postal code (repair b), sometimes with a space."""
    if not postal_examples_all_digits(d.dest):
        raise ScenarioError(f"{d.dest} postal codes are not all digits")
    postal = d.order["ship_to"]["postal_code"]
    swaps = {"0": ("O",), "1": ("I", "l")}
    candidates = []
    for i, ch in enumerate(postal):
        for letter in swaps.get(ch, ()):
            broken = postal[:i] + letter + postal[i + 1 :]
            candidates.append(broken)
            candidates.append(broken[:3] + " " + broken[3:])
    d.order["ship_to"]["postal_code"] = _first_breakage(d, candidates, postal)
    _autocorrected(d, {"postal_code": postal})


def fill_area(d: Draft) -> None:
    """country_area left out; the postal code matches exactly one subdivision (repair c)."""
    ship_to = d.order["ship_to"]
    key = ship_to.pop("country_area")
    if d.rng.random() < 0.3:
        ship_to["country_area"] = ""
    _autocorrected(d, {"country_area": key})


def swap_city_area(d: Draft) -> None:
    """city and country_area swapped (repair d); skips addresses where the swap validates."""
    ship_to = d.order["ship_to"]
    options = [dict(a) for a in W.VALID_ADDRESSES[d.dest]]
    d.rng.shuffle(options)
    for addr in options:
        city, area = addr["city"], addr["country_area"]
        trial = {"name": ship_to["name"], **addr, "city": area, "country_area": city}
        if not is_valid_address(trial) and repair_outcomes(trial) == [
            {"city": city, "country_area": area}
        ]:
            ship_to.clear()
            ship_to.update(trial)
            _autocorrected(d, {"city": city, "country_area": area})
            return
    raise ScenarioError(f"no swappable address in {d.dest}")


def carrier_exception(d: Draft) -> None:
    """A valid address the carrier could not deliver to."""
    require_valid(d.order["ship_to"])
    code = d.rng.choice(("address_undeliverable", "address_incomplete"))
    d.add_event("carrier_exception", {"code": code})
    _confirmed(d)


def _garbage_postals(postal: str) -> list[str]:
    digits = strip_postal(postal)
    return [digits[:-1], digits + "99", "XYZ", "00000000", digits[::-1] + "X", "N/A"]


def garbage(d: Draft) -> None:
    """A postal code no repair can save, or a required field left empty."""
    ship_to = d.order["ship_to"]
    variants: list[JSON] = [{"postal_code": p} for p in _garbage_postals(ship_to["postal_code"])]
    variants.append({"street_address": ""})
    if "city" in ship_to and d.dest != "JP":
        variants.append({"city": ""})
    d.rng.shuffle(variants)
    for change in variants:
        trial = {**ship_to, **change}
        if not is_valid_address(trial) and not repair_outcomes(trial):
            ship_to.update(change)
            require_unrepairable(ship_to)
            _confirmed(d)
            return
    raise ScenarioError("no unrepairable variant")


def ambiguous_area(d: Draft) -> None:
    """country_area missing and not recoverable: several or no subdivisions match."""
    ship_to = d.order["ship_to"]
    dest = d.dest
    if dest in W.AMBIGUOUS_AREA_ADDRESSES:
        name = ship_to["name"]
        ship_to.clear()
        ship_to.update({"name": name, **W.AMBIGUOUS_AREA_ADDRESSES[dest]})
        require_valid(ship_to)
    ship_to.pop("country_area")
    require_unrepairable(ship_to)
    _confirmed(d)
