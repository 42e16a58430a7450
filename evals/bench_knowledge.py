"""Benchmark: the case memory at 10k and 100k cases.

    python -m evals.bench_knowledge [--sizes 10000] [--queries 200] [--embedder multilingual]
    python -m evals.bench_knowledge --sizes 10000,100000      # the large sizes (slow: embedding)

For each size, a generated history (``evals.history``) is imported into the embedded memory
under a temporary folder, as ``exdesk knowledge import`` does (embedding included): the import
rate. Then ``--queries`` agent-like searches (a situation text, evidence for every strategy of
its kind: one embedding and one exact filtered search per strategy), one at a time:

- latency p50 / p99, embedding included, with the shard held open (one process) and opened per
  search under the lock (``SharedFolderMemory``, the default, which several processes share);
- recall@5 against exact search: each strategy's top 5 against numpy's brute force over the
  same vectors and filter;
- baseline, in the same run: numpy brute force (filter, then dot products) over the same
  vectors, and, at sizes up to ``--baseline-max``, qdrant-client's local mode (the engine the
  memory used before) on the same cases.

Prints medians and ratios. With ``--url`` the held-open figures are for a Qdrant server.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domain.models import Kind, Strategy
from evals.history import STRATEGIES, generate, random_situation
from knowledge.cases import PastCase
from knowledge.embedder import DEFAULT_MODEL, Embedder, make_embedder
from knowledge.engines import EdgeEngine, ServerEngine
from knowledge.situation import describe
from knowledge.store import QdrantCaseMemory, SharedFolderMemory, case_text


def synthetic_cases(count: int, seed: int = 11) -> list[PastCase]:
    """``count`` generated past cases of every kind, in Chinese and English."""
    return list(generate(count, seed))


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def queries(count: int, seed: int) -> list[tuple[str, Kind, tuple[Strategy, ...]]]:
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        kind = rng.choice(list(STRATEGIES))
        situation = random_situation(rng, kind, rng.choice(("en", "zh")))
        found.append((describe(situation), kind, STRATEGIES[kind]))
    return found


def _timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def exact_top(
    vectors: np.ndarray,
    kinds: np.ndarray,
    strategies: np.ndarray,
    ids: Sequence[str],
    query: np.ndarray,
    kind: Kind,
    strategy: Strategy,
    k: int = 5,
) -> list[str]:
    mask = np.flatnonzero((kinds == kind.value) & (strategies == strategy.value))
    if not len(mask):
        return []
    scores = vectors[mask] @ query
    best = mask[np.argsort(-scores)[:k]]
    return [ids[i] for i in best]


def bench_size(
    n: int,
    embedder: Embedder,
    searches: Sequence[tuple[str, Kind, tuple[Strategy, ...]]],
    *,
    url: str | None,
    baseline_max: int,
    shared_queries: int,
) -> dict[str, Any]:
    cases = synthetic_cases(n, seed=n)
    result: dict[str, Any] = {"cases": n}
    with tempfile.TemporaryDirectory(prefix="exdesk-bench-") as tmp:
        shared = SharedFolderMemory(Path(tmp) / "cases", embedder, timeout=600)
        # an import is the embedding, then the writes (2,048 cases per opening of the shard,
        # as SharedFolderMemory.import_cases does): timed apart, the vectors kept for below
        embedding_ms, vectors = _timed(
            lambda: np.vstack(
                [
                    embedder.embed([case_text(c) for c in cases[i : i + 256]])
                    for i in range(0, n, 256)
                ]
            )
        )
        write_ms = 0.0
        for start in range(0, n, SharedFolderMemory.IMPORT_CHUNK):
            end = start + SharedFolderMemory.IMPORT_CHUNK
            with shared._session() as ops:
                ms, _ = _timed(lambda s=start, e=end: ops.upsert(cases[s:e], vectors[s:e]))
            write_ms += ms
        result["import_per_s"] = n / ((embedding_ms + write_ms) / 1000)
        result["write_per_s"] = n / (write_ms / 1000)
        kinds = np.array([c.kind.value for c in cases])
        strategies = np.array([c.strategy.value for c in cases])
        ids = [c.case_id for c in cases]
        queried = [
            (text, kind, strats, embedder.embed([text], query=True)[0])
            for text, kind, strats in searches
        ]
        opened = queried[:shared_queries]

        # per-operation open under the lock (the default)
        shared_ms = [
            _timed(lambda t=t, k=k, s=s: shared.evidence(t, k, s))[0] for t, k, s, _ in opened
        ]
        # held open: one process, or a server
        if url:
            from qdrant_client import QdrantClient

            engine: Any = ServerEngine(QdrantClient(url=url), f"bench_{n}")
            held = QdrantCaseMemory(engine, embedder)
            held.reset()
            held.import_cases(cases)
        else:
            held = QdrantCaseMemory(EdgeEngine(Path(tmp) / "cases"), embedder)
        try:
            held_ms = [
                _timed(lambda t=t, k=k, s=s: held.evidence(t, k, s))[0] for t, k, s, _ in queried
            ]
            # the same searches with the vectors already made: the engine's time alone
            engine_ms = [
                _timed(
                    lambda v=v, k=k, s=s: held._ops.query(
                        v, [{"kind": k.value, "strategy": x.value} for x in s], 10, held.floor
                    )
                )[0]
                for _, k, s, v in queried
            ]
            hits = total = 0
            for _, kind, strats, vector in queried:
                for strategy in strats:
                    found = held._ops.query(
                        vector, [{"kind": kind.value, "strategy": strategy.value}], 5, None
                    )[0]
                    got = {c["case_id"] for c in found}
                    want = exact_top(vectors, kinds, strategies, ids, vector, kind, strategy)
                    hits += len(got & set(want))
                    total += len(want)
            result["recall_at_5"] = hits / max(1, total)
        finally:
            held.close()

        def brute(vector: np.ndarray, kind: Kind, strats: tuple[Strategy, ...]) -> None:
            for strategy in strats:
                exact_top(vectors, kinds, strategies, ids, vector, kind, strategy)

        embed_ms = [
            _timed(lambda t=t: embedder.embed([t], query=True))[0] for t, _, _, _ in queried
        ]
        numpy_ms = [_timed(lambda v=v, k=k, s=s: brute(v, k, s))[0] for _, k, s, v in queried]
        result.update(
            shared_p50=percentile(shared_ms, 50),
            shared_p99=percentile(shared_ms, 99),
            held_p50=percentile(held_ms, 50),
            held_p99=percentile(held_ms, 99),
            embed_p50=percentile(embed_ms, 50),
            engine_p50=percentile(engine_ms, 50),
            numpy_p50=statistics.median(numpy_ms) + percentile(embed_ms, 50),
        )
        if n <= baseline_max:
            result["local_p50"] = _local_mode(cases, vectors, queried)
    return result


def _local_mode(
    cases: Sequence[PastCase],
    vectors: np.ndarray,
    queried: Sequence[tuple[str, Kind, tuple[Strategy, ...], np.ndarray]],
) -> float:
    """Median ms of the same searches in qdrant-client's local mode (vectors precomputed, so
    this is the engine's time alone)."""
    from qdrant_client import QdrantClient

    from knowledge.store import payload_of, point_id

    client = QdrantClient(location=":memory:")
    engine = ServerEngine(client, "baseline")
    engine.create({"embedder": "baseline", "dim": int(vectors.shape[1])})
    for i in range(0, len(cases), 1000):
        chunk = cases[i : i + 1000]
        engine.upsert(
            [point_id(c.case_id) for c in chunk],
            vectors[i : i + 1000],
            [payload_of(c) for c in chunk],
        )
    times = []
    for _, kind, strats, vector in queried[:50]:
        filters = [{"kind": kind.value, "strategy": s.value} for s in strats]
        times.append(_timed(lambda v=vector, f=filters: engine.query(v, f, 10, None))[0])
    client.close()
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000", help="comma-separated case counts")
    parser.add_argument("--queries", type=int, default=200, help="searches to time")
    parser.add_argument("--embedder", default=DEFAULT_MODEL)
    parser.add_argument("--url", default=None, help="a Qdrant server for the held-open figures")
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=10000,
        help="largest size for the qdrant-client local-mode baseline",
    )
    parser.add_argument(
        "--shared-queries", type=int, default=100, help="of those, searches in the shared folder"
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    embedder = make_embedder(args.embedder)
    load_ms, _ = _timed(lambda: embedder.embed(["warm up"], query=True))
    searches = queries(args.queries, args.seed)
    print(
        f"case memory · {embedder.name} (loaded in {load_ms / 1000:.1f} s) · {args.queries} "
        "searches, each the evidence for every strategy of a kind (embedding included)"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        r = bench_size(
            n,
            embedder,
            searches,
            url=args.url,
            baseline_max=args.baseline_max,
            shared_queries=args.shared_queries,
        )
        print(
            f"{n:>7} cases: import {r['import_per_s']:7.0f} cases/s (embedding included; "
            f"writes alone {r['write_per_s']:.0f}/s) · recall@5 vs exact {r['recall_at_5']:.3f}"
        )
        print(
            f"         search p50 {r['held_p50']:6.1f} ms, p99 {r['held_p99']:6.1f} ms held "
            f"open; p50 {r['shared_p50']:6.1f} ms, p99 {r['shared_p99']:6.1f} ms opened per "
            "search (shared folder)"
        )
        line = (
            f"         baseline: numpy brute force p50 {r['numpy_p50']:6.1f} ms "
            f"(held-open edge ×{r['held_p50'] / r['numpy_p50']:.2f}); embedding alone p50 "
            f"{r['embed_p50']:.1f} ms"
        )
        if "local_p50" in r:
            engine_ms = r["engine_p50"]
            line += (
                f"; qdrant-client local mode p50 {r['local_p50']:.1f} ms without embedding "
                f"(edge without embedding {engine_ms:.1f} ms, ×{engine_ms / r['local_p50']:.3f})"
            )
        print(line)


if __name__ == "__main__":
    main()
