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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.errors import InputError
from domain.models import Kind, Strategy, Tier

DEFAULT_POLICY_NAME = "policy.toml"


class PolicyError(InputError):
    """A policy file that cannot be used. The message says where and what to do."""


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


class CustomsPolicy(_Section):
    embargoed: tuple[str, ...] = ()
    always_required: tuple[str, ...] = ("commercial_invoice",)
    generated: tuple[str, ...] = ("commercial_invoice", "packing_list")
    required_by_hs: tuple[HsDocument, ...] = ()


class DuplicatesPolicy(_Section):
    window_minutes: int = Field(default=30, gt=0)


class PaymentPolicy(_Section):
    retryable_failures: tuple[str, ...] = ("soft_decline", "processor_timeout")


class DelayPolicy(_Section):
    voucher_pct: Decimal = Field(default=Decimal(10), ge=0, le=100)


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
    approvals: int = Field(ge=1)
    roles: tuple[str, ...] = ("approver", "supervisor")
    supervisor_with_reason: bool = False


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
    ranking: Ranking
    approvals: dict[Tier, TierApproval]
    # Who may vote and as what; when empty, people state their role when they vote.
    people: dict[str, Literal["approver", "supervisor"]] = {}
    digest: str = ""

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


def _find_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(\[+\s*)?[\w.\"]*\b{re.escape(key)}\b")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


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
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        keys = [str(p) for p in err["loc"] if not isinstance(p, int)]
        line = _find_line(text, keys[-1]) if keys else None
        where = f"{source} line {line}" if line else source
        raise PolicyError(f"{where}: {loc}: {err['msg']}; correct it and reload") from exc


def default_policy() -> Policy:
    text = resources.files("domain").joinpath(DEFAULT_POLICY_NAME).read_text(encoding="utf-8")
    return parse_policy(text, DEFAULT_POLICY_NAME)
