"""A small recorded history for the policy page's tests: an eval of some dev-set cases,
among them stockouts whose split shipment costs 9 to 15 USD (L1 under the shipped 50 USD
limit, L2 under 5)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app

DEV = Path(__file__).resolve().parents[2] / "evals" / "data" / "dev.jsonl"
CASES = (
    "DEV-stock-split-l1-030",
    "DEV-stock-split-l1-105",
    "DEV-stock-split-l1-261",
    "DEV-multi-subst-retry-001",
)


def record_history(data_dir: Path, cases: tuple[str, ...] = CASES) -> dict[str, dict]:
    """Evaluate ``cases`` into ``data_dir``; the cases by id."""
    lines = {}
    for line in DEV.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if case["id"] in cases:
            lines[case["id"]] = case
    assert set(lines) == set(cases)
    data_dir.mkdir(parents=True, exist_ok=True)
    subset = data_dir / "cases.jsonl"
    subset.write_text("".join(json.dumps(lines[c]) + "\n" for c in cases), encoding="utf-8")
    out = data_dir / "report.json"
    args = ["eval", str(subset), "--out", str(out), "--data-dir", str(data_dir), "--no-table"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return lines
