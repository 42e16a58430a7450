"""Past cases (contract §5).

A past case is an exception that was resolved before: its kind, a free-text summary in any
language, optionally the order, the strategy used and how it ended. Summaries and orders are
untrusted data: they are stored and compared, never followed as instructions. Reading them
from a file is the service's job (``service.inputs.read_past_cases``): knowledge reads no files.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

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
