"""Benchmark: several processes on one data dir (the embedded defaults).

    python -m evals.bench_processes [--cases 2000] [--searches 40] [--orders 40] [--runs 3]

1. The case memory: one process hosts the embedded shard and the others ask it over its
   socket (``knowledge.shared``). Times ``--searches``
   searches in one process alone (the baseline), then in each of four processes searching at
   once, over a memory of ``--cases`` past cases (hash embedder: the embedding model is not
   what is measured). Prints the median and worst search time of each, and the ratio.
2. Whole runs: ``exdesk run`` of ``--orders`` orders that compete for half as many units, by
   one process, then by four processes at once each given every order. Prints the median
   wall time of each (start-up included) and the ratio.

Medians over ``--runs`` repeats, all measured in the same run of this script.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.rank import ranked_strategies
from domain.models import Finding, Kind, Order
from domain.policy import default_policy
from evals.bench_knowledge import synthetic_cases
from knowledge.embedder import HashEmbedder
from knowledge.shared import SharedFolderMemory
from knowledge.situation import describe, situation_of

EXDESK = str(Path(sys.executable).with_name("exdesk"))
_EXAMPLES = Path(__file__).resolve().parent / "data" / "examples.jsonl"


def _example(case_id: str) -> dict[str, Any]:
    for line in _EXAMPLES.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if case["id"] == case_id:
            return dict(case)
    raise KeyError(case_id)


def _searches(folder: str, count: int, start: Any) -> list[float]:
    memory = SharedFolderMemory(Path(folder), HashEmbedder(), timeout=120)
    order = Order.model_validate(_example("EX-inject-stock-012")["order"])
    finding = Finding(
        kind=Kind.STOCKOUT, order_id=order.order_id, summary="WH-SHA cannot ship every line"
    )
    text = describe(situation_of(order, finding))
    strategies = ranked_strategies(default_policy(), Kind.STOCKOUT)
    start.wait()
    times = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            memory.evidence(text, Kind.STOCKOUT, strategies)
            times.append((time.perf_counter() - began) * 1000)
    finally:
        memory.close()
    return times


def _search_times(folder: Path, count: int, processes: int) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(processes) as pool:
            pending = [
                pool.apply_async(_searches, (str(folder), count, start)) for _ in range(processes)
            ]
            time.sleep(1.0)  # every worker is up and waiting
            start.set()
            return [t for p in pending for t in p.get(timeout=600)]


def bench_memory(cases: int, searches: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qdrant"
        importer = SharedFolderMemory(folder, HashEmbedder())
        importer.import_cases(synthetic_cases(cases, seed=3))
        importer.close()
        print(f"case memory: {cases} cases, {searches} searches per process, {runs} runs")
        medians: dict[int, float] = {}
        for processes in (1, 4):
            samples = [_search_times(folder, searches, processes) for _ in range(runs)]
            medians[processes] = statistics.median(statistics.median(s) for s in samples)
            worst = max(max(s) for s in samples)
            print(
                f"  {processes} process{'es' if processes > 1 else ''} searching: "
                f"median {medians[processes]:7.1f} ms, worst {worst:7.1f} ms a search"
            )
        print(f"  4 at once / alone: {medians[4] / medians[1]:.2f}× the median search time")


def _race_files(folder: Path, orders: int) -> tuple[Path, Path]:
    case = _example("EX-inject-stock-012")
    world = dict(case["world"])
    for row in world["inventory"]:
        if row["sku"] == "HDP-BT-200":
            row["on_hand"] = orders // 2 if row["warehouse_id"] == "WH-SZX" else 0
    rows = []
    for i in range(orders):
        order = json.loads(json.dumps(case["order"]))
        order.pop("notes", None)
        order["order_id"] = f"B-{i:04d}"
        order["customer"]["id"] = f"C-{i:04d}"
        order["lines"][0].update(line_id=f"B-{i:04d}-1", qty=1)
        rows.append(order)
    world_path = folder / "world.json"
    world_path.write_text(json.dumps(world, ensure_ascii=False), encoding="utf-8")
    orders_path = folder / "orders.jsonl"
    orders_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return world_path, orders_path


def _race(orders: int, processes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        world, orders_path = _race_files(folder, orders)
        env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "config")}
        args = [EXDESK, "run", str(orders_path), "--world", str(world)]
        args += ["--data-dir", str(folder / "desk"), "--out", os.devnull]
        began = time.perf_counter()
        procs = [
            subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(processes)
        ]
        for proc in procs:
            _, error = proc.communicate(timeout=900)
            if proc.returncode != 0:
                raise SystemExit(f"exdesk run failed: {error.decode(errors='replace')}")
        return time.perf_counter() - began


def bench_runs(orders: int, runs: int) -> None:
    print(f"exdesk run: {orders} orders competing for {orders // 2} units, {runs} runs")
    medians = {}
    for processes in (1, 4):
        times = [_race(orders, processes) for _ in range(runs)]
        medians[processes] = statistics.median(times)
        print(
            f"  {processes} process{'es' if processes > 1 else ''} (each given every order): "
            f"median {medians[processes]:6.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})"
        )
    print(f"  4 at once / 1 alone: {medians[4] / medians[1]:.2f}× the wall time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--searches", type=int, default=40)
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = max(1, min(args.runs, 10))
    bench_memory(args.cases, args.searches, runs)
    bench_runs(args.orders, runs)


if __name__ == "__main__":
    main()
