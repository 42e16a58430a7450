"""Test a policy on history (`exdesk policy whatif`, service/policy_whatif.py).

The history is what an eval of the dev set's stockout, delay and multi-exception cases wrote.
The what-if summary of a lower L1 limit is checked against a computation of its own, made
here from the recorded decisions alone: each decision's top plan per exception (its strategy,
tier and money impact, as ``plans.ranked`` recorded them) and its order (lines and currency
rate, as ``order.detected`` recorded them), against the new limit. No replay code is called.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.audit_access import Opened, existing_log
from service.cli import app
from service.policy_whatif import whatif_on_history
from service.settings import Settings
from service.wiring import load_policy

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "evals" / "data" / "dev.jsonl"
POLICY = ROOT / "domain" / "policy.toml"
runner = CliRunner()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("history")
    cases = [
        line
        for line in DEV.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["id"].split("-")[1] in {"stock", "delay", "multi"}
    ]
    assert len(cases) > 100
    subset = data / "cases.jsonl"
    subset.write_text("\n".join(cases) + "\n", encoding="utf-8")
    args = ["eval", str(subset), "--out", str(data / "report.json"), "--data-dir", str(data)]
    result = runner.invoke(app, [*args, "--no-table"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return data


@pytest.fixture
def opened(history: Path) -> Iterator[Opened]:
    with existing_log(Settings(data_dir=history)) as log:
        yield log


def _policy(folder: Path, l1: int) -> Path:
    text = POLICY.read_text(encoding="utf-8")
    assert "l1_usd = 50" in text and "l2_usd = 2000" in text
    path = folder / f"l1-{l1}.toml"
    path.write_text(
        text.replace("l1_usd = 50", f"l1_usd = {l1}").replace(
            'version = "2026-12-06.1"', f'version = "l1-{l1}"'
        ),
        encoding="utf-8",
    )
    return path


def _expected(opened: Opened, new_l1: Decimal) -> dict[str, Any]:
    """From the recorded decisions: which top plans cross the new L1 limit.

    A top plan recorded at L1 whose money impact is above the new limit needs L2 (its impact
    is below l2_usd, or it would not have been L1), and two approvals (approvals.L2). The
    voucher of notify_delay is the one impact the policy sets itself: capped at the L1 limit,
    so under the new one it is min(recorded, new limit), and never crosses it."""
    detected: dict[str, dict[str, Any]] = {}
    moved: dict[str, Any] = {}
    waited: set[str] = set()  # threads whose gate left something waiting for people
    for entry in opened.log.entries():
        payload = entry.payload
        if entry.event == "order.detected":
            detected[payload["thread_id"]] = payload
        elif entry.event == "gate.decided" and payload.get("awaiting"):
            waited.add(payload["thread_id"])
        elif entry.event == "plans.ranked":
            run = detected[payload["thread_id"]]
            for kind, plans in payload["plans"].items():
                if not plans or plans[0]["tier"] != "L1":
                    continue
                cost = Decimal(str(plans[0]["cost_usd"]))
                if plans[0]["strategy"] == "notify_delay":
                    cost = min(cost, new_l1)
                if cost > new_l1:
                    order, rate = run["order"], run["facts"]["fx_to_usd"]
                    value = sum(
                        Decimal(str(line["unit_price"])) * line["qty"] for line in order["lines"]
                    )
                    usd = (value * Decimal(str(rate[order["currency"]]))).quantize(Decimal("0.01"))
                    moved.setdefault(payload["thread_id"], (order["order_id"], usd, set()))[2].add(
                        kind
                    )
    return {
        "decisions": len(detected),
        "orders": sorted(o for o, _, _ in moved.values()),
        "usd": sum((usd for _, usd, _ in moved.values()), Decimal(0)),
        "approvals": 2 * sum(len(kinds) for _, _, kinds in moved.values()),
        "moves": sorted((o, k) for o, _, kinds in moved.values() for k in kinds),
        "new_waits": len(set(moved) - waited),
    }


@pytest.mark.parametrize("l1", [5, 10])
def test_the_summary_of_a_lower_l1_limit_is_what_the_recorded_amounts_say(
    opened: Opened, tmp_path: Path, l1: int
) -> None:
    policy = load_policy(_policy(tmp_path, l1))
    summary = whatif_on_history(opened.log.entries(), opened.log.clear_values, policy, days=30)
    expected = _expected(opened, Decimal(l1))
    assert expected["orders"], "the lower limit should move some decisions in this history"

    assert summary.decisions == expected["decisions"]
    assert summary.not_replayable == []
    assert sorted(d.order_id for d in summary.decisions_changed) == expected["orders"]
    moves = sorted((d.order_id, m.kind) for d in summary.decisions_changed for m in d.moves)
    assert moves == expected["moves"]
    assert summary.changed == summary.tier_changed == len(expected["orders"])
    assert summary.strategy_changed == 0  # ranking follows the policy's order, not the tier
    assert summary.new_waits == expected["new_waits"] > 0
    assert summary.approvals_added == expected["approvals"] and summary.approvals_removed == 0
    assert summary.moved_usd("L1→L2") == expected["usd"]
    assert set(summary.tier_moves) == {"L1→L2"}
    assert summary.tier_moves["L1→L2"]["orders"] == len(expected["orders"])
    for decision in summary.decisions_changed:
        assert all((m.tier_before, m.tier_after) == ("L1", "L2") for m in decision.moves)
        assert all(m.cost_before_usd > l1 for m in decision.moves)


def test_the_policy_the_history_was_decided_under_changes_nothing(opened: Opened) -> None:
    summary = whatif_on_history(opened.log.entries(), opened.log.clear_values, load_policy(POLICY))
    assert summary.decisions > 100 and summary.changed == 0
    assert summary.decisions_changed == [] and summary.tier_moves == {}
    assert summary.approvals_added == summary.approvals_removed == summary.new_waits == 0


def test_only_the_last_n_days_count(opened: Opened, tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, 5))
    later = datetime.now(UTC) + timedelta(days=10)
    summary = whatif_on_history(
        opened.log.entries(), opened.log.clear_values, policy, days=7, now=later
    )
    assert summary.decisions == 0 and summary.changed == 0
    assert summary.moved_usd("L1→L2") == 0
    summary = whatif_on_history(
        opened.log.entries(), opened.log.clear_values, policy, days=11, now=later
    )
    assert summary.decisions > 0 and summary.changed > 0


def test_the_cli_prints_the_summary_and_the_orders(history: Path, tmp_path: Path) -> None:
    policy = _policy(tmp_path, 5)
    result = runner.invoke(
        app, ["policy", "whatif", str(policy), "--data-dir", str(history), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    with existing_log(Settings(data_dir=history)) as opened:
        expected = _expected(opened, Decimal(5))
    assert Decimal(data["l1_to_l2_usd"]) == expected["usd"]
    assert sorted(d["order_id"] for d in data["decisions_changed"]) == expected["orders"]
    assert data["approvals_added"] == expected["approvals"] and data["days"] == 30

    result = runner.invoke(
        app, ["policy", "whatif", str(policy), "--data-dir", str(history), "--days", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "would change" in result.output and "L1→L2" in result.output
    for order in expected["orders"]:
        assert f"order {order}" in result.output


def test_bad_input_is_named(history: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(POLICY.read_text(encoding="utf-8").replace("l1_usd = 50", "l1_usd = -1"))
    result = runner.invoke(app, ["policy", "whatif", str(bad), "--data-dir", str(history)])
    assert result.exit_code == 2
    assert "bad.toml line" in result.output and "limits.l1_usd" in result.output
    good = _policy(tmp_path, 5)
    result = runner.invoke(
        app, ["policy", "whatif", str(good), "--data-dir", str(history), "--days", "0"]
    )
    assert result.exit_code == 2 and "days: 0 is not between 1 and" in result.output
    result = runner.invoke(
        app, ["policy", "whatif", str(good), "--data-dir", str(tmp_path / "nowhere")]
    )
    assert result.exit_code == 2 and "no such data dir" in result.output


def test_a_limit_replays_the_most_recent_decisions(opened: Opened, tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, 5))
    every = whatif_on_history(opened.log.entries(), opened.log.clear_values, policy)
    some = whatif_on_history(opened.log.entries(), opened.log.clear_values, policy, limit=40)
    assert some.decisions == 40 and some.in_window == every.decisions == every.in_window
    # the last 40 decisions of the log, and of the changed ones exactly those among them
    last = sorted(d.seq for d in every.decisions_changed)
    detected = [e.seq for e in opened.log.entries() if e.event == "order.detected"]
    assert [d.seq for d in some.decisions_changed] == [s for s in last if s >= detected[-40]]
    result = runner.invoke(
        app,
        [
            "policy",
            "whatif",
            str(_policy(tmp_path, 5)),
            "--data-dir",
            str(opened.settings.data_dir),
            "--limit",
            "40",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"the most recent 40 of the {every.decisions} decisions" in result.output
    result = runner.invoke(
        app,
        [
            "policy",
            "whatif",
            str(_policy(tmp_path, 5)),
            "--data-dir",
            str(opened.settings.data_dir),
            "--limit",
            "0",
        ],
    )
    assert result.exit_code == 2 and "limit: 0 is not a number of decisions" in result.output
