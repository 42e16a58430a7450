"""The case memory's interface: similar past cases, with how they ended."""

from __future__ import annotations

from typing import Any, Protocol

from domain.models import Finding, Order

# {case_id, kind, strategy, success, score, summary, resolution_hours, cost_usd}: JSON values
SimilarCase = dict[str, Any]


class CaseMemory(Protocol):
    def search(self, finding: Finding, order: Order, *, limit: int = 10) -> list[SimilarCase]:
        """Past cases of the finding's kind, most similar first."""
        ...
