"""The stream workers' benchmark at a tiny size: it runs end to end on NATS and PostgreSQL
(127.0.0.1) and gives every figure as a positive number. What the figures are is measured by
`exdesk bench`, never asserted."""

from __future__ import annotations

import os

import pytest

from evals import bench, bench_workers
from tests.conftest import PG_ENV

KEYS = {
    "workers.orders_per_s_1",
    "workers.orders_per_s_2",
    "workers.exception_decisions_per_s_1",
    "workers.exception_decisions_per_s_2",
    "workers.paced_rate_per_s",
    "workers.p50_ms_at_80pct",
    "workers.p99_ms_at_80pct",
}


def test_the_workers_benchmark_gives_every_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    database = os.environ.get(PG_ENV)
    if not database:
        pytest.skip(f"{PG_ENV} is unset: the workers' benchmark runs on PostgreSQL")
    monkeypatch.setenv("EXDESK_BENCH_DATABASE_URL", database)
    nats_url, _ = bench_workers.where()
    if not bench_workers._reachable(nats_url, 4222):
        pytest.skip(f"no NATS at {nats_url}: start nats-server -js")
    figures = bench_workers.measure(orders=20, runs=1)  # one of them an exception
    assert figures.keys() == KEYS
    assert all(value > 0 for value in figures.values()), figures
    checked = bench.checked(bench_workers, figures)
    assert checked == figures


def test_the_workers_figures_are_judged_against_the_goals() -> None:
    rows = {
        row["figure"]: row
        for row in bench.judged(
            {
                "workers.orders_per_s_1": 100.0,
                "workers.orders_per_s_2": 150.0,
                "workers.p99_ms_at_80pct": 400.0,
            }
        )
    }
    ratio = rows["workers.orders_per_s_2 / workers.orders_per_s_1"]
    assert ratio["value"] == pytest.approx(1.5) and ratio["met"] is False
    assert rows["workers.p99_ms_at_80pct"]["met"] is True


def test_the_sizes_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXDESK_BENCH_WORKERS_ORDERS", raising=False)
    assert bench_workers.sizes(False)["orders"] == 50_000
    assert bench_workers.sizes(True)["orders"] < 1000
    monkeypatch.setenv("EXDESK_BENCH_WORKERS_ORDERS", "77")
    assert bench_workers.sizes(True)["orders"] == 77
