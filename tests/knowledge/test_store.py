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
