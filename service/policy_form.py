"""The policy page's form: a policy's values as fields, a submitted form back into policy
text, the problems of that text next to the field they concern, and what changed.

The form edits the text of a version (TOML), not a model: ``apply_form`` writes into the
base version's text (tomlkit keeps its comments and layout) only the values that differ from
the base, so an unchanged form gives the same text and the same digest. The text is then
validated exactly as a policy file is (``domain.policy``: the same model, the same messages),
and each problem is put beside the field it names.

Field names are the policy's dotted paths: ``limits.l1_usd``, ``tiers.cancel_order``,
``customs.embargoed`` (one value per country), ``customs.required_by_hs.hs_prefix`` and
``.document`` (one per row, in step), ``ranking.stockout`` (the entries in their order),
``approvals.L2.roles``, ``deadlines.L3_hours`` ...
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import pycountry
import tomlkit
from pydantic import ValidationError
from tomlkit.items import AoT, Table

from domain.models import Kind, Strategy, Tier
from domain.policy import (
    ISO_3166_ALPHA2,
    VOTING_ROLES,
    Policy,
    PolicyError,
    contract_problems,
    parse_policy,
    problems_of,
)

FORM_SOURCE = "the policy form"
TIERS = tuple(t.value for t in Tier)
APPROVAL_TIERS = (Tier.L2.value, Tier.L3.value)
EXTRA_HS_ROWS = 2  # empty rows under the required documents, to add headings


class Form:
    """A submitted form: every value of each name, in order (as a browser sends them)."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            self._values.setdefault(name, []).append(value)

    def one(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[0].strip() if values else None

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self._values.get(name, [])]

    def has(self, name: str) -> bool:
        return name in self._values


@cache
def country_names() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code → English short name, for every code a policy accepts."""
    names = {}
    for code in sorted(ISO_3166_ALPHA2):
        country = pycountry.countries.get(alpha_2=code)
        names[code] = country.name if country is not None else {"XK": "Kosovo"}.get(code, code)
    return names


def countries_by_name() -> list[tuple[str, str]]:
    """(code, name) of every country, by name."""
    return sorted(country_names().items(), key=lambda item: item[1])


# --- the policy as the form's values -------------------------------------------------------


def _number(value: Decimal | float | int) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def fields_of(policy: Policy) -> dict[str, Any]:
    """What the form shows for ``policy``."""
    return {
        "version": policy.version,
        "limits": {
            "l1_usd": _number(policy.limits.l1_usd),
            "l2_usd": _number(policy.limits.l2_usd),
        },
        "tiers": {s.value: policy.tiers[s].value for s in Strategy},
        "tier_floors": {k: v.value for k, v in policy.tier_floors.items()},
        "embargoed": [(c, country_names().get(c, c)) for c in policy.customs.embargoed],
        "always_required": ", ".join(policy.customs.always_required),
        "generated": ", ".join(policy.customs.generated),
        "required_by_hs": [(r.hs_prefix, r.document) for r in policy.customs.required_by_hs]
        + [("", "")] * EXTRA_HS_ROWS,
        "ranking": {k.value: list(policy.ranking.order_for(k)) for k in Kind},
        "evidence": {
            "min_cases": str(policy.ranking.evidence.min_cases),
            "min_failure_gap": _number(policy.ranking.evidence.min_failure_gap),
        },
        "approvals": {
            t.value: {
                "approvals": str(policy.approvals[t].approvals),
                "roles": list(policy.approvals[t].roles),
                "supervisor_with_reason": policy.approvals[t].supervisor_with_reason,
                "distinct_adders": policy.approvals[t].distinct_adders,
            }
            for t in (Tier.L2, Tier.L3)
        },
        "deadlines": {
            "L2_hours": _number(policy.deadlines.L2_hours),
            "L3_hours": _number(policy.deadlines.L3_hours),
            "expire_after_hours": _number(policy.deadlines.expire_after_hours),
        },
        "window_minutes": str(policy.duplicates.window_minutes),
        "voucher_pct": _number(policy.delay.voucher_pct),
        "retryable_failures": ", ".join(policy.payment.retryable_failures),
    }


def fields_from_form(policy: Policy, form: Form) -> dict[str, Any]:
    """What the form shows after a submission: the submitted values as typed (a refused value
    stays in its field), the policy's where the form has none."""
    shown = fields_of(policy)

    def text(name: str, current: str) -> str:
        value = form.one(name)
        return current if value is None else value

    shown["version"] = text("version", shown["version"])
    for key in shown["limits"]:
        shown["limits"][key] = text(f"limits.{key}", shown["limits"][key])
    for key in shown["tiers"]:
        shown["tiers"][key] = text(f"tiers.{key}", shown["tiers"][key])
    for key in shown["tier_floors"]:
        shown["tier_floors"][key] = text(f"tier_floors.{key}", shown["tier_floors"][key])
    if form.has("customs.embargoed"):
        codes = _codes(form.all("customs.embargoed"))
        shown["embargoed"] = [(c, country_names().get(c.upper(), "")) for c in codes]
    for key in ("always_required", "generated"):
        shown[key] = text(f"customs.{key}", shown[key])
    if form.has("customs.required_by_hs.hs_prefix"):
        rows = _hs_rows(form)
        shown["required_by_hs"] = rows + [("", "")] * EXTRA_HS_ROWS
    for kind in shown["ranking"]:
        if form.has(f"ranking.{kind}"):
            shown["ranking"][kind] = form.all(f"ranking.{kind}")
    for key in shown["evidence"]:
        shown["evidence"][key] = text(f"ranking.evidence.{key}", shown["evidence"][key])
    for tier, rule in shown["approvals"].items():
        rule["approvals"] = text(f"approvals.{tier}.approvals", rule["approvals"])
        if form.has("version"):  # a submitted form: an unticked box sends nothing
            rule["roles"] = form.all(f"approvals.{tier}.roles")
            for flag in ("supervisor_with_reason", "distinct_adders"):
                rule[flag] = form.has(f"approvals.{tier}.{flag}")
    for key in shown["deadlines"]:
        shown["deadlines"][key] = text(f"deadlines.{key}", shown["deadlines"][key])
    shown["window_minutes"] = text("duplicates.window_minutes", shown["window_minutes"])
    shown["voucher_pct"] = text("delay.voucher_pct", shown["voucher_pct"])
    shown["retryable_failures"] = text("payment.retryable_failures", shown["retryable_failures"])
    return shown


def _codes(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _hs_rows(form: Form) -> list[tuple[str, str]]:
    prefixes = form.all("customs.required_by_hs.hs_prefix")
    documents = form.all("customs.required_by_hs.document")
    documents += [""] * (len(prefixes) - len(documents))
    return [(p, d) for p, d in zip(prefixes, documents, strict=False) if p or d]


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# --- the form back into policy text -------------------------------------------------------


def _form_number(value: str) -> int | float | str:
    """A number as TOML writes it; anything else as typed, for the policy's own validation
    to refuse, naming the field."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        return value
    if not number.is_finite():
        return value
    return int(number) if number == number.to_integral() else float(number)


def _form_int(value: str) -> int | str:
    number = _form_number(value)
    return number if isinstance(number, int) else value


def _table(doc: Any, *keys: str) -> Any:
    """The table at ``keys`` in ``doc``, made (empty) where missing."""
    node = doc
    for key in keys:
        if key not in node:
            node[key] = tomlkit.table()
        node = node[key]
    return node


def _set(doc: Any, keys: tuple[str, ...], value: Any) -> None:
    _table(doc, *keys[:-1])[keys[-1]] = value


def apply_form(base_text: str, base: Policy, form: Form) -> str:
    """The base version's text with the form's values written in where they differ from the
    base's. The result may be an invalid policy: ``check`` says where."""
    doc = tomlkit.parse(base_text)
    old = fields_of(base)

    def put(keys: tuple[str, ...], value: Any, current: Any) -> None:
        if value != current:
            _set(doc, keys, value)

    version = form.one("version")
    if version is not None:
        put(("version",), version, base.version)
    for key in ("l1_usd", "l2_usd"):
        value = form.one(f"limits.{key}")
        if value is not None and value != old["limits"][key]:
            _set(doc, ("limits", key), _form_number(value))
    for strategy in Strategy:
        value = form.one(f"tiers.{strategy.value}")
        if value is not None:
            put(("tiers", strategy.value), value, base.tiers[strategy].value)
    for key, floor in base.tier_floors.items():
        value = form.one(f"tier_floors.{key}")
        if value is not None:
            put(("tier_floors", key), value, floor.value)
    if form.has("customs.embargoed"):
        codes = _codes(form.all("customs.embargoed"))
        put(("customs", "embargoed"), codes, list(base.customs.embargoed))
    for key in ("always_required", "generated"):
        value = form.one(f"customs.{key}")
        if value is not None:
            put(("customs", key), _list(value), list(getattr(base.customs, key)))
    if form.has("customs.required_by_hs.hs_prefix"):
        rows = _hs_rows(form)
        current = [(r.hs_prefix, r.document) for r in base.customs.required_by_hs]
        if rows != current:
            tables = AoT([])
            for prefix, document in rows:
                table = tomlkit.table()
                table["hs_prefix"] = prefix
                table["document"] = document
                tables.append(table)
            customs: Table = _table(doc, "customs")
            if "required_by_hs" in customs:
                del customs["required_by_hs"]
            if rows:
                customs.append("required_by_hs", tables)
    for kind in Kind:
        if form.has(f"ranking.{kind.value}"):
            entries = form.all(f"ranking.{kind.value}")
            put(("ranking", kind.value), entries, list(base.ranking.order_for(kind)))
    for key in ("min_cases", "min_failure_gap"):
        value = form.one(f"ranking.evidence.{key}")
        if value is not None and value != old["evidence"][key]:
            number = _form_int(value) if key == "min_cases" else _form_number(value)
            _set(doc, ("ranking", "evidence", key), number)
    submitted = form.has("version")
    for tier in APPROVAL_TIERS:
        rule = old["approvals"][tier]
        value = form.one(f"approvals.{tier}.approvals")
        if value is not None and value != rule["approvals"]:
            _set(doc, ("approvals", tier, "approvals"), _form_int(value))
        if not submitted:
            continue
        roles = [r for r in form.all(f"approvals.{tier}.roles") if r]
        put(("approvals", tier, "roles"), roles, rule["roles"])
        for flag in ("supervisor_with_reason", "distinct_adders"):
            put(("approvals", tier, flag), form.has(f"approvals.{tier}.{flag}"), rule[flag])
    for key in ("L2_hours", "L3_hours", "expire_after_hours"):
        value = form.one(f"deadlines.{key}")
        if value is not None and value != old["deadlines"][key]:
            _set(doc, ("deadlines", key), _form_number(value))
    for name, keys, current in (
        ("duplicates.window_minutes", ("duplicates", "window_minutes"), old["window_minutes"]),
        ("delay.voucher_pct", ("delay", "voucher_pct"), old["voucher_pct"]),
    ):
        value = form.one(name)
        if value is not None and value != current:
            number = _form_int(value) if name.startswith("duplicates") else _form_number(value)
            _set(doc, keys, number)
    value = form.one("payment.retryable_failures")
    if value is not None:
        put(
            ("payment", "retryable_failures"),
            _list(value),
            list(base.payment.retryable_failures),
        )
    return tomlkit.dumps(doc)


def move(form: Form, how: str) -> Form:
    """The form with one ranking entry moved (``ranking.<kind>:<index>:up|down``): the
    buttons beside each entry, for keyboards and browsers without script."""
    try:
        name, index_text, way = how.rsplit(":", 2)
        index = int(index_text)
    except ValueError:
        return form
    entries = form.all(name)
    if not name.startswith("ranking.") or not 0 <= index < len(entries):
        return form
    other = index - 1 if way == "up" else index + 1
    if way not in ("up", "down") or not 0 <= other < len(entries):
        return form
    entries[index], entries[other] = entries[other], entries[index]
    items = [(n, v) for n, values in form._values.items() if n != name for v in values]
    return Form(items + [(name, e) for e in entries])


# --- checking the text ------------------------------------------------------------------


@dataclass
class Checked:
    """A candidate text: the policy, when it is one, and its problems by field."""

    text: str
    policy: Policy | None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, message)

    def for_field(self, name: str) -> list[str]:
        return [m for f, m in self.problems if f == name]


FORM_FIELDS = (
    "version",
    "limits",
    "limits.l1_usd",
    "limits.l2_usd",
    "tiers",
    *(f"tiers.{s.value}" for s in Strategy),
    "tier_floors",
    "customs",
    "customs.embargoed",
    "customs.always_required",
    "customs.generated",
    "customs.required_by_hs",
    "ranking",
    *(f"ranking.{k.value}" for k in Kind),
    "ranking.evidence.min_cases",
    "ranking.evidence.min_failure_gap",
    "approvals",
    *(f"approvals.{t}" for t in APPROVAL_TIERS),
    *(f"approvals.{t}.{k}" for t in APPROVAL_TIERS for k in ("approvals", "roles")),
    *(f"approvals.{t}.supervisor_with_reason" for t in APPROVAL_TIERS),
    "deadlines",
    *(f"deadlines.{k}" for k in ("L2_hours", "L3_hours", "expire_after_hours")),
    "duplicates.window_minutes",
    "delay.voucher_pct",
    "payment.retryable_failures",
)


def field_for(path: tuple[str | int, ...]) -> str:
    """The form field a problem at ``path`` belongs beside: the longest field name that
    leads the path (``customs.embargoed.2`` → ``customs.embargoed``), else the top."""
    parts = [str(p) for p in path]
    for size in range(len(parts), 0, -1):
        name = ".".join(parts[:size])
        if name in FORM_FIELDS or name.startswith("tier_floors."):
            return name
    return ""


def check(text: str) -> Checked:
    """``text`` validated as a policy file is imported (contract §4's floors included):
    every problem, named by its field."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Checked(text, None, [("", f"not valid TOML ({exc})")])
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    try:
        Policy.model_validate({**raw, "digest": digest})
    except ValidationError as exc:
        problems = []
        for path, message in problems_of(exc):
            name = ".".join(str(p) for p in path) or "(top level)"
            problems.append((field_for(path), f"{name}: {message}"))
        return Checked(text, None, problems)
    try:
        policy = parse_policy(text, FORM_SOURCE)
    except PolicyError as exc:  # (not expected: the same validation passed)
        return Checked(text, None, [("", str(exc))])
    floors = contract_problems(policy)  # contract §4: stricter, never weaker
    if floors:
        problems = [
            (field_for(path), f"{'.'.join(str(p) for p in path)}: {message}")
            for path, message in floors
        ]
        return Checked(text, None, problems)
    return Checked(text, policy, [])


# --- what changed -----------------------------------------------------------------------


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: data}


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name == "customs.embargoed" and isinstance(value, list):
        return ", ".join(f"{c} ({country_names().get(c, '?')})" for c in value) or "none"
    if name == "customs.required_by_hs" and isinstance(value, list):
        return "; ".join(f"{r['hs_prefix']}: {r['document']}" for r in value) or "none"
    if isinstance(value, list):
        return (
            " → ".join(str(v) for v in value)
            if name.startswith("ranking.")
            else ", ".join(str(v) for v in value) or "none"
        )
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def diff(before: Policy, after: Policy) -> list[tuple[str, str, str]]:
    """(field, before, after) of every value that differs, in the policy's order."""
    a = _flat(before.model_dump(mode="json", exclude={"digest"}))
    b = _flat(after.model_dump(mode="json", exclude={"digest"}))
    names = list(dict.fromkeys([*a, *b]))
    return [(n, _shown(n, a.get(n)), _shown(n, b.get(n))) for n in names if a.get(n) != b.get(n)]


__all__ = [
    "VOTING_ROLES",
    "Checked",
    "Form",
    "apply_form",
    "check",
    "countries_by_name",
    "country_names",
    "diff",
    "fields_from_form",
    "fields_of",
    "move",
]
