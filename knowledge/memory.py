"""The case memory's interface: similar past cases, with how they ended."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from domain.models import Kind, Strategy

if TYPE_CHECKING:
    from knowledge.cases import Outcome, PastCase

# {case_id, kind, strategy, success, score, summary, resolution_hours, cost_usd, note,
# variant}: JSON values (note: what a later outcome said, or None; variant: the case's plan
# parameters, {} when it has none); a case found for a variant also has ``on``: the
# parameters it was matched on
SimilarCase = dict[str, Any]


class CaseMemory(Protocol):
    """What the agent needs: evidence for the strategies it may draft, and to learn outcomes."""

    def evidence(
        self,
        text: str,
        kind: Kind,
        strategies: Sequence[Strategy],
        *,
        per_strategy: int = 10,
        variants: Sequence[tuple[Strategy, Mapping[str, str]]] = (),
    ) -> list[SimilarCase]:
        """For each strategy, the past cases of ``kind`` that used it and whose situation is
        similar to ``text`` (above the memory's similarity floor), most similar first; and
        for each (strategy, parameters) in ``variants``, those of that strategy whose plan had
        those very parameters (``PastCase.variant``), each with ``on``: the parameters."""
        ...

    def learn(self, case: PastCase) -> bool:
        """Remember a case (the same case_id again updates it); False when this memory does
        not learn (an eval's: its results must not depend on the order of its cases)."""
        ...


class CaseStore(CaseMemory, Protocol):
    """The case memory as a whole: the agent's part, plus import, search, outcome updates and
    counting (the CLI), and close."""

    def search(
        self,
        text: str,
        *,
        kind: Kind | None = None,
        limit: int = 10,
        where: Mapping[str, Any] | None = None,
    ) -> list[SimilarCase]: ...

    def search_many(
        self, queries: Sequence[tuple[str, Kind | None]], *, limit: int = 10
    ) -> list[list[SimilarCase]]: ...

    def import_cases(self, cases: Iterable[PastCase], *, batch_size: int = 256) -> int: ...

    def cases(self, case_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The stored cases with these ids, in that order, as they stand now: {case_id, kind,
        strategy, success, summary, note, resolved_at}; unknown ids are left out."""
        ...

    def record_outcome(self, case_id: str, outcome: Outcome) -> bool: ...

    def count(self) -> int: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...
