"""Benchmark: the case memory at 10k and 100k cases.

    python -m evals.bench_knowledge [--sizes 10000] [--queries 200] [--embedder multilingual]
    python -m evals.bench_knowledge --sizes 10000,100000      # the large sizes (slow: embedding)

For each size, a generated history (``evals.history``) is imported into the embedded memory
under a temporary folder, as ``exdesk knowledge import`` does (embedding included): the import
rate. Then ``--queries`` agent-like searches (a situation text, evidence for every strategy of
its kind: one embedding and one exact filtered search per strategy), one at a time:

- latency p50 / p99, embedding included, with the shard held open (one process);
- recall@5 against exact search: each strategy's top 5 against numpy's brute force over the
  same vectors and filter;
- baseline, in the same run: numpy brute force (filter, then dot products) over the same
  vectors, and, at sizes up to ``--baseline-max``, qdrant-client's local mode (the engine the
  memory used before) on the same cases.

Then the shared folder (``knowledge.shared``: one process hosts the shard, the others ask it
over a Unix socket), ``shared_search_figures``: four processes searching back to back at once
against one process with the shard held open alone, both on the same folder in the same run,
with the vectors made beforehand (what sharing costs) and with the embedding included (what an
agent waits); and, as the baseline of before, one process opening the shard per search under
the lock file. ``exdesk bench`` reads its ``retrieve.*`` keys.

Prints medians and ratios. With ``--url`` the held-open figures are for a Qdrant server.
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
from knowledge.shared import WRITE_CHUNK, SharedFolderMemory
from knowledge.situation import describe
from knowledge.store import QdrantCaseMemory, case_text, points_of


def synthetic_cases(count: int, seed: int = 11) -> list[PastCase]:
    """``count`` generated past cases of every kind, in Chinese and English."""
    return list(generate(count, seed))


def cache_folder() -> Path:
    """Where the benchmark keeps the vectors of its generated histories (``EXDESK_BENCH_CACHE``,
    default ``~/.cache/exdesk/bench``): embedding 100,000 summaries takes minutes to an hour
    on a small machine, and the search figures do not depend on when they were made."""
    return Path(os.environ.get("EXDESK_BENCH_CACHE") or Path.home() / ".cache/exdesk/bench")


HISTORY_SEED = 10000  # every size's history is a prefix of one generated history


def embedded_history(
    n: int, embedder: Embedder, *, seed: int = HISTORY_SEED, chunk: int = 1000
) -> tuple[list[PastCase], np.ndarray]:
    """``synthetic_cases(n, seed)`` and their vectors (``case_text`` embedded as an import
    does), each chunk of ``chunk`` vectors read from the cache when an earlier run embedded
    the same texts with the same embedder (smaller sizes are prefixes of larger ones, and a
    run that is stopped keeps the chunks it finished)."""
    cases = synthetic_cases(n, seed=seed)
    texts = [case_text(c) for c in cases]
    folder = cache_folder() / hashlib.sha256(embedder.name.encode("utf-8")).hexdigest()[:16]
    parts = []
    for start in range(0, n, chunk):
        some = texts[start : start + chunk]
        digest = hashlib.sha256("\x1f".join(some).encode("utf-8")).hexdigest()[:24]
        path = folder / f"{digest}.npy"
        part = np.load(path) if path.is_file() else None
        if part is None or part.shape[0] != len(some):
            part = np.vstack(
                [embedder.embed(some[i : i + 256]) for i in range(0, len(some), 256)]
            ).astype(np.float32)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{digest}.{os.getpid()}.npy"
            np.save(tmp, part)
            tmp.replace(path)
        parts.append(part)
    return cases, np.vstack(parts)


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
    rounds: int = 3,
) -> dict[str, Any]:
    result: dict[str, Any] = {"cases": n}
    cases, vectors = embedded_history(n, embedder)
    with tempfile.TemporaryDirectory(prefix="exdesk-bench-") as tmp:
        store = EdgeEngine(Path(tmp) / "cases")
        writer = QdrantCaseMemory(store, embedder)
        # an import is the embedding (from the cache when an earlier run made it), then the
        # writes (in chunks of WRITE_CHUNK, as the shared folder's import sends them)
        write_ms = 0.0
        for start in range(0, n, WRITE_CHUNK):
            ids, payloads = points_of(cases[start : start + WRITE_CHUNK])
            chunk = vectors[start : start + WRITE_CHUNK]
            write_ms += _timed(lambda i=ids, v=chunk, p=payloads: writer._ops.upsert(i, v, p))[0]
        store.close()
        result["write_per_s"] = n / (write_ms / 1000)
        kinds = np.array([c.kind.value for c in cases])
        strategies = np.array([c.strategy.value for c in cases])
        ids = [c.case_id for c in cases]
        queried = [
            (text, kind, strats, embedder.embed([text], query=True)[0])
            for text, kind, strats in searches
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
            held_ms = []
            for _ in range(rounds):
                times = [
                    _timed(lambda t=t, k=k, s=s: held.evidence(t, k, s))[0]
                    for t, k, s, _ in queried
                ]
                held_ms.append((percentile(times, 50), percentile(times, 99)))
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
            held_p50=statistics.median(p for p, _ in held_ms),
            held_p99=statistics.median(p for _, p in held_ms),
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


# --- several processes on one folder ---------------------------------------------------


def _filters_of(kind: Kind, strategies: Sequence[Strategy]) -> list[dict[str, str]]:
    return [{"kind": kind.value, "strategy": s.value} for s in strategies]


def _share_worker(
    folder: str, embedder_name: str, count: int, seed: int, barrier: Any, rounds: int = 3
) -> Any:
    """One of the processes sharing the folder: ``rounds`` times ``count`` searches back to
    back with the vectors made (all processes starting each round together), then ``count``
    with the embedding; the ms of each, per round."""
    embedder = make_embedder(embedder_name)
    memory = SharedFolderMemory(Path(folder), embedder, timeout=600)
    try:
        searches = queries(count, seed)
        vectors = embedder.embed([t for t, _, _ in searches], query=True)
        memory.count()  # connected (or hosting) before the clock starts
        engine_ms = []
        with memory._session() as ops:
            for _ in range(rounds):
                barrier.wait()
                engine_ms.append(
                    [
                        _timed(
                            lambda v=v, k=k, s=s: ops.query(v, _filters_of(k, s), 10, memory.floor)
                        )[0]
                        for v, (_, k, s) in zip(vectors, searches, strict=True)
                    ]
                )
        barrier.wait()
        agent_ms = [
            _timed(lambda t=t, k=k, s=s: memory.evidence(t, k, s))[0] for t, k, s in searches
        ]
        hosting = memory.hosting
        barrier.wait()  # nobody leaves (and hands over) before all are done
        return engine_ms, agent_ms, hosting
    finally:
        memory.close()


def _reopened_ms(folder: Path, embedder: Embedder, vectors: Any, searches: Any) -> list[float]:
    """The shared folder as it was before a host kept it open: every search took the lock
    file, opened the shard, searched and closed it (the baseline of before)."""
    from filelock import FileLock

    from knowledge.store import EngineOperations

    lock = FileLock(str(folder.with_name(folder.name + ".lock")))

    def once(vector: Any, kind: Kind, strategies: Sequence[Strategy]) -> None:
        with lock:
            engine = EdgeEngine(folder)
            try:
                EngineOperations(engine, embedder.name, "").query(
                    vector, _filters_of(kind, strategies), 10, 0.35
                )
            finally:
                engine.close()

    return [
        _timed(lambda v=v, k=k, s=s: once(v, k, s))[0]
        for v, (_, k, s) in zip(vectors, searches, strict=True)
    ]


def shared_search_figures(
    size: int = 10000,
    *,
    processes: int = 4,
    searches: int = 100,
    embedder_name: str = DEFAULT_MODEL,
    seed: int = 11,
    rounds: int = 3,
) -> dict[str, float]:
    """The ``retrieve.*`` figures of ``exdesk bench`` (``k`` = size / 1000): agent-like
    evidence searches on a shared folder of ``size`` generated cases.

    - ``retrieve.held_p50_ms_{k}k`` / ``_p99_``: one process alone, the shard held open;
    - ``retrieve.shared_p50_ms_{k}k`` / ``_p99_``: ``processes`` processes searching back to
      back at once on the shared folder (one hosts it, the others ask it over its socket);
    - both with the query vectors made beforehand (the memory's own cost); ``..._embedded_...``
      the same with the embedding included (on a machine with fewer cores than processes the
      embedding itself queues for the CPU);
    - ``retrieve.held_together_p50_ms_{k}k`` / ``_p99_``: as many threads of the one process
      holding the shard searching at once as there are sharing processes (the same queueing
      for the CPU, none of the sharing); ``retrieve.shared_over_together_p50_{k}k`` the ratio;
    - ``retrieve.shared_over_held_p50_{k}k``: the ratio of the medians; ``retrieve.reopen_p50_
      ms_{k}k``: one process opening the shard per search, as before (baseline of before).
    """
    import multiprocessing

    k = f"{size // 1000}k"
    embedder = make_embedder(embedder_name)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="exdesk-bench-shared-") as tmp:
        folder = Path(tmp) / "cases"
        cases, stored = embedded_history(size, embedder)
        writer = QdrantCaseMemory(EdgeEngine(folder), embedder)
        try:
            for start in range(0, size, 1000):
                ids, payloads = points_of(cases[start : start + 1000])
                writer._ops.upsert(ids, stored[start : start + 1000], payloads)
        finally:
            writer.close()
        mine = queries(searches, seed)
        vectors = embedder.embed([t for t, _, _ in mine], query=True)
        held = QdrantCaseMemory(EdgeEngine(folder), embedder)
        try:
            engine_rounds = [_held_searches(held, vectors, mine) for _ in range(rounds)]
            agent_ms = [_timed(lambda q=q: held.evidence(*q))[0] for q in mine]
            together = _threads_at_once(held, vectors, mine, max(1, processes), rounds)
        finally:
            held.close()
        figures[f"retrieve.held_p50_ms_{k}"] = _median_of(engine_rounds, 50)
        figures[f"retrieve.held_p99_ms_{k}"] = _median_of(engine_rounds, 99)
        figures[f"retrieve.held_together_p50_ms_{k}"] = _median_of(together, 50)
        figures[f"retrieve.held_together_p99_ms_{k}"] = _median_of(together, 99)
        figures[f"retrieve.held_embedded_p50_ms_{k}"] = percentile(agent_ms, 50)
        figures[f"retrieve.held_embedded_p99_ms_{k}"] = percentile(agent_ms, 99)
        few = max(1, searches // 4)
        reopened = _reopened_ms(folder, embedder, vectors[:few], mine[:few])
        figures[f"retrieve.reopen_p50_ms_{k}"] = percentile(reopened, 50)
        if processes > 0:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Manager() as manager:
                barrier = manager.Barrier(processes)
                with ctx.Pool(processes) as pool:
                    pending = [
                        pool.apply_async(
                            _share_worker,
                            (str(folder), embedder_name, searches, seed + i, barrier, rounds),
                        )
                        for i in range(processes)
                    ]
                    results = [p.get(timeout=1800) for p in pending]
            # each round: every process's searches of that round together
            shared = [[t for r in results for t in r[0][i]] for i in range(rounds)]
            embedded = [t for r in results for t in r[1]]
            figures[f"retrieve.shared_p50_ms_{k}"] = _median_of(shared, 50)
            figures[f"retrieve.shared_p99_ms_{k}"] = _median_of(shared, 99)
            figures[f"retrieve.shared_max_ms_{k}"] = max(max(r) for r in shared)
            figures[f"retrieve.shared_embedded_p50_ms_{k}"] = percentile(embedded, 50)
            figures[f"retrieve.shared_embedded_p99_ms_{k}"] = percentile(embedded, 99)
            figures[f"retrieve.shared_over_held_p50_{k}"] = (
                figures[f"retrieve.shared_p50_ms_{k}"] / figures[f"retrieve.held_p50_ms_{k}"]
            )
            figures[f"retrieve.shared_over_together_p50_{k}"] = (
                figures[f"retrieve.shared_p50_ms_{k}"]
                / figures[f"retrieve.held_together_p50_ms_{k}"]
            )
            figures[f"retrieve.shared_hosts_{k}"] = float(sum(1 for r in results if r[2]))
    return {key: round(value, 3) for key, value in figures.items()}


def _threads_at_once(
    held: QdrantCaseMemory, vectors: Any, mine: Sequence[Any], threads: int, rounds: int
) -> list[list[float]]:
    """The shared figure's baseline at the same concurrency: ``threads`` threads of the one
    process that holds the shard open, searching back to back at once (on a machine with
    fewer cores than searchers, both queue for the CPU alike). The ms of each search, per
    round."""
    from concurrent.futures import ThreadPoolExecutor

    out: list[list[float]] = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            futures = [pool.submit(_held_searches, held, vectors, mine) for _ in range(threads)]
            out.append([t for f in futures for t in f.result()])
    return out


def _held_searches(held: QdrantCaseMemory, vectors: Any, mine: Sequence[Any]) -> list[float]:
    """The ms of each search, back to back, on the shard ``held`` holds open (vectors made)."""
    return [
        _timed(lambda v=v, q=q: held._ops.query(v, _filters_of(q[1], q[2]), 10, held.floor))[0]
        for v, q in zip(vectors, mine, strict=True)
    ]


def _median_of(rounds: Sequence[Sequence[float]], pct: float) -> float:
    """The median over rounds of each round's percentile."""
    return statistics.median(percentile(r, pct) for r in rounds)


def sizes(quick: bool) -> dict[str, int]:
    """How much each figure of ``figures`` is measured on (``exdesk bench`` records it): the
    case counts behind the ``_10k`` and ``_100k`` keys, searches per round, rounds, and the
    processes sharing the folder."""
    if quick:
        return {"10k": 500, "100k": 2_000, "searches": 20, "rounds": 3, "processes": 4}
    return {"10k": 10_000, "100k": 100_000, "searches": 200, "rounds": 3, "processes": 4}


def figures(quick: bool) -> dict[str, float]:
    """The ``retrieve.*`` figures of ``exdesk bench`` (issue 14), medians of three rounds:

    - ``retrieve.p50_ms_10k`` / ``p99_ms_10k`` / ``p50_ms_100k`` / ``p99_ms_100k``: agent-like
      evidence searches (a situation text; embedding it, then one exact filtered search per
      strategy of its kind), one process with the shard held open;
    - ``retrieve.recall_at_5``: each strategy's top 5 against numpy's exact search over the
      same vectors, at the larger size (the lower of the two sizes' figures);
    - ``retrieve.shared_p50_ms_10k`` / ``shared_p99_ms_10k``: four processes searching back to
      back at once on one shared folder (one hosts it, the others over its socket), the query
      vectors made beforehand; beside them ``retrieve.held_p50_ms_10k`` / ``held_p99_ms_10k``,
      the same searches by one process alone with the shard held open (same folder, same
      run), the ratio, and the same with the embedding included (``..._embedded_...``).

    With ``quick`` the sizes are smaller (``sizes``): a smoke test, not the issue's figures.
    """
    size = sizes(quick)
    embedder = make_embedder(DEFAULT_MODEL)
    searches = queries(size["searches"], 11)
    found: dict[str, float] = {}
    recall = []
    for key in ("10k", "100k"):
        r = bench_size(
            size[key], embedder, searches, url=None, baseline_max=0, rounds=size["rounds"]
        )
        found[f"retrieve.p50_ms_{key}"] = r["held_p50"]
        found[f"retrieve.p99_ms_{key}"] = r["held_p99"]
        found[f"retrieve.numpy_p50_ms_{key}"] = r["numpy_p50"]
        found[f"retrieve.embed_p50_ms_{key}"] = r["embed_p50"]
        recall.append(r["recall_at_5"])
    found["retrieve.recall_at_5"] = min(recall)
    shared = shared_search_figures(
        size["10k"],
        processes=size["processes"],
        searches=max(20, size["searches"] // 2),
        rounds=size["rounds"],
    )
    # the shared figures carry the real size in their key; exdesk bench's keys say 10k
    for key, value in shared.items():
        found[key.replace(f"_{size['10k'] // 1000}k", "_10k")] = value
    return {key: round(value, 3) for key, value in found.items()}


def print_shared(figures: dict[str, float]) -> None:
    for key, value in figures.items():
        print(f"  {key:42} {value:10.3f}")


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
        "--processes", type=int, default=4, help="processes sharing the folder (0: skip that)"
    )
    parser.add_argument(
        "--shared-searches", type=int, default=100, help="searches by each sharing process"
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    embedder = make_embedder(args.embedder)
    load_ms, _ = _timed(lambda: embedder.embed(["warm up"], query=True))
    searches = queries(args.queries, args.seed)
    sample = [case_text(c) for c in synthetic_cases(256, seed=5)]
    embed_rate = len(sample) / (_timed(lambda: embedder.embed(sample))[0] / 1000)
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
        )
        print(
            f"{n:>7} cases: writes {r['write_per_s']:.0f} cases/s (an import is the embedding, "
            f"{embed_rate:.0f} summaries/s here, then the writes) · recall@5 vs exact "
            f"{r['recall_at_5']:.3f}"
        )
        print(
            f"         search p50 {r['held_p50']:6.1f} ms, p99 {r['held_p99']:6.1f} ms held open "
            "(one process, embedding included)"
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
        if args.processes:
            print(
                f"{n:>7} cases, shared folder: {args.processes} processes searching back to "
                f"back at once, {args.shared_searches} searches each, against one process "
                "with the shard held open (same folder, same run)"
            )
            print_shared(
                shared_search_figures(
                    n,
                    processes=args.processes,
                    searches=args.shared_searches,
                    embedder_name=args.embedder,
                )
            )


if __name__ == "__main__":
    main()
