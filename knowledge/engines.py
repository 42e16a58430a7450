"""Where the case memory's vectors live: Qdrant's engine in-process, or a Qdrant server.

Both hold every case as one point (id from its case_id, cosine distance) with its payload,
and keyword/bool indexes on the fields searches filter on (``INDEXED``). Filters are plain
``{field: value}`` maps: every condition must match.

- ``EdgeEngine``: ``qdrant-edge-py``, one shard in a folder. A plain (exact) shard, never
  indexed, and every search exact: measured (docs/case-memory.md), its HNSW with a payload
  filter misses most neighbours, and exact filtered search over 100k cases takes a few ms.
  Only one shard may be open on a folder at a time (its WAL is locked): sharing between
  processes is ``store.SharedFolderMemory``'s job.
- ``ServerEngine``: ``qdrant-client`` against a server or cluster (``EXDESK_QDRANT_URL``),
  one collection, HNSW with payload indexes (the server filters inside its graph).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from knowledge.errors import CaseMemoryUnavailable

# The payload fields searches filter on; each gets an index.
INDEXED: dict[str, str] = {
    "kind": "keyword",
    "strategy": "keyword",
    "success": "bool",
    "country": "keyword",
    "category": "keyword",
    "channel": "keyword",
    "customer_tier": "keyword",
    "warehouse": "keyword",
    "case_id": "keyword",
    # a plan's own parameters (``PastCase.variant``), for evidence per variant
    "variant.warehouse": "keyword",
    "variant.warehouses": "keyword",
    "variant.substitute": "keyword",
    "variant.service": "keyword",
    "variant.carrier": "keyword",
}
META_FILE = "exdesk-memory.json"
_T = TypeVar("_T")
Filter = Mapping[str, Any]


class Hit(Protocol):
    @property
    def score(self) -> float: ...

    @property
    def payload(self) -> dict[str, Any] | None: ...


class Engine(Protocol):
    """The few operations the case memory needs from a vector store."""

    def meta(self) -> dict[str, Any] | None:
        """What the store was made with (``{"embedder", "dim"}``), or None when it is new."""
        ...

    def create(self, meta: dict[str, Any]) -> None: ...

    def upsert(
        self, ids: Sequence[str], vectors: NDArray[np.float32], payloads: Sequence[dict[str, Any]]
    ) -> None: ...

    def query(
        self,
        vector: NDArray[np.float32],
        filters: Sequence[Filter],
        limit: int,
        threshold: float | None,
    ) -> list[list[Hit]]:
        """For each filter, the ``limit`` nearest points that match it (above ``threshold``)."""
        ...

    def payloads(self, ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None: ...

    def count(self, where: Filter | None = None) -> int: ...

    def reset(self) -> None:
        """Delete every point and what the store was made with."""
        ...

    def close(self) -> None: ...


# --- embedded ----------------------------------------------------------------------------


class EdgeEngine:
    """A qdrant-edge shard in ``path``, opened by the constructor until ``close``."""

    def __init__(self, path: Path) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.path = path
        self._shard: Any = None
        self._meta: dict[str, Any] | None = None
        if (path / "edge_config.json").is_file():
            self._shard = self._call(lambda: qe.EdgeShard.load(str(path)), "open")

    def _call(self, operation: Callable[[], _T], what: str) -> _T:
        try:
            return operation()
        except Exception as exc:  # qdrant-edge raises plain Exception for everything
            text = str(exc)
            if "WouldBlock" in text:
                raise CaseMemoryUnavailable(
                    f"the case memory at {self.path} is open in another process (qdrant-edge "
                    "allows one at a time): exdesk opens it per operation under a lock file; "
                    "is a process not using exdesk holding it?"
                ) from exc
            raise CaseMemoryUnavailable(
                f"the case memory at {self.path} failed to {what} ({text}); check the folder "
                "(EXDESK_DATA_DIR) and its permissions, or reset it and import the cases again"
            ) from exc

    def meta(self) -> dict[str, Any] | None:
        if self._shard is None:
            return None
        if self._meta is not None:  # this process alone has the shard open: it cannot change
            return self._meta
        try:
            meta: dict[str, Any] = json.loads((self.path / META_FILE).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise CaseMemoryUnavailable(
                f"the case memory at {self.path} was not made by exdesk ({META_FILE} is missing "
                "or unreadable); move it away and import the cases again"
            ) from exc
        self._meta = meta
        return meta

    def create(self, meta: dict[str, Any]) -> None:
        qe = self._qe
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=int(meta["dim"]), distance=qe.Distance.Cosine),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),  # plain: exact search
        )
        self.path.mkdir(parents=True, exist_ok=True)
        shard = self._call(lambda: qe.EdgeShard.create(str(self.path), config), "create")
        kinds = {"keyword": qe.PayloadSchemaType.Keyword, "bool": qe.PayloadSchemaType.Bool}
        for field, kind in INDEXED.items():
            shard.update(qe.UpdateOperation.create_field_index(field, kinds[kind]))
        tmp = self.path / f".{META_FILE}.tmp"
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        tmp.replace(self.path / META_FILE)
        self._shard = shard
        self._meta = dict(meta)

    def _filter(self, where: Filter | None) -> Any:
        if not where:
            return None
        qe = self._qe
        return qe.Filter(
            must=[qe.FieldCondition(key=k, match=qe.MatchValue(v)) for k, v in where.items()]
        )

    def upsert(
        self, ids: Sequence[str], vectors: NDArray[np.float32], payloads: Sequence[dict[str, Any]]
    ) -> None:
        qe = self._qe
        points = [
            qe.Point(point_id, vector, payload)
            for point_id, vector, payload in zip(ids, vectors.tolist(), payloads, strict=True)
        ]
        self._call(lambda: self._shard.update(qe.UpdateOperation.upsert_points(points)), "write")

    def query(
        self,
        vector: NDArray[np.float32],
        filters: Sequence[Filter],
        limit: int,
        threshold: float | None,
    ) -> list[list[Hit]]:
        qe = self._qe
        as_list = vector.tolist()
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(as_list),
                filter=self._filter(where),
                with_payload=True,
                score_threshold=threshold,
                params=qe.SearchParams(exact=True),
            )
            for where in filters
        ]
        if len(requests) == 1:
            return [self._call(lambda: self._shard.query(requests[0]), "search")]
        batch = qe.QueryBatchRequest(requests)
        found: list[list[Hit]] = self._call(lambda: self._shard.query_batch(batch), "search")
        return found

    def payloads(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        records = self._call(
            lambda: self._shard.retrieve(list(ids), with_payload=True, with_vector=False), "read"
        )
        return [dict(r.payload or {}) for r in records]

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        op = self._qe.UpdateOperation.set_payload([point_id], payload)
        self._call(lambda: self._shard.update(op), "write")

    def count(self, where: Filter | None = None) -> int:
        if self._shard is None:
            return 0
        request = self._qe.CountRequest(filter=self._filter(where), exact=True)
        return int(self._call(lambda: self._shard.count(request), "count"))

    def reset(self) -> None:
        self._meta = None
        if self._shard is not None:
            self._shard.close()
            self._shard = None
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            self._call(shard.flush, "flush")
            shard.close()


# --- a server (or qdrant-client's local mode, in tests) ----------------------------------


class ServerEngine:
    """One collection on a Qdrant server through ``qdrant-client``."""

    def __init__(self, client: Any, collection: str, *, replicas: int = 1) -> None:
        self.client = client
        self.collection = collection
        self.replicas = replicas  # copies of each shard a cluster keeps (made with this)
        self._known: dict[str, Any] | None = None

    def _call(self, operation: Callable[[], _T]) -> _T:
        from qdrant_client.http.exceptions import ApiException

        try:
            return operation()
        except ApiException as exc:
            raise CaseMemoryUnavailable(
                f"Qdrant did not answer for the case memory {self.collection!r} ({exc}); check "
                "EXDESK_QDRANT_URL and that the server is running"
            ) from exc
        except ValueError as exc:  # local mode reports bad requests as ValueError
            raise CaseMemoryUnavailable(
                f"Qdrant refused a request on the case memory {self.collection!r} ({exc})"
            ) from exc
        except OSError as exc:  # connection refused, DNS, timeouts
            raise CaseMemoryUnavailable(
                f"Qdrant at EXDESK_QDRANT_URL cannot be reached for the case memory "
                f"{self.collection!r} ({exc}); check the URL and that the server is running"
            ) from exc

    def meta(self) -> dict[str, Any] | None:
        if self._known is not None:
            return self._known
        if not self._call(lambda: self.client.collection_exists(self.collection)):
            return None
        info = self._call(lambda: self.client.get_collection(self.collection))
        meta = dict(info.config.metadata or {})
        vectors = info.config.params.vectors
        size = getattr(vectors, "size", None)
        if size is None or "embedder" not in meta:
            raise CaseMemoryUnavailable(
                f"Qdrant collection {self.collection!r} was not made by exdesk; set another "
                "collection name, or delete it and import the cases again"
            )
        self._known = {**meta, "dim": int(size)}
        return self._known

    def create(self, meta: dict[str, Any]) -> None:
        from qdrant_client import models

        params = models.VectorParams(size=int(meta["dim"]), distance=models.Distance.COSINE)
        self._call(
            lambda: self.client.create_collection(
                self.collection,
                vectors_config=params,
                metadata=dict(meta),
                replication_factor=self.replicas,
            )
        )
        schemas = {
            "keyword": models.PayloadSchemaType.KEYWORD,
            "bool": models.PayloadSchemaType.BOOL,
        }
        with warnings.catch_warnings():  # local mode: "payload indexes have no effect"
            warnings.simplefilter("ignore", UserWarning)
            for field, kind in INDEXED.items():
                self._call(
                    lambda f=field, k=kind: self.client.create_payload_index(  # type: ignore[misc]
                        self.collection, f, schemas[k]
                    )
                )
        self._known = dict(meta)

    def _filter(self, where: Filter | None) -> Any:
        from qdrant_client import models

        if not where:
            return None
        return models.Filter(
            must=[
                models.FieldCondition(key=k, match=models.MatchValue(value=v))
                for k, v in where.items()
            ]
        )

    def upsert(
        self, ids: Sequence[str], vectors: NDArray[np.float32], payloads: Sequence[dict[str, Any]]
    ) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(id=i, vector=v, payload=p)
            for i, v, p in zip(ids, vectors.tolist(), payloads, strict=True)
        ]
        self._call(lambda: self.client.upsert(self.collection, points=points))

    def query(
        self,
        vector: NDArray[np.float32],
        filters: Sequence[Filter],
        limit: int,
        threshold: float | None,
    ) -> list[list[Hit]]:
        from qdrant_client import models

        as_list = vector.tolist()
        requests = [
            models.QueryRequest(
                query=as_list,
                filter=self._filter(where),
                limit=limit,
                with_payload=True,
                score_threshold=threshold,
            )
            for where in filters
        ]
        responses = self._call(
            lambda: self.client.query_batch_points(self.collection, requests=requests)
        )
        return [list(r.points) for r in responses]

    def payloads(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        records = self._call(
            lambda: self.client.retrieve(self.collection, ids=list(ids), with_payload=True)
        )
        return [dict(r.payload or {}) for r in records]

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        self._call(
            lambda: self.client.set_payload(self.collection, payload=payload, points=[point_id])
        )

    def count(self, where: Filter | None = None) -> int:
        if self.meta() is None:
            return 0
        found = self._call(
            lambda: self.client.count(self.collection, count_filter=self._filter(where), exact=True)
        )
        return int(found.count)

    def reset(self) -> None:
        if self._call(lambda: self.client.collection_exists(self.collection)):
            self._call(lambda: self.client.delete_collection(self.collection))
        self._known = None

    def close(self) -> None:
        self.client.close()
