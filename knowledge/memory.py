"""The case memory's interface: similar past cases, with how they ended."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from domain.models import Finding, Order

if TYPE_CHECKING:
    from knowledge.cases import PastCase

# {case_id, kind, strategy, success, score, summary, resolution_hours, cost_usd}: JSON values
SimilarCase = dict[str, Any]


class CaseMemory(Protocol):
    def search(self, finding: Finding, order: Order, *, limit: int = 10) -> list[SimilarCase]:
        """Past cases of the finding's kind, most similar first."""
        ...


class CaseStore(CaseMemory, Protocol):
    """The case memory as a whole: search (the agent), import and count (the CLI), close."""

    def import_cases(self, cases: Iterable[PastCase], *, batch_size: int = 256) -> int: ...

    def count(self) -> int: ...

    def close(self) -> None: ...
