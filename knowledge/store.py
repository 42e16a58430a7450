"""The case memory in Qdrant: import past cases, search the similar ones, learn outcomes.

Embedded by default: Qdrant's engine in-process (``qdrant-edge-py``) in ``DATA_DIR/cases``,
which several exdesk processes share (``knowledge.shared.SharedFolderMemory``); a Qdrant
server or cluster when ``EXDESK_QDRANT_URL`` is set (``open_memory``). One point per case,
all kinds together, filtered by payload (kind, strategy, ...; ``engines.INDEXED``).

What gets embedded is a past case's summary, and for a search the text the caller gives (the
agent: the situation of a finding, ``knowledge.situation``). Summaries are untrusted text:
they are stored, compared and shown, never followed. A summary full of instructions gets a
similarity score like any other text, and that is all it can change.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from domain.models import Kind, Strategy
from knowledge import codes
from knowledge.cases import Outcome, PastCase
from knowledge.embedder import Embedder, Remembered
from knowledge.engines import EdgeEngine, Engine, Hit, ServerEngine
from knowledge.errors import CaseMemoryUnavailable
from knowledge.memory import SimilarCase

DEFAULT_COLLECTION = "exdesk_cases"
SUMMARY_LIMIT = 500  # characters of a past case's summary returned by a search
STORED_SUMMARY_LIMIT = 4000  # characters of a summary kept (and embedded)
_CASE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://exdesk/past-case")
# Similarity floors per embedder (cosine): below it a past case is not "similar". Measured
# for the default (docs/case-memory.md) with the agent's situation texts as queries: the same
# situation written as a case (in either language) scores above 0.50 in 95% of cases, and
# people's own summaries of it 0.30-0.50; a random case of the same kind scores below 0.36 in
# 90% of cases (median 0.14).
FLOORS = {"use-m3:centered": 0.35, "e5-small:centered": 0.35, "hash": 0.3}
DEFAULT_FLOOR = 0.5
# How a search orders what the embedding found: "dense" (by similarity alone), "codes"
# (reciprocal-rank fusion of the similarity's rank and of the language-neutral codes the
# texts share, knowledge.codes) or "lang+codes" (the same with the similarity ranked within
# each language); ":K" sets the fusion's k. Measured in docs/case-memory.md.
RERANKS = ("dense", "codes", "lang+codes")
DEFAULT_RERANK = "lang+codes"


def check_rerank(rerank: str) -> str:
    name, _, k = rerank.partition(":")
    if name not in RERANKS or (k and not (k.isdigit() and int(k) > 0)):
        raise ValueError(
            f"EXDESK_RERANK {rerank!r} is not one of {', '.join(RERANKS)} (or NAME:K with K a "
            "positive whole number)"
        )
    return rerank


def default_floor(embedder_name: str) -> float:
    base = embedder_name.split("@", 1)[0]
    if base.startswith("hash-"):
        base = "hash"
    return FLOORS.get(base, DEFAULT_FLOOR)


def point_id(case_id: str) -> str:
    """The Qdrant point id of a case: a UUID derived from its case_id, the same every time."""
    return str(uuid.uuid5(_CASE_NAMESPACE, case_id))


def case_text(case: PastCase) -> str:
    """What is embedded for a past case: its summary (never its order)."""
    return case.summary[:STORED_SUMMARY_LIMIT]


def payload_of(case: PastCase) -> dict[str, Any]:
    outcome = case.outcome.model_dump(mode="json")
    payload: dict[str, Any] = {
        "case_id": case.case_id,
        "kind": case.kind.value,
        "strategy": case.strategy.value,
        "success": case.outcome.success,
        "summary": case.summary[:STORED_SUMMARY_LIMIT],
        "resolution_hours": outcome.get("resolution_hours"),
        "cost_usd": outcome.get("cost_usd"),
        "note": case.outcome.note,
        "order_id": case.order.order_id if case.order else None,
        "resolved_at": case.resolved_at.isoformat(),
    }
    if case.situation is not None:
        payload.update(case.situation.payload())
    if case.variant:
        payload["variant"] = dict(case.variant)
    return payload


def similar_of(hit: Hit) -> SimilarCase:
    payload = hit.payload or {}
    found = _case_of(payload)
    return {
        **{k: found[k] for k in ("case_id", "kind", "strategy", "success")},
        "score": round(float(hit.score), 4),
        "summary": found["summary"],
        "resolution_hours": payload.get("resolution_hours"),
        "cost_usd": payload.get("cost_usd"),
        "note": found["note"],
        "variant": dict(payload.get("variant") or {}),
    }


def _case_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    summary = str(payload.get("summary", ""))
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    return {
        "case_id": payload["case_id"],
        "kind": payload["kind"],
        "strategy": payload["strategy"],
        "success": bool(payload["success"]),
        "summary": summary,
        "note": payload.get("note"),
        "resolved_at": payload.get("resolved_at"),
    }


def _setting_of(meta: Mapping[str, Any]) -> str:
    """The EXDESK_EMBEDDING_MODEL value that gives a stored embedder name, as near as known."""
    name = str(meta.get("embedder", ""))
    if name.startswith("use-m3:centered@"):
        return "multilingual, the default"
    if name.startswith("hash-"):
        return "hash"
    return name.split("@", 1)[0]


def _unique(cases: Iterable[PastCase]) -> list[PastCase]:
    return list({case.case_id: case for case in cases}.values())


def outcome_fields(outcome: Outcome) -> dict[str, Any]:
    """The payload fields a later outcome changes."""
    data = outcome.model_dump(mode="json")
    return {
        "success": outcome.success,
        "resolution_hours": data.get("resolution_hours"),
        "cost_usd": data.get("cost_usd"),
        "note": outcome.note,
    }


class Operations(Protocol):
    """What the memory does once vectors are made: on an engine in this process
    (``EngineOperations``), or in the process that holds the shared folder open
    (``knowledge.shared``). Every argument and result is plain data."""

    def upsert(
        self, ids: Sequence[str], vectors: NDArray[np.float32], payloads: Sequence[dict[str, Any]]
    ) -> None: ...

    def query(
        self,
        vector: NDArray[np.float32],
        filters: Sequence[Mapping[str, Any]],
        limit: int,
        floor: float | None,
    ) -> list[list[SimilarCase]]: ...

    def cases(self, case_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def record_outcome(self, case_id: str, fields: dict[str, Any]) -> bool: ...

    def count(self) -> int: ...


class EngineOperations:
    """The memory's operations on an open engine, for cases embedded with ``embedder_name``."""

    def __init__(self, engine: Engine, embedder_name: str, where: str) -> None:
        self.engine = engine
        self.embedder_name = embedder_name
        self.where = where

    def ready(self, *, dim: int | None = None) -> bool:
        """Whether the store holds cases made with this embedder; create it for a write
        (``dim`` given); refuse one made with another embedder."""
        meta = self.engine.meta()
        if meta is None:
            if dim is None:
                return False
            self.engine.create({"embedder": self.embedder_name, "dim": dim, "format": 1})
            return True
        if meta.get("embedder") != self.embedder_name or (dim and meta.get("dim") != dim):
            raise CaseMemoryUnavailable(
                f"the case memory {self.where} holds cases embedded with "
                f"{meta.get('embedder')!r} ({meta.get('dim')}-dimensional) but "
                f"EXDESK_EMBEDDING_MODEL gives {self.embedder_name!r}: the cases were imported "
                f"with another model. Set EXDESK_EMBEDDING_MODEL back to it ({_setting_of(meta)}), "
                "or forget the cases (exdesk knowledge reset --yes) and import them again"
            )
        return True

    def upsert(
        self, ids: Sequence[str], vectors: NDArray[np.float32], payloads: Sequence[dict[str, Any]]
    ) -> None:
        if not ids:
            return
        self.ready(dim=int(vectors.shape[1]))
        self.engine.upsert(ids, vectors, payloads)

    def query(
        self,
        vector: NDArray[np.float32],
        filters: Sequence[Mapping[str, Any]],
        limit: int,
        floor: float | None,
    ) -> list[list[SimilarCase]]:
        if not self.ready():
            return [[] for _ in filters]
        found = self.engine.query(vector, filters, limit, floor)
        return [[similar_of(hit) for hit in hits] for hits in found]

    def cases(self, case_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The stored cases with these ids (how each ended, as it stands now), in that order;
        ids the memory does not hold are left out."""
        if not case_ids or not self.ready():
            return []
        found = {p.get("case_id"): p for p in self.engine.payloads([point_id(c) for c in case_ids])}
        return [_case_of(found[c]) for c in case_ids if c in found]

    def record_outcome(self, case_id: str, fields: dict[str, Any]) -> bool:
        if not self.ready() or not self.engine.payloads([point_id(case_id)]):
            return False
        self.engine.set_payload(point_id(case_id), fields)
        return True

    def count(self) -> int:
        return self.engine.count() if self.ready() else 0


def points_of(cases: Sequence[PastCase]) -> tuple[list[str], list[dict[str, Any]]]:
    """The point ids and payloads of cases, in order."""
    return [point_id(c.case_id) for c in cases], [payload_of(c) for c in cases]


def _filters(kind: Kind | None, where: Mapping[str, Any] | None) -> dict[str, Any]:
    found = dict(where or {})
    if kind is not None:
        found["kind"] = kind.value
    return found


class MemoryBase:
    """Searching and reading, the same on every engine: each kind of memory says how it gets
    an open engine (``_session``) and whether it surely holds nothing (``_empty``, checked
    before anything is embedded or opened)."""

    embedder: Embedder
    floor: float
    rerank: str = DEFAULT_RERANK

    def _pool(self, limit: int) -> int:
        return limit if self.rerank == "dense" else max(codes.POOL, 5 * limit)

    def _reranked(self, text: str, found: list[SimilarCase], limit: int) -> list[SimilarCase]:
        if self.rerank == "dense":
            return found[:limit]
        name, _, k = self.rerank.partition(":")
        return codes.fuse(
            text, found, limit, k=int(k) if k else codes.RRF_K, by_language=name == "lang+codes"
        )

    def _session(self) -> AbstractContextManager[Operations]:
        raise NotImplementedError

    def _empty(self) -> bool:
        raise NotImplementedError

    def warm(self, queries: Sequence[str], summaries: Sequence[str] = ()) -> None:
        """Embed, at once, the texts the next searches will be made with (``queries``) and the
        summaries of cases likely to be learned next, where the embedder keeps what it made
        (``Remembered``): one model call each for a batch instead of one per search and per
        case. Searches are warmed only when the memory holds something (else none embeds)."""
        if not isinstance(self.embedder, Remembered):
            return
        if queries and not self._empty():
            self.embedder.embed(list(dict.fromkeys(queries)), query=True)
        texts = [s[:STORED_SUMMARY_LIMIT] for s in summaries]  # as ``case_text`` embeds them
        if texts:
            self.embedder.embed(list(dict.fromkeys(texts)))

    def search(
        self,
        text: str,
        *,
        kind: Kind | None = None,
        limit: int = 10,
        where: Mapping[str, Any] | None = None,
    ) -> list[SimilarCase]:
        if limit <= 0 or self._empty():
            return []
        vector = self.embedder.embed([text], query=True)[0]
        with self._session() as ops:
            found = ops.query(vector, [_filters(kind, where)], self._pool(limit), None)[0]
        return self._reranked(text, found, limit)

    def search_many(
        self, queries: Sequence[tuple[str, Kind | None]], *, limit: int = 10
    ) -> list[list[SimilarCase]]:
        """Several searches, embedded together, on one opening (``knowledge search
        --queries``)."""
        if not queries or limit <= 0 or self._empty():
            return [[] for _ in queries]
        vectors = self.embedder.embed([text for text, _ in queries], query=True)
        pool = self._pool(limit)
        with self._session() as ops:
            found = [
                ops.query(vector, [_filters(kind, None)], pool, None)[0]
                for vector, (_, kind) in zip(vectors, queries, strict=True)
            ]
        return [
            self._reranked(text, hits, limit)
            for (text, _), hits in zip(queries, found, strict=True)
        ]

    def evidence(
        self,
        text: str,
        kind: Kind,
        strategies: Sequence[Strategy],
        *,
        per_strategy: int = 10,
        variants: Sequence[tuple[Strategy, Mapping[str, str]]] = (),
    ) -> list[SimilarCase]:
        if not strategies or per_strategy <= 0 or self._empty():
            return []
        vector = self.embedder.embed([text], query=True)[0]
        filters = [_filters(kind, {"strategy": s.value}) for s in dict.fromkeys(strategies)]
        asked = _variant_queries(variants)
        for strategy, params in asked:
            where = {f"variant.{k}": v for k, v in params.items()}
            filters.append(_filters(kind, {"strategy": strategy.value, **where}))
        with self._session() as ops:
            found = ops.query(vector, filters, per_strategy, self.floor)
        by_strategy = [c for cases in found[: len(filters) - len(asked)] for c in cases]
        by_variant = [
            {**c, "on": dict(params)}
            for (_, params), cases in zip(asked, found[len(filters) - len(asked) :], strict=True)
            for c in cases
        ]
        return sorted([*by_strategy, *by_variant], key=lambda c: -c["score"])

    def cases(self, case_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not case_ids or self._empty():
            return []
        with self._session() as ops:
            return ops.cases(case_ids)

    def record_outcome(self, case_id: str, outcome: Outcome) -> bool:
        """Change how a stored case ended (the parcel came back); False if there is none."""
        if self._empty():
            return False
        with self._session() as ops:
            return ops.record_outcome(case_id, outcome_fields(outcome))


def _variant_queries(
    variants: Sequence[tuple[Strategy, Mapping[str, str]]],
) -> list[tuple[Strategy, dict[str, str]]]:
    """Each distinct (strategy, parameters) once, parameters sorted; none without any."""
    found: dict[tuple[Strategy, tuple[tuple[str, str], ...]], None] = {}
    for strategy, params in variants:
        if params:
            found[(strategy, tuple(sorted((str(k), str(v)) for k, v in params.items())))] = None
    return [(strategy, dict(params)) for strategy, params in found]


class QdrantCaseMemory(MemoryBase):
    """The case memory on one engine held open: a Qdrant server, or an embedded shard this
    process alone uses (an eval's fresh memory). Threads may share it."""

    def __init__(
        self,
        engine: Engine,
        embedder: Embedder,
        *,
        floor: float | None = None,
        where: str = "",
        learns: bool = True,
        rerank: str = DEFAULT_RERANK,
    ) -> None:
        self.engine = engine
        self.learns = learns
        self.rerank = check_rerank(rerank)
        self.embedder = embedder
        self.floor = default_floor(embedder.name) if floor is None else floor
        self._ops = EngineOperations(engine, embedder.name, where or "in Qdrant")
        self._lock = threading.RLock()
        self._closers: list[Any] = []

    @contextmanager
    def _session(self) -> Iterator[Operations]:
        with self._lock:
            yield self._ops

    def _empty(self) -> bool:
        return self.count() == 0

    def import_cases(self, cases: Iterable[PastCase], *, batch_size: int = 256) -> int:
        """Upsert cases; how many, counting each case_id once (the last one given wins)."""
        given = _unique(cases)
        for start in range(0, len(given), batch_size):
            batch = given[start : start + batch_size]
            vectors = self.embedder.embed([case_text(c) for c in batch])
            ids, payloads = points_of(batch)
            with self._lock:
                self._ops.upsert(ids, vectors, payloads)
        return len(given)

    def learn(self, case: PastCase) -> bool:
        """Remember an outcome, unless this memory does not learn (``learns=False``: an eval's,
        whose results must not depend on the order of its cases)."""
        if not self.learns:
            return False
        self.import_cases([case])
        return True

    def count(self) -> int:
        with self._lock:
            return self._ops.count()

    def reset(self) -> None:
        """Forget every case (e.g. before importing them again with another model)."""
        with self._lock:
            self.engine.reset()

    def close(self) -> None:
        with self._lock:
            self.engine.close()
            for closer in self._closers:
                closer()
            self._closers.clear()


def open_memory(
    *,
    url: str | None,
    embedder: Embedder,
    collection: str = DEFAULT_COLLECTION,
    floor: float | None = None,
    learns: bool = True,
    replicas: int = 1,
    rerank: str = DEFAULT_RERANK,
) -> QdrantCaseMemory:
    """A Qdrant server's case memory when ``url`` is set (its collection made, the first time,
    with ``replicas`` copies of each shard on a cluster); else a fresh, empty embedded one in a
    temporary folder that goes away on ``close`` (an eval's memory)."""
    if url:
        from qdrant_client import QdrantClient

        engine: Engine = ServerEngine(QdrantClient(url=url), collection, replicas=replicas)
        where = f"{collection!r} at {url}"
        return QdrantCaseMemory(
            engine, embedder, floor=floor, where=where, learns=learns, rerank=rerank
        )
    folder = Path(tempfile.mkdtemp(prefix="exdesk-cases-"))
    memory = QdrantCaseMemory(
        EdgeEngine(folder / "shard"),
        embedder,
        floor=floor,
        where="(fresh)",
        learns=learns,
        rerank=rerank,
    )
    memory._closers.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    return memory
