"""The tools benchmark runs and reports every figure it names (what they are is measured by
`python -m evals.bench_tools`, never asserted)."""

from __future__ import annotations

from evals.bench_tools import KINDS, http_figures


def test_the_tools_benchmark_reports_each_kind_on_both_sides() -> None:
    figures = http_figures(calls=2, rounds=1)
    for kind in KINDS:
        assert figures[f"tools.{kind}.simulated_ms"] > 0
        assert figures[f"tools.{kind}.http_ms"] > 0
        assert figures[f"tools.{kind}.ratio"] > 0
