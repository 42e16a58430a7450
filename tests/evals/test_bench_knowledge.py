"""The case-memory benchmark's own machinery (its figures are measured by ``exdesk bench``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evals import bench_knowledge
from evals.bench_knowledge import embedded_history, shared_search_figures
from knowledge.embedder import make_embedder
from knowledge.store import case_text


class Counting:
    """The hash embedder, counting the texts it embeds."""

    def __init__(self) -> None:
        self.inner = make_embedder("hash")
        self.name = self.inner.name
        self.dim = self.inner.dim
        self.embedded = 0

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        self.embedded += len(texts)
        return self.inner.embed(texts, query=query)


def test_history_vectors_are_cached_by_chunk_and_shared_by_smaller_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXDESK_BENCH_CACHE", str(tmp_path))
    embedder = Counting()
    cases, vectors = embedded_history(250, embedder, chunk=100)  # type: ignore[arg-type]
    assert embedder.embedded == 250 and vectors.shape == (250, embedder.dim)
    direct = embedder.inner.embed([case_text(c) for c in cases])
    assert np.allclose(vectors, direct, atol=1e-6)
    # a smaller size is a prefix: its full chunks come from the cache, the last is new
    small_cases, small = embedded_history(150, embedder, chunk=100)  # type: ignore[arg-type]
    assert embedder.embedded == 250 + 50
    assert [c.case_id for c in small_cases] == [c.case_id for c in cases[:150]]
    assert np.allclose(small, vectors[:150], atol=1e-6)
    # a chunk of the wrong shape (a broken file) is embedded again
    broken = next(p for p in tmp_path.rglob("*.npy") if np.load(p).shape[0] == 100)
    np.save(broken, np.zeros((3, embedder.dim), dtype=np.float32))
    _, again = embedded_history(250, embedder, chunk=100)  # type: ignore[arg-type]
    assert embedder.embedded == 300 + 100
    assert np.allclose(again, vectors, atol=1e-6)


def test_shared_figures_come_from_processes_sharing_one_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXDESK_BENCH_CACHE", str(tmp_path))
    found = shared_search_figures(300, processes=2, searches=6, embedder_name="hash", rounds=3)
    assert found["retrieve.shared_hosts_0k"] == 1.0  # one process hosted, the other asked it
    for key in ("held_p50_ms", "held_p99_ms", "shared_p50_ms", "shared_p99_ms", "reopen_p50_ms"):
        assert found[f"retrieve.{key}_0k"] > 0
    assert found["retrieve.shared_p99_ms_0k"] >= found["retrieve.shared_p50_ms_0k"]


def test_quick_sizes_are_smaller() -> None:
    quick, full = bench_knowledge.sizes(True), bench_knowledge.sizes(False)
    assert full["10k"] == 10_000 and full["100k"] == 100_000
    assert quick["10k"] < full["10k"] and quick["100k"] < full["100k"]
