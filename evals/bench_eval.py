"""Benchmark: the whole dev set through `exdesk eval`'s harness on the embedded defaults.

    python -m evals.bench_eval [--cases evals/data/dev.jsonl] [--runs 3]

Each run starts from an empty data dir. Prints the median wall time per durability mode
and the ratio between them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from evals import embedded
from evals.cases import EvalCase
from evals.harness import run_eval
from service.inputs import read_jsonl
from service.wiring import Exdesk

DEV = Path(__file__).parent / "data" / "dev.jsonl"


def one_run(cases: list[EvalCase], durability: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        app = Exdesk(embedded.settings(Path(tmp), durability=durability))
        try:
            report = run_eval(app, cases)
        finally:
            app.close()
        elapsed = time.perf_counter() - started
    assert report["summary"]["cases"] == len(cases)
    return elapsed


def figures(quick: bool) -> dict[str, float]:
    """For ``exdesk bench``: ``eval.cases_per_s``, the dev set (its first 12 cases when quick)
    through the harness from an empty data dir, start-up included, median of 3 runs."""
    cases = [p.value for p in read_jsonl(DEV, EvalCase) if p.value is not None]
    cases = cases[:12] if quick else cases
    return {
        "eval.cases_per_s": len(cases) / statistics.median(one_run(cases, "sync") for _ in range(3))
    }


def sizes(quick: bool) -> dict[str, int]:
    return {"cases": 12 if quick else sum(1 for _ in DEV.open(encoding="utf-8")), "runs": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=Path, default=DEV)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cases = [p.value for p in read_jsonl(args.cases, EvalCase) if p.value is not None]
    print(f"{len(cases)} cases from {args.cases}, {args.runs} runs each (start-up included)")
    medians: dict[str, float] = {}
    for durability in ("sync", "exit"):
        times = [one_run(cases, durability) for _ in range(max(1, min(args.runs, 10)))]
        medians[durability] = statistics.median(times)
        rate = len(cases) / medians[durability]
        print(
            f"  durability={durability:<5} median {medians[durability]:6.2f} s  "
            f"({rate:5.1f} cases/s; runs: {', '.join(f'{t:.2f}' for t in times)})"
        )
    print(f"  sync / exit: {medians['sync'] / medians['exit']:.2f}×")


if __name__ == "__main__":
    main()
