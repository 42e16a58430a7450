"""The case memory in Qdrant: import past cases, search the similar ones, learn outcomes.

Embedded local Qdrant (``QdrantClient(path=...)``) is the default; a server by URL at scale.
Cases are partitioned by kind, one collection each. Embedded Qdrant locks its folder: open it
once per process (``open_memory``) and share the ``QdrantCaseMemory``; it serialises its own
calls, so threads may share it.

What gets embedded is the agent's own text only: a finding's kind, summary and evidence, and a
past case's kind and summary. Order text (notes, address lines) is untrusted and never
embedded or returned. Retrieved summaries are data for people and ranking, not instructions.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException

from domain.models import Finding, Kind, Order
from knowledge.cases import PastCase
from knowledge.embedder import Embedder
from knowledge.errors import CaseMemoryUnavailable
from knowledge.memory import SimilarCase

DEFAULT_COLLECTION = "exdesk_cases"
SUMMARY_LIMIT = 500  # characters of a past case's summary returned by a search
_CASE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://exdesk/past-case")
_T = TypeVar("_T")


def point_id(case_id: str) -> str:
    """The Qdrant point id of a case: a UUID derived from its case_id, the same every time."""
    return str(uuid.uuid5(_CASE_NAMESPACE, case_id))


def _kind_words(kind: Kind) -> str:
    return kind.value.replace("_", " ")


def case_text(case: PastCase) -> str:
    """What is embedded for a past case: its kind and summary (never its order)."""
    return f"{_kind_words(case.kind)}: {case.summary}"


def query_text(finding: Finding) -> str:
    """What is embedded for a search: the finding's kind, summary and evidence."""
    lines = [f"{_kind_words(finding.kind)}: {finding.summary}", *finding.evidence]
    return "\n".join(lines)


def _payload(case: PastCase) -> dict[str, Any]:
    outcome = case.outcome.model_dump(mode="json")
    return {
        "case_id": case.case_id,
        "kind": case.kind.value,
        "strategy": case.strategy.value,
        "success": case.outcome.success,
        "summary": case.summary,
        "resolution_hours": outcome.get("resolution_hours"),
        "cost_usd": outcome.get("cost_usd"),
        "note": case.outcome.note,
        "order_id": case.order.order_id if case.order else None,
        "resolved_at": case.resolved_at.isoformat(),
    }


def _similar(point: models.ScoredPoint) -> SimilarCase:
    payload = point.payload or {}
    summary = str(payload.get("summary", ""))
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    return {
        "case_id": payload["case_id"],
        "kind": payload["kind"],
        "strategy": payload["strategy"],
        "success": bool(payload["success"]),
        "score": round(float(point.score), 4),
        "summary": summary,
        "resolution_hours": payload.get("resolution_hours"),
        "cost_usd": payload.get("cost_usd"),
    }


class QdrantCaseMemory:
    """``CaseMemory`` over Qdrant: one collection per kind, one point per case, cosine.

    The cases of kind ``k`` live in the collection ``{collection}_{k}``: a search reads only
    its kind's collection. That is the kind filter: embedded Qdrant checks a payload filter
    point by point in Python (about 45 µs a point), a partition costs nothing.
    """

    def __init__(
        self, client: QdrantClient, embedder: Embedder, *, collection: str = DEFAULT_COLLECTION
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.collection = collection
        self._lock = threading.RLock()
        self._kinds_present: set[Kind] = set()  # kinds known to have at least one case
        self._sizes: dict[str, int] = {}  # collection → vector size, once known

    def collection_for(self, kind: Kind) -> str:
        return f"{self.collection}_{kind.value}"

    # --- reading ---------------------------------------------------------------------------

    def search(self, finding: Finding, order: Order, *, limit: int = 10) -> list[SimilarCase]:
        """Past cases of the finding's kind, most similar first.

        ``order`` is not used: its text is untrusted and stays out of the query. With no case
        of this kind stored, returns ``[]`` without touching the embedder.
        """
        if limit <= 0 or not self._has_kind(finding.kind):
            return []
        name = self.collection_for(finding.kind)
        vector = self.embedder.embed([query_text(finding)])[0]
        with self._lock:
            self._check_size(name, len(vector))
            response = self._call(
                lambda: self.client.query_points(name, query=vector, limit=limit, with_payload=True)
            )
        return [_similar(point) for point in response.points]

    def count(self) -> int:
        """How many past cases are stored, of every kind."""
        with self._lock:
            return sum(self._count(self.collection_for(kind)) for kind in Kind)

    # --- writing ---------------------------------------------------------------------------

    def import_cases(self, cases: Iterable[PastCase], *, batch_size: int = 256) -> int:
        """Upsert cases; how many, counting each case_id once (the last one given wins).

        Importing the same cases again changes nothing: a case's point id comes from its
        case_id. Embeds ``batch_size`` summaries at a time.
        """
        unique = {case.case_id: case for case in cases}
        given = list(unique.values())
        for start in range(0, len(given), batch_size):
            self._upsert(given[start : start + batch_size])
        return len(given)

    def learn(self, case: PastCase) -> None:
        """Remember one resolved case, so later searches can cite it."""
        self._upsert([case])

    def reset(self) -> None:
        """Delete every stored case, e.g. before importing them again with another model."""
        with self._lock:
            for kind in Kind:
                name = self.collection_for(kind)
                if self._exists(name):
                    self._call(partial(self.client.delete_collection, name))
            self._kinds_present.clear()
            self._sizes.clear()

    def close(self) -> None:
        """Close the client (embedded Qdrant releases its folder lock)."""
        with self._lock:
            self.client.close()

    # --- internals -------------------------------------------------------------------------

    def _upsert(self, cases: Sequence[PastCase]) -> None:
        if not cases:
            return
        vectors = self.embedder.embed([case_text(case) for case in cases])
        by_kind: dict[Kind, list[models.PointStruct]] = {}
        for case, vector in zip(cases, vectors, strict=True):
            point = models.PointStruct(
                id=point_id(case.case_id), vector=vector, payload=_payload(case)
            )
            by_kind.setdefault(case.kind, []).append(point)
        with self._lock:
            for kind, points in by_kind.items():
                name = self.collection_for(kind)
                self._ensure_collection(name, len(vectors[0]))
                self._call(partial(self.client.upsert, name, points=points))
                self._kinds_present.add(kind)
            self._drop_from_other_kinds(by_kind)

    def _drop_from_other_kinds(self, by_kind: dict[Kind, list[models.PointStruct]]) -> None:
        """A case_id imported again under another kind leaves its old kind's collection."""
        for kind in Kind:
            moved = [p.id for k, points in by_kind.items() if k is not kind for p in points]
            name = self.collection_for(kind)
            if moved and self._exists(name):
                selector = models.PointIdsList(points=moved)
                self._call(partial(self.client.delete, name, points_selector=selector))

    def _has_kind(self, kind: Kind) -> bool:
        with self._lock:
            if kind not in self._kinds_present and self._count(self.collection_for(kind)) > 0:
                self._kinds_present.add(kind)
            return kind in self._kinds_present

    def _count(self, name: str) -> int:
        if not self._exists(name):
            return 0
        return self._call(lambda: self.client.count(name, exact=True)).count

    def _exists(self, name: str) -> bool:
        return self._call(lambda: self.client.collection_exists(name))

    def _ensure_collection(self, name: str, size: int) -> None:
        if not self._exists(name):
            self._call(
                lambda: self.client.create_collection(
                    name,
                    vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE),
                )
            )
            self._sizes[name] = size
        self._check_size(name, size)

    def _check_size(self, name: str, size: int) -> None:
        if name not in self._sizes:
            vectors = self._call(lambda: self.client.get_collection(name)).config.params.vectors
            if not isinstance(vectors, models.VectorParams):
                raise CaseMemoryUnavailable(
                    f"Qdrant collection {name!r} was not made by exdesk (it has named vectors); "
                    "set another collection name, or delete it and import the cases again"
                )
            self._sizes[name] = vectors.size
        if size != self._sizes[name]:
            raise CaseMemoryUnavailable(
                f"the case memory {name!r} holds {self._sizes[name]}-dimensional vectors but "
                f"the embedder makes {size}-dimensional ones: the cases were imported with "
                "another EXDESK_EMBEDDING_MODEL. Set it back to that model, or reset the memory "
                "and import the cases again"
            )

    def _call(self, operation: Callable[[], _T]) -> _T:
        """Run one Qdrant call, translating its failures into ``CaseMemoryUnavailable``."""
        try:
            return operation()
        except ApiException as exc:
            raise CaseMemoryUnavailable(
                f"Qdrant did not answer for the case memory {self.collection!r} ({exc}); check "
                "EXDESK_QDRANT_URL and that the server is running"
            ) from exc
        except ValueError as exc:  # embedded Qdrant reports bad requests as ValueError
            raise CaseMemoryUnavailable(
                f"Qdrant refused a request on the case memory {self.collection!r} ({exc})"
            ) from exc


def open_client(*, path: Path | None, url: str | None) -> QdrantClient:
    """A Qdrant client: a server when ``url`` is set, else embedded at ``path``, else in memory.

    Embedded Qdrant locks ``path``: a second client on it (in this process or another) fails.
    """
    if url:
        return QdrantClient(url=url)
    if path is None:
        return QdrantClient(location=":memory:")
    try:
        path.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(path), force_disable_check_same_thread=True)
    except RuntimeError as exc:
        raise CaseMemoryUnavailable(
            f"the case memory at {path} is already open (embedded Qdrant allows one client per "
            "folder): stop the other exdesk process using it, or run a Qdrant server and set "
            "EXDESK_QDRANT_URL so that several processes can share it"
        ) from exc
    except OSError as exc:
        raise CaseMemoryUnavailable(
            f"the case memory at {path} cannot be opened ({exc.strerror}); check the folder "
            "(EXDESK_DATA_DIR) and its permissions"
        ) from exc


def open_memory(
    *,
    path: Path | None,
    url: str | None,
    embedder: Embedder,
    collection: str = DEFAULT_COLLECTION,
) -> QdrantCaseMemory:
    """The case memory for these settings. Call it once per process and share the result."""
    return QdrantCaseMemory(open_client(path=path, url=url), embedder, collection=collection)


class SharedFolderMemory:
    """Embedded Qdrant in a folder that several processes share.

    Embedded Qdrant lets one client at a time open a folder. Here every search, import or count
    opens it under a lock file beside the folder and closes it at once, so no process is locked
    out: one that finds the folder busy waits, at most ``timeout`` seconds, then gets
    ``CaseMemoryUnavailable``. A memory that holds no case is searched without opening it.
    """

    def __init__(
        self,
        path: Path,
        embedder: Embedder,
        *,
        collection: str = DEFAULT_COLLECTION,
        timeout: float = 30.0,
    ) -> None:
        self.path = path
        self.embedder = embedder
        self.collection = collection
        self.timeout = timeout
        self._lock = FileLock(str(path.with_name(path.name + ".lock")), timeout=timeout)

    def _open(self) -> _OpenMemory:
        return _OpenMemory(self)

    def _has_cases(self) -> bool:
        return (self.path / "collection").is_dir() and any((self.path / "collection").iterdir())

    def search(self, finding: Finding, order: Order, *, limit: int = 10) -> list[SimilarCase]:
        if not self._has_cases():
            return []
        with self._open() as memory:
            return memory.search(finding, order, limit=limit)

    def import_cases(self, cases: Iterable[PastCase], *, batch_size: int = 256) -> int:
        with self._open() as memory:
            return memory.import_cases(cases, batch_size=batch_size)

    def learn(self, case: PastCase) -> None:
        with self._open() as memory:
            memory.learn(case)

    def count(self) -> int:
        if not self._has_cases():
            return 0
        with self._open() as memory:
            return memory.count()

    def close(self) -> None:
        """Nothing stays open between calls."""


class _OpenMemory:
    """The shared folder, locked and opened for one operation."""

    def __init__(self, shared: SharedFolderMemory) -> None:
        self._shared = shared
        self._memory: QdrantCaseMemory | None = None

    def __enter__(self) -> QdrantCaseMemory:
        shared = self._shared
        try:
            shared._lock.acquire()
        except Timeout as exc:
            raise CaseMemoryUnavailable(
                f"the case memory at {shared.path} was busy for {shared.timeout:.0f} s (other "
                "exdesk processes were using it); try again, or run a Qdrant server and set "
                "EXDESK_QDRANT_URL"
            ) from exc
        try:
            client = open_client(path=shared.path, url=None)
        except BaseException:
            shared._lock.release()
            raise
        self._memory = QdrantCaseMemory(client, shared.embedder, collection=shared.collection)
        return self._memory

    def __exit__(self, *exc: object) -> None:
        try:
            if self._memory is not None:
                self._memory.close()
        finally:
            self._shared._lock.release()
