"""The policy: tiers, limits, embargoes, documents and ranking, as data staff can edit.

``parse_policy`` turns the text of a policy file into a ``Policy``; errors name the file,
the line where it can be found, the field and what to do. ``default_policy`` reads the
copy shipped inside the package.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.errors import InputError
from domain.models import Kind, Strategy, Tier

DEFAULT_POLICY_NAME = "policy.toml"


class PolicyError(InputError):
    """A policy file that cannot be used. The message says where and what to do."""


class _Refused(ValueError):
    """A value a validator refuses, with where it sits below the field being validated
    (an index, a tier), so that the error can name the exact field and its line."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


# ISO 3166-1 alpha-2: the officially assigned codes (249), plus XK, the user-assigned code in
# common use for Kosovo (Google's address data, which validates ship_to, knows it too).
_ISO_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    XK
"""
ISO_3166_ALPHA2 = frozenset(_ISO_CODES.split())

# Codes people write that ISO 3166-1 does not assign, and the code they mean.
_COMMON_MISTAKES = {"UK": "GB", "EL": "GR"}

# Contract §4: who must approve L2 and L3 at the least. A policy may ask for more, never less.
VOTING_ROLES = frozenset({"approver", "supervisor"})
CONTRACT_MIN_APPROVALS = 2
_STRICTER_ONLY = "a policy may make approvals stricter than the contract, never weaker"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(_Section):
    l1_usd: Decimal = Field(ge=0)
    l2_usd: Decimal = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.l2_usd < self.l1_usd:
            raise ValueError("l2_usd must be at least l1_usd")
        return self


class HsDocument(_Section):
    hs_prefix: str = Field(pattern=r"^\d{2,10}$")
    document: str = Field(min_length=1)


def _embargo_code(index: int, value: str) -> str:
    """``value`` as an upper-case ISO 3166-1 alpha-2 code, or ``_Refused`` saying what to write.

    A code that is not one would never equal an order's ``ship_to.country_code``, so it would
    switch the embargo off for that country without a word: refuse it instead.
    """
    code = value.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise _Refused(
            (index,),
            f"{value!r} is not an ISO 3166-1 alpha-2 country code; write the country's "
            'two-letter code, as in an order\'s ship_to.country_code (e.g. "KP", "IR", "SY", '
            '"CU")',
        )
    if code not in ISO_3166_ALPHA2:
        hint = (
            f"; did you mean {_COMMON_MISTAKES[code]!r}?"
            if code in _COMMON_MISTAKES
            else "; check the country's two-letter code"
        )
        raise _Refused((index,), f"{value!r} is not an assigned ISO 3166-1 alpha-2 code{hint}")
    return code


class CustomsPolicy(_Section):
    # ISO 3166-1 alpha-2 codes, upper case (written in any case in the file).
    embargoed: tuple[str, ...] = ()
    always_required: tuple[str, ...] = ("commercial_invoice",)
    generated: tuple[str, ...] = ("commercial_invoice", "packing_list")
    required_by_hs: tuple[HsDocument, ...] = ()

    @field_validator("embargoed")
    @classmethod
    def _iso_codes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        codes = [_embargo_code(i, v) for i, v in enumerate(values)]
        return tuple(dict.fromkeys(codes))


class DuplicatesPolicy(_Section):
    window_minutes: int = Field(default=30, gt=0)


class PaymentPolicy(_Section):
    retryable_failures: tuple[str, ...] = ("soft_decline", "processor_timeout")


class DelayPolicy(_Section):
    voucher_pct: Decimal = Field(default=Decimal(10), ge=0, le=100)


class Deadlines(_Section):
    """How long a proposal waits for people. Past its deadline supervisors are told
    (escalation); ``expire_after_hours`` later it expires and nothing runs. A deadline is never
    after the order's ``promised_by``."""

    L2_hours: float = Field(default=24, gt=0)
    L3_hours: float = Field(default=8, gt=0)
    expire_after_hours: float = Field(default=24, gt=0)

    def hours_for(self, tier: Tier) -> float:
        return self.L3_hours if tier is Tier.L3 else self.L2_hours


class EvidenceRule(_Section):
    min_cases: int = Field(default=5, ge=1)
    min_failure_gap: float = Field(default=0.30, gt=0, le=1)


class Ranking(_Section):
    model_config = ConfigDict(frozen=True, extra="forbid")
    bad_address: tuple[str, ...]
    customs_block: tuple[str, ...]
    stockout: tuple[str, ...]
    payment_failed: tuple[str, ...]
    carrier_delay: tuple[str, ...]
    duplicate_order: tuple[str, ...]
    # Contract §8.1 (a policy written before it gets this order)
    customer_request: tuple[str, ...] = (
        "address_confirm_with_customer",
        "hold_until_date",
        "cancel_order",
        "manual_review",
    )
    evidence: EvidenceRule = EvidenceRule()

    @model_validator(mode="after")
    def _known_strategies(self) -> Ranking:
        known = {s.value for s in Strategy}
        for kind in Kind:
            for entry in getattr(self, kind.value):
                if entry.split(":", 1)[0] not in known:
                    raise ValueError(
                        f"{kind.value}: {entry!r} is not a strategy; use one of {sorted(known)}"
                    )
        return self

    def order_for(self, kind: Kind) -> tuple[str, ...]:
        return tuple(getattr(self, kind.value))


class TierApproval(_Section):
    """Who must approve one tier. Checked against contract §4's minimum in ``Policy``
    (which knows the tier) and here (what holds for every tier)."""

    approvals: int = Field(strict=True)
    roles: tuple[str, ...] = ("approver", "supervisor")
    supervisor_with_reason: bool = Field(default=False, strict=True)
    # No two approvers of one plan given their role by the same person (`exdesk users list`
    # shows who added whom): one supervisor cannot mint both approvers of a plan. Off by
    # default; needs the desk's people (every vote with a token).
    distinct_adders: bool = Field(default=False, strict=True)

    @field_validator("approvals")
    @classmethod
    def _at_least_the_contract(cls, approvals: int) -> int:
        if approvals < CONTRACT_MIN_APPROVALS:
            raise ValueError(
                f"{approvals} is below the contract's minimum: L2 and L3 need approvals from "
                f"at least {CONTRACT_MIN_APPROVALS} different people (contract §4); "
                f"{_STRICTER_ONLY}: write {CONTRACT_MIN_APPROVALS} or more"
            )
        return approvals

    @field_validator("roles")
    @classmethod
    def _voting_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        if not roles:
            raise ValueError("no role may approve; list approver, supervisor or both (contract §4)")
        for i, role in enumerate(roles):
            if role not in VOTING_ROLES:
                raise _Refused(
                    (i,),
                    f"{role!r} cannot approve: only approver and supervisor may (contract §4); "
                    f"{_STRICTER_ONLY}: remove it",
                )
        return roles


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1)
    limits: Limits
    tiers: dict[Strategy, Tier]
    tier_floors: dict[str, Tier] = {}
    customs: CustomsPolicy = CustomsPolicy()
    duplicates: DuplicatesPolicy = DuplicatesPolicy()
    payment: PaymentPolicy = PaymentPolicy()
    delay: DelayPolicy = DelayPolicy()
    deadlines: Deadlines = Deadlines()
    ranking: Ranking
    approvals: dict[Tier, TierApproval]
    # Who may vote and as what; when empty, people state their role when they vote.
    people: dict[str, Literal["approver", "supervisor"]] = {}
    digest: str = ""

    @field_validator("approvals")
    @classmethod
    def _contract_minimum(cls, approvals: dict[Tier, TierApproval]) -> dict[Tier, TierApproval]:
        """Contract §4: L1 runs with no person; L3 needs a supervisor with a written reason."""
        if Tier.L1 in approvals:
            raise _Refused(
                (Tier.L1.value,),
                "L1 runs at once with no person (contract §4), so exdesk cannot ask for "
                "approvals there; remove [approvals.L1] and give the strategies that need "
                "people tier L2 or L3 under [tiers]",
            )
        l3 = approvals.get(Tier.L3)
        if l3 is not None and "supervisor" not in l3.roles:
            raise _Refused(
                (Tier.L3.value, "roles"),
                "L3 needs a supervisor's approval (contract §4), so supervisor must be among "
                f'the roles; {_STRICTER_ONLY}: write roles = ["approver", "supervisor"] or '
                '["supervisor"]',
            )
        if l3 is not None and not l3.supervisor_with_reason:
            raise _Refused(
                (Tier.L3.value, "supervisor_with_reason"),
                "L3 needs a supervisor who approves with a written reason (contract §4); "
                f"{_STRICTER_ONLY}: write supervisor_with_reason = true",
            )
        return approvals

    @field_validator("tiers", mode="before")
    @classmethod
    def _later_strategies(cls, tiers: Any) -> Any:
        """Strategies added after a policy was written take their contract tier (§8.1)."""
        if isinstance(tiers, dict):
            return {Strategy.HOLD_UNTIL_DATE.value: Tier.L1.value, **tiers}
        return tiers

    @model_validator(mode="after")
    def _complete(self) -> Policy:
        missing = [s.value for s in Strategy if s not in self.tiers]
        if missing:
            raise ValueError(f"tiers: no tier for {', '.join(missing)}; add a line for each")
        for tier in (Tier.L2, Tier.L3):
            if tier not in self.approvals:
                raise ValueError(f"approvals: no [approvals.{tier.value}] section; add one")
        return self

    @property
    def ref(self) -> str:
        """The version and content digest, as recorded in every decision."""
        return f"{self.version}@{self.digest[:12]}"

    def money_tier(self, impact_usd: Decimal) -> Tier:
        if impact_usd > self.limits.l2_usd:
            return Tier.L3
        if impact_usd > self.limits.l1_usd:
            return Tier.L2
        return Tier.L1

    def documents_for_hs(self, hs_code: str | None) -> tuple[str, ...]:
        if not hs_code:
            return ()
        return tuple(
            r.document for r in self.customs.required_by_hs if hs_code.startswith(r.hs_prefix)
        )


_KEY = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")


def _split_keys(dotted: str) -> tuple[str, ...]:
    return tuple(k.strip().strip("\"'") for k in re.findall(_KEY, dotted))


def _key_lines(text: str) -> list[tuple[tuple[str | int, ...], int]]:
    """(key path, line number) of every table header and ``key =`` line, in file order.

    An array of tables (``[[a.b]]``) gets its item index in the path, as pydantic's error
    locations have it. Lines inside multi-line values carry no ``=`` and are skipped.
    """
    out: list[tuple[tuple[str | int, ...], int]] = []
    table: tuple[str | int, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            keys = _split_keys(header.group(2))
            if header.group(1) == "[[":
                arrays[keys] = arrays.get(keys, -1) + 1
                out.append((keys, number))
                table = (*keys, arrays[keys])
            else:
                table = keys
            out.append((table, number))
            continue
        assign = _ASSIGN.match(line)
        if assign:
            out.append(((*table, *_split_keys(assign.group(1))), number))
    return out


def _find_line(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line that defines the longest leading part of ``loc`` (the field, else its
    table), or None when not even its first key is in the text."""
    best: tuple[int, int] | None = None  # (matched length, line)
    for path, number in _key_lines(text):
        if path and loc[: len(path)] == path and (best is None or len(path) > best[0]):
            best = (len(path), number)
    return best[1] if best else None


def problems_of(exc: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem a policy's validation found: (the field's path, what is wrong and what
    to do), the path down to the exact item a validator refused."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    for err in exc.errors():
        path: tuple[str | int, ...] = tuple(err["loc"])
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _Refused):
            path += cause.loc
        out.append((path, err["msg"].removeprefix("Value error, ")))
    return out


def parse_policy(text: str, source: str) -> Policy:
    """Parse policy text; ``source`` names the file in errors."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML ({exc}); fix the syntax there") from exc
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    try:
        return Policy.model_validate({**raw, "digest": digest})
    except ValidationError as exc:
        path, message = problems_of(exc)[0]
        loc = ".".join(str(p) for p in path) or "(top level)"
        line = _find_line(text, path) if path else None
        where = f"{source} line {line}" if line else source
        raise PolicyError(f"{where}: {loc}: {message}; correct it and reload") from exc


def default_policy() -> Policy:
    text = resources.files("domain").joinpath(DEFAULT_POLICY_NAME).read_text(encoding="utf-8")
    return parse_policy(text, DEFAULT_POLICY_NAME)


# --- contract §4's floors: a policy may be stricter, never weaker ---------------------------

CONTRACT_TIERS: dict[Strategy, Tier] = {
    Strategy.ADDRESS_AUTOCORRECT: Tier.L1,
    Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER: Tier.L1,
    Strategy.CUSTOMS_ATTACH_DOCUMENT: Tier.L1,
    Strategy.CUSTOMS_FIX_HS_CODE: Tier.L2,
    Strategy.REALLOCATE_WAREHOUSE: Tier.L1,
    Strategy.SPLIT_SHIPMENT: Tier.L1,
    Strategy.BACKORDER: Tier.L1,
    Strategy.SUBSTITUTE_ITEM: Tier.L2,
    Strategy.PAYMENT_RETRY: Tier.L1,
    Strategy.PAYMENT_REQUEST_NEW_METHOD: Tier.L1,
    Strategy.NOTIFY_DELAY: Tier.L1,
    Strategy.UPGRADE_SHIPPING: Tier.L2,
    Strategy.HOLD_DUPLICATE: Tier.L1,
    Strategy.MANUAL_REVIEW: Tier.L2,
    Strategy.CANCEL_ORDER: Tier.L3,
    Strategy.HOLD_UNTIL_DATE: Tier.L1,  # §8.1
}
# How a strategy runs that the contract tiers at least L2 (§4, §8.1).
CONTRACT_VARIANT_FLOORS: dict[str, Tier] = {
    "reallocate_warehouse:cross_border": Tier.L2,
    "split_shipment:cross_border": Tier.L2,
    "backorder:late": Tier.L2,
    "hold_until_date:late": Tier.L2,
}
CONTRACT_L1_USD = Decimal(50)
CONTRACT_L2_USD = Decimal(2000)
CONTRACT_EMBARGOED = ("KP", "IR", "SY", "CU")
CONTRACT_DOCUMENTS = ("commercial_invoice",)
CONTRACT_HS_DOCUMENTS = (("8507", "battery_declaration"),)
_WEAKER = "a policy may be stricter than contract §4, never weaker"


def contract_problems(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """Where ``policy`` is weaker than contract §4: (field, what is wrong and what to write)."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    if policy.limits.l1_usd > CONTRACT_L1_USD:
        out.append(
            (
                ("limits", "l1_usd"),
                f"{policy.limits.l1_usd} is above the contract's L1 limit of {CONTRACT_L1_USD} "
                f"USD; {_WEAKER}: write {CONTRACT_L1_USD} or less",
            )
        )
    if policy.limits.l2_usd > CONTRACT_L2_USD:
        out.append(
            (
                ("limits", "l2_usd"),
                f"{policy.limits.l2_usd} is above the contract's L2 limit of {CONTRACT_L2_USD} "
                f"USD; {_WEAKER}: write {CONTRACT_L2_USD} or less",
            )
        )
    for strategy, floor in CONTRACT_TIERS.items():
        tier = policy.tiers[strategy]
        if tier.level < floor.level:
            out.append(
                (
                    ("tiers", strategy.value),
                    f"{tier.value} is below the contract's tier for {strategy.value} "
                    f"({floor.value}); {_WEAKER}: write {floor.value} or higher",
                )
            )
    for key, floor in CONTRACT_VARIANT_FLOORS.items():
        base = policy.tiers[Strategy(key.split(":", 1)[0])]
        tier = Tier.at_least(base, policy.tier_floors.get(key, Tier.L1))
        if tier.level < floor.level:
            out.append(
                (
                    ("tier_floors", key),
                    f"{key} would be {tier.value}, below the contract's {floor.value}; "
                    f'{_WEAKER}: write "{key}" = "{floor.value}" under [tier_floors]',
                )
            )
    for code in CONTRACT_EMBARGOED:
        if code not in policy.customs.embargoed:
            out.append(
                (
                    ("customs", "embargoed"),
                    f"{code} is not embargoed; the contract embargoes "
                    f"{', '.join(CONTRACT_EMBARGOED)}; {_WEAKER}: add {code!r}",
                )
            )
    for doc in CONTRACT_DOCUMENTS:
        if doc not in policy.customs.always_required:
            out.append(
                (
                    ("customs", "always_required"),
                    f"{doc} is not required; every cross-border order needs it (contract §4); "
                    f"{_WEAKER}: add {doc!r}",
                )
            )
    for heading, doc in CONTRACT_HS_DOCUMENTS:
        rules = policy.customs.required_by_hs
        if not any(r.document == doc and heading.startswith(r.hs_prefix) for r in rules):
            out.append(
                (
                    ("customs", "required_by_hs"),
                    f"no rule requires {doc} for HS heading {heading} (contract §4); {_WEAKER}: "
                    f'add [[customs.required_by_hs]] hs_prefix = "{heading}" document = "{doc}"',
                )
            )
    return out


def check_contract(policy: Policy, text: str, source: str) -> None:
    """PolicyError naming the file, line and field where ``policy`` (parsed from ``text``) is
    weaker than the contract; nothing when it is not."""
    problems = contract_problems(policy)
    if not problems:
        return
    loc, message = problems[0]
    line = _find_line(text, loc)
    where = f"{source} line {line}" if line else source
    more = f" ({len(problems) - 1} more after it)" if len(problems) > 1 else ""
    name = ".".join(str(p) for p in loc)
    raise PolicyError(f"{where}: {name}: {message}{more}; correct it and import again")
