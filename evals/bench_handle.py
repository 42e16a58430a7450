"""Benchmark: handling exceptions one order at a time, on the embedded defaults (SQLite, the
local case memory) with 5,000 past cases in the case memory.

    python -m evals.bench_handle [--quick]

Each run submits and handles fresh exception orders of the peak world (``evals.peak``) through
``service.usecases.handle``, the way ``POST /orders`` and ``exdesk run`` hand an exception to
the agent: L1 orders (a payment retried, a warehouse reallocated, an address repaired, an
invoice attached: the plan executes) and L2 orders (an HS code to fix: the plan waits for two
approvals), interleaved. Each order's latency is timed from submit to the result, and counts
as L1 or L2 by what the order's plans did (the past cases move a few orders' top plan to
another tier).

- ``handle.exceptions_per_s``: exception orders handled per second in a run;
- ``handle.l1_p50_ms``, ``handle.l1_p99_ms``, ``handle.l2_p50_ms``, ``handle.l2_p99_ms``:
  percentiles of the latencies of the run's L1 and L2 orders.

Medians over 3 runs (each with orders of its own). The past cases come from
``evals.history`` (imported before the runs, not timed). ``--quick``: 500 past cases and fewer
orders a run (the JSON says so).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from domain.models import DecisionStatus, Order, Tier, World
from evals import embedded, peak
from evals.history import generate
from service import usecases
from service.wiring import Exdesk

L1_KINDS = tuple(k for k, (_, tier) in peak.EXCEPTIONS.items() if tier == "L1")
L2_KINDS = tuple(k for k, (_, tier) in peak.EXCEPTIONS.items() if tier == "L2")


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"past_cases": 500, "l1_orders": 12, "l2_orders": 4, "runs": 3}
    return {"past_cases": 5_000, "l1_orders": 200, "l2_orders": 100, "runs": 3}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _orders(run: int, size: dict[str, int]) -> list[tuple[Tier, Order]]:
    l1 = [
        (Tier.L1, Order.model_validate(body))
        for _, body in peak.orders(
            size["l1_orders"], 1.0, seed=run, prefix=f"H{run}A", kinds=L1_KINDS
        )
    ]
    l2 = [
        (Tier.L2, Order.model_validate(body))
        for _, body in peak.orders(
            size["l2_orders"], 1.0, seed=run, prefix=f"H{run}B", kinds=L2_KINDS
        )
    ]
    mixed: list[tuple[Tier, Order]] = []
    step = max(1, len(l1) // max(1, len(l2)))
    while l1 or l2:
        mixed += [l1.pop(0) for _ in range(min(step, len(l1)))]
        if l2:
            mixed.append(l2.pop(0))
    return mixed


def tier_of(result: Any) -> Tier:
    """L1 when every plan of the order executed at once; L2 when one waits for approvals at
    L2 (the past cases may move an order's top plan to one of another tier). Anything else
    (a plan failed or was skipped) is a broken run, not a figure."""
    got = [(d.tier, d.status) for d in result.decisions.values()]
    if got and all(t == Tier.L1 and s == DecisionStatus.EXECUTED for t, s in got):
        return Tier.L1
    if any(t == Tier.L2 and s == DecisionStatus.AWAITING_APPROVAL for t, s in got):
        return Tier.L2
    raise RuntimeError(f"{result.order_id}: neither L1 executed nor L2 waiting: {got}")


def one_run(desk: Exdesk, run: int, size: dict[str, int]) -> dict[str, float]:
    latencies: dict[Tier, list[float]] = {Tier.L1: [], Tier.L2: []}
    orders = _orders(run, size)
    began = time.perf_counter()
    for _, order in orders:
        start = time.perf_counter()
        result = usecases.handle(desk, "peak", order)
        latencies[tier_of(result)].append((time.perf_counter() - start) * 1000)
    took = time.perf_counter() - began
    return {
        "handle.exceptions_per_s": len(orders) / took,
        "handle.l1_p50_ms": percentile(latencies[Tier.L1], 50),
        "handle.l1_p99_ms": percentile(latencies[Tier.L1], 99),
        "handle.l2_p50_ms": percentile(latencies[Tier.L2], 50),
        "handle.l2_p99_ms": percentile(latencies[Tier.L2], 99),
    }


def figures(quick: bool) -> dict[str, float]:
    size = sizes(quick)
    with tempfile.TemporaryDirectory() as data:
        desk = Exdesk(embedded.settings(Path(data)))
        try:
            desk.case_memory.import_cases(generate(size["past_cases"]))
            usecases.load_world(desk, "peak", World.model_validate(peak.world()))
            runs = [one_run(desk, run, size) for run in range(1, size["runs"] + 1)]
            desk.checkpoint()
        finally:
            desk.close()
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_handle", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for key, value in figures(args.quick).items():
        print(f"{key:<28}{value:>10.1f}")


if __name__ == "__main__":
    main()
