"""Replay and what-if over the log an eval of the dev set wrote.

- Replay derives all 320 decisions again from the recorded inputs, with no tool and no model,
  and every one comes out the same.
- The what-if of a policy with a lower L1 limit lists exactly the decisions whose tier rises.
  The list is computed independently: the dev set is run again, for real, under that policy,
  and the two reports' top-plan tiers are compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.context import Checkers
from agent.replay import replay
from audit.log import AuditLog
from service.audit_access import Opened, existing_log
from service.cli import app
from service.replay import checkers, replay_log, what_if_log
from service.settings import Settings
from tools.ports import AddressCheck

DEV = Path(__file__).resolve().parents[2] / "evals" / "data" / "dev.jsonl"
POLICY = Path(__file__).resolve().parents[2] / "domain" / "policy.toml"
runner = CliRunner()


def _eval(data: Path, policy: Path | None = None) -> dict[str, Any]:
    args = ["eval", str(DEV), "--out", str(data / "report.json"), "--data-dir", str(data)]
    if policy is not None:
        args += ["--policy", str(policy)]
    result = runner.invoke(app, [*args, "--no-table"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dict(json.loads((data / "report.json").read_text()))


@pytest.fixture(scope="module")
def dev_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    data = tmp_path_factory.mktemp("dev")
    return data, _eval(data)


@pytest.fixture
def opened(dev_run: tuple[Path, dict[str, Any]]) -> Iterator[Opened]:
    with existing_log(Settings(data_dir=dev_run[0])) as log:
        yield log


def _low_l1_policy(folder: Path) -> Path:
    text = POLICY.read_text(encoding="utf-8")
    assert "l1_usd = 50" in text
    path = folder / "low-l1.toml"
    path.write_text(
        text.replace("l1_usd = 50", "l1_usd = 10").replace(
            'version = "2026-12-06.1"', 'version = "2026-12-06.1-low-l1"'
        ),
        encoding="utf-8",
    )
    return path


def test_replay_of_the_dev_set_reproduces_every_decision(
    opened: Opened, dev_run: tuple[Path, dict[str, Any]]
) -> None:
    report = replay_log(opened)
    assert report.decisions == len(dev_run[1]["cases"]) == 320
    assert report.mismatches == [] and report.not_replayable == []
    assert report.reproduced == 320
    assert report.notes == []


def test_the_cli_prints_the_replay_as_json(dev_run: tuple[Path, dict[str, Any]]) -> None:
    result = runner.invoke(app, ["audit", "replay", "--data-dir", str(dev_run[0]), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["decisions"], data["reproduced"], data["mismatches"]) == (320, 320, [])


def test_what_if_a_lower_l1_limit_lists_exactly_the_decisions_whose_tier_rises(
    opened: Opened, dev_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    policy = _low_l1_policy(tmp_path)
    result = what_if_log(opened, policy)
    listed = {(c.order_id, c.kind) for c in result.changes if c.field == "tier"}
    assert all(c.after > c.before for c in result.changes if c.field == "tier")  # L1 < L2 < L3

    # independently: run the dev set for real under the new policy and compare the reports
    before = dev_run[1]
    after = _eval(tmp_path / "low", policy)
    assert after["summary"]["policy"].startswith("2026-12-06.1-low-l1@")
    order_of = {c["id"]: c["order_after"]["order_id"] for c in before["cases"]}
    rises = set()
    for old, new in zip(before["cases"], after["cases"], strict=True):
        assert old["id"] == new["id"]
        tiers = {e["kind"]: e["plans"][0]["tier"] for e in old["exceptions"] if e["plans"]}
        for entry in new["exceptions"]:
            was = tiers.get(entry["kind"])
            if entry["plans"] and was and int(entry["plans"][0]["tier"][1]) > int(was[1]):
                rises.add((order_of[old["id"]], entry["kind"]))
    assert rises, "the lower limit should raise some tiers in the dev set"
    assert listed == rises
    totals = result.totals()
    assert totals["tier_up"] == len(rises) and "tier_down" not in totals
    approvals = {
        (c.order_id, c.kind): (c.before, c.after) for c in result.changes if c.field == "approvals"
    }
    assert set(approvals) == rises and set(approvals.values()) == {(0, 2)}


def test_the_cli_what_if_prints_totals(
    dev_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    policy = _low_l1_policy(tmp_path)
    result = runner.invoke(
        app, ["audit", "replay", "--data-dir", str(dev_run[0]), "--policy", str(policy)]
    )
    assert result.exit_code == 0, result.output
    assert "decisions would change" in result.output and "tier_up" in result.output


class _NothingValidates:
    """An address checker that rejects every address: replay must notice the difference."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def check(self, fields: dict[str, str]) -> AddressCheck:
        verdict = self._real.check(fields)
        return AddressCheck(valid=False, errors={**verdict.errors, "postal_code": "invalid"})

    def repair(self, fields: dict[str, str]) -> Any:
        return None


def test_replay_reports_decisions_that_come_out_differently(opened: Opened) -> None:
    real = checkers()
    broken = Checkers(address=_NothingValidates(real.address), hs=real.hs)  # type: ignore[arg-type]
    report = replay(opened.log.entries(), broken, opened.log.clear_values)
    assert report.decisions == 320 and report.reproduced < 320
    first = report.mismatches[0]
    assert first.what == "findings" and first.seq > 0 and first.order_id.startswith("DEV-")


def test_an_order_whose_personal_data_was_erased_is_not_replayable(
    dev_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dev_run[0], copy)
    key = Settings(data_dir=dev_run[0]).signing_key_path()  # the copy keeps the log's key
    with existing_log(Settings(data_dir=copy, signing_key=key)) as opened:
        order_id = dev_run[1]["cases"][0]["order_after"]["order_id"]
        assert opened.log.erase(order_id, actor="operator", reason="erasure request") > 0
        report = replay_log(opened)
        assert report.decisions == 320 and report.mismatches == []
        assert [s["order_id"] for s in report.not_replayable] == [order_id]
        assert "erased" in report.not_replayable[0]["why"]
        assert opened.log.verify(opened.key.public_key()).ok


def test_audit_log_entries_hold_no_clear_personal_data(
    dev_run: tuple[Path, dict[str, Any]],
) -> None:
    cases = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines()[:40]]
    values = set()
    for case in cases:
        order = case["order"]
        for part in (order.get("customer", {}), order.get("ship_to", {})):
            for key in ("name", "email", "phone", "street_address"):
                if isinstance(part.get(key), str) and len(part[key]) > 6:
                    values.add(part[key])
    assert values
    with existing_log(Settings(data_dir=dev_run[0])) as opened:
        log: AuditLog = opened.log
        text = "\n".join(json.dumps(e.payload, ensure_ascii=False) for e in log.entries())
    leaked = sorted(v for v in values if v in text)
    assert leaked == []
