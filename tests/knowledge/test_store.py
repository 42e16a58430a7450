"""The Qdrant case memory: what is particular to each engine (the port's common behaviour is
``test_conformance``; the shared folder's, ``test_shared``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from domain.models import Kind, Strategy
from knowledge.cases import PastCase
from knowledge.embedder import HashEmbedder
from knowledge.engines import EdgeEngine, ServerEngine
from knowledge.errors import CaseMemoryUnavailable
from knowledge.store import (
    QdrantCaseMemory,
    default_floor,
    open_memory,
)
from tests.knowledge.support import case

STOCK = [Strategy.REALLOCATE_WAREHOUSE, Strategy.BACKORDER, Strategy.SPLIT_SHIPMENT]


def test_a_memory_that_does_not_learn_says_so(cases: list[PastCase]) -> None:
    frozen = open_memory(url=None, embedder=HashEmbedder(), learns=False)
    try:
        frozen.import_cases(cases)
        assert not frozen.learn(case("X", Kind.STOCKOUT, "new", Strategy.BACKORDER))
        assert frozen.count() == len(cases)
    finally:
        frozen.close()


def test_an_unreachable_server_says_what_to_check() -> None:
    client = QdrantClient(url="http://127.0.0.1:9", check_compatibility=False)
    memory = QdrantCaseMemory(ServerEngine(client, "c"), HashEmbedder())
    with pytest.raises(CaseMemoryUnavailable, match="EXDESK_QDRANT_URL"):
        memory.search("short", kind=Kind.STOCKOUT)


def test_an_eval_memory_goes_away_on_close(cases: list[PastCase]) -> None:
    memory = open_memory(url=None, embedder=HashEmbedder())
    assert isinstance(memory.engine, EdgeEngine)
    folder = memory.engine.path
    memory.import_cases(cases)
    assert folder.exists()
    memory.close()
    assert not folder.parent.exists()


def test_the_embedded_engine_lets_one_opener_at_a_time(
    tmp_path: Path, cases: list[PastCase]
) -> None:
    first = QdrantCaseMemory(EdgeEngine(tmp_path / "shard"), HashEmbedder())
    first.import_cases(cases)
    with pytest.raises(CaseMemoryUnavailable, match="another process"):
        EdgeEngine(tmp_path / "shard")
    first.close()
    again = QdrantCaseMemory(EdgeEngine(tmp_path / "shard"), HashEmbedder())
    try:
        assert again.count() == 6  # persisted
    finally:
        again.close()


def test_floors_are_per_embedder() -> None:
    assert default_floor("use-m3:centered@1234abcd") == 0.35
    assert default_floor("hash-256") == 0.3
    assert default_floor("some/other-model") == 0.5


class _Recording(QdrantClient):
    """qdrant-client's local mode, keeping what each collection was made with (local mode
    has no cluster, so it keeps no replication factor of its own)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.made: list[dict[str, object]] = []

    def create_collection(self, collection_name: str, **kwargs: object) -> bool:  # type: ignore[override]
        self.made.append({"name": collection_name, **kwargs})
        return bool(super().create_collection(collection_name, **kwargs))  # type: ignore[arg-type]


def test_a_cluster_collection_is_made_with_the_replicas_asked(cases: list[PastCase]) -> None:
    client = _Recording()
    memory = QdrantCaseMemory(ServerEngine(client, "c", replicas=3), HashEmbedder())
    memory.import_cases(cases)
    assert [m["replication_factor"] for m in client.made] == [3]
    assert memory.count() == len(cases)
    memory.close()
    assert ServerEngine(QdrantClient(":memory:"), "d").replicas == 1
