"""Past cases (contract §5).

A past case is an exception that was resolved before: its kind, a free-text summary in any
language, optionally the order, the strategy used and how it ended. Summaries and orders are
untrusted data: they are stored and compared, never followed as instructions. Reading them
from a file is the service's job (``service.inputs.read_past_cases``): knowledge reads no files.
"""

from __future__ import annotations

import re

from pydantic import AwareDatetime, Field, field_validator

from domain.models import Frozen, Kind, Money, Order, Strategy
from knowledge.situation import Situation


class Outcome(Frozen):
    success: bool
    resolution_hours: float | None = Field(default=None, ge=0)
    cost_usd: Money | None = Field(default=None, ge=0)
    note: str | None = None


class PastCase(Frozen):
    case_id: str = Field(min_length=1)
    kind: Kind
    summary: str = Field(min_length=1)
    order: Order | None = None
    strategy: Strategy
    outcome: Outcome
    resolved_at: AwareDatetime
    # What the case was about, as codes (an addition to contract §5): cases exdesk learns and
    # generated histories carry it; the case memory indexes its fields for filtering.
    situation: Situation | None = None
    # The plan's own parameters, as codes (an addition too): where a reallocation shipped
    # from, which SKU a substitute was, which service a shipment moved to. Evidence for a
    # plan matches on them where cases carry them (``knowledge.memory.CaseMemory.evidence``).
    variant: dict[str, str] = Field(default_factory=dict)

    @field_validator("case_id")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("contains control characters; use printable text for a case_id")
        return value

    @field_validator("variant")
    @classmethod
    def _plain_variant(cls, value: dict[str, str]) -> dict[str, str]:
        for key, code in value.items():
            if not _CODE.fullmatch(key) or not _CODE.fullmatch(code):
                raise ValueError(
                    f"{key!r}: {code!r} is not a plain code (letters, digits, . _ - +; at most "
                    "80 characters); write the parameter as an identifier, e.g. "
                    '{"warehouse": "WH-SZX"}'
                )
        return value

    @field_validator("summary")
    @classmethod
    def _says_something(cls, value: str) -> str:
        if not re.search(r"\w", value):
            raise ValueError("says nothing (no letter or digit); write what happened")
        return value


_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,79}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
