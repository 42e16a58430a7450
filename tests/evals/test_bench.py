"""`exdesk bench`: the driver finds the figures modules, judges figures against the goals, and
`--quick` runs end to end writing every figure as a number (what the figures are is measured,
never asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from evals import bench, embedded

EXDESK = str(Path(sys.executable).with_name("exdesk"))

# The keys the bench helper's modules promise (issue 13); other modules add their own.
BENCH_KEYS = {
    "audit.append_per_s",
    "audit.append_baseline_per_s",
    "audit.verify_per_s",
    "audit.verify_baseline_per_s",
    "run.orders_per_s",
    "run.peak_rss_mb",
    "screen.orders_per_s",
    "screen.baseline_parse_per_s",
    "screen.rate_1k_per_s",
    "screen.rate_100k_per_s",
    "handle.exceptions_per_s",
    "handle.l1_p50_ms",
    "handle.l1_p99_ms",
    "handle.l2_p50_ms",
    "handle.l2_p99_ms",
}


def test_bench_quick_writes_the_machine_versions_and_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    done = subprocess.run(
        [EXDESK, "bench", "--quick", "--out", str(results)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(results.read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert data["machine"]["cores"] >= 1 and data["machine"]["memory_mb"] > 0
    assert data["versions"]["python"] and data["versions"]["sqlalchemy"]
    assert data["versions"]["langgraph"] and data["versions"]["pydantic"]
    assert data["errors"] == {}
    figures = data["figures"]
    assert figures.keys() >= BENCH_KEYS, BENCH_KEYS - figures.keys()
    for key, value in figures.items():
        assert isinstance(value, int | float) and math.isfinite(value), key
    labels = {row["figure"] for row in data["goals"]}
    assert "audit.append_per_s / audit.append_baseline_per_s" in labels
    assert "exdesk bench" in done.stdout and "audit.verify_per_s" in done.stdout


def test_discover_finds_figures_modules_and_only_narrows_them() -> None:
    every = {bench.area(m) for m in bench.discover()}
    assert {"audit", "handle", "run", "screen", "tools"} <= every
    assert {bench.area(m) for m in bench.discover(["aud"])} == {"audit"}
    assert {bench.area(m) for m in bench.discover(["audit.verify_per_s"])} == {"audit"}
    assert bench.discover(["no-such-area"]) == []


def test_goals_judge_ratios_and_either_direction() -> None:
    rows = {
        row["figure"]: row
        for row in bench.judged(
            {
                "run.peak_rss_mb": 500.0,
                "audit.verify_per_s": 90.0,
                "audit.verify_baseline_per_s": 100.0,
                "handle.exceptions_per_s": 50.0,
            }
        )
    }
    assert rows["run.peak_rss_mb"]["met"] is True and rows["run.peak_rss_mb"]["aim_met"] is False
    ratio = rows["audit.verify_per_s / audit.verify_baseline_per_s"]
    assert ratio["value"] == pytest.approx(0.9) and ratio["aim_met"] is True
    assert rows["handle.exceptions_per_s"]["met"] is False
    assert rows["run.orders_per_s"]["value"] is None and rows["run.orders_per_s"]["met"] is None


def test_a_failing_or_malformed_module_is_reported_and_the_others_still_count() -> None:
    good, broken, malformed = (
        ModuleType("evals.bench_a"),
        ModuleType("evals.bench_b"),
        ModuleType("evals.bench_c"),
    )
    good.figures = lambda quick: {"a.per_s": 3}  # type: ignore[attr-defined]

    def fails(quick: bool) -> dict[str, float]:
        raise RuntimeError("no database")

    broken.figures = fails  # type: ignore[attr-defined]
    malformed.figures = lambda quick: {"c.ms": float("nan")}  # type: ignore[attr-defined]
    outcome = bench.run_modules([good, broken, malformed], quick=True)
    assert outcome.figures == {"a.per_s": 3.0}
    assert outcome.errors["b"] == "RuntimeError: no database"
    assert "not a finite number" in outcome.errors["c"]


def test_benchmarks_ignore_the_users_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXDESK_DATABASE_URL", "postgresql+psycopg://someone@prod/desk")
    monkeypatch.setenv("EXDESK_SHOP_URL", "https://shop.example")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://model.example")
    monkeypatch.setenv("PATH_OF_SOMETHING_ELSE", "kept")
    settings = embedded.settings(tmp_path, durability="exit")
    assert settings.database_url is None and settings.shop_url is None
    assert settings.openai_base_url is None and settings.data_dir == tmp_path
    assert os.environ["EXDESK_DATABASE_URL"].startswith("postgresql")  # put back
    env = embedded.environment(tmp_path / "d")
    assert env["EXDESK_DATA_DIR"] == str(tmp_path / "d")
    assert env["PATH_OF_SOMETHING_ELSE"] == "kept"
    assert not {"EXDESK_DATABASE_URL", "EXDESK_SHOP_URL", "OPENAI_BASE_URL"} & env.keys()


def test_a_results_file_reads_as_markdown_tables() -> None:
    figures = {"run.orders_per_s": 1500.0, "audit.verify_per_s": 40.0}
    figures["audit.verify_baseline_per_s"] = 100.0
    text = bench.markdown({"figures": figures, "goals": bench.judged(figures)})
    assert "| `run.orders_per_s` | 1,500 | ≥ 1,000 | ≥ 2,117 | met |" in text
    assert "| `audit.verify_per_s / audit.verify_baseline_per_s` | 0.4 |" in text
    assert "**missed**" in text and "| `handle.l1_p99_ms` | not measured |" in text
    assert "| `audit.verify_baseline_per_s` | 100 |" in text


def test_only_naming_no_benchmark_says_which_there_are(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from service.cli import app

    result = CliRunner().invoke(app, ["bench", "--only", "nothing", "--out", str(tmp_path / "f")])
    assert result.exit_code == 2
    assert "no benchmark matches --only nothing; there are: address, audit" in result.output
    assert not (tmp_path / "f").exists()
