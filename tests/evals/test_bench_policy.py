"""The policy benchmark runs and reports every figure it names (what they are is measured by
`python -m evals.bench_policy`, never asserted)."""

from __future__ import annotations

import math

from evals import bench_policy


def test_the_policy_benchmark_reports_its_figures() -> None:
    figures = bench_policy.figures(quick=True)
    assert set(figures) == {
        "policy.refresh_us",
        "policy.activate_ms_empty",
        "policy.activate_ms_open",
        "policy.rebind_ms_per_proposal",
    }
    assert all(math.isfinite(v) for v in figures.values()), figures
    assert figures["policy.refresh_us"] > 0 and figures["policy.activate_ms_open"] > 0
