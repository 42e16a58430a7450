"""exdesk as separate processes: four `exdesk run` at once on one data dir, processes killed
(SIGKILL) mid-run and run again, a thread paused by one process resumed by another, processes
starting together on a new data dir. On SQLite and, when EXDESK_TEST_DATABASE_URL is set, on
PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from domain.models import ProposalStatus
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from store.schema import tool_calls
from tests.conftest import PG_ENV
from tests.factories import example

EXDESK = str(Path(sys.executable).with_name("exdesk"))


@dataclass(frozen=True)
class Install:
    """Where the processes of one test keep their state."""

    data_dir: Path
    env: dict[str, str]

    def run(self, *args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [EXDESK, *args, "--data-dir", str(self.data_dir)],
            env={**self.env, **(extra or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def call(self, *args: str, extra: dict[str, str] | None = None) -> tuple[int, str]:
        proc = self.run(*args, extra=extra)
        output, _ = proc.communicate(timeout=600)
        return proc.returncode, output

    def app(self) -> Exdesk:
        database = self.env.get("EXDESK_DATABASE_URL")
        return Exdesk(Settings(data_dir=self.data_dir, database_url=database))


@pytest.fixture(params=["sqlite", "postgresql"])
def install(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Install]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("EXDESK_") or k == PG_ENV
    }
    env["EXDESK_EMBEDDING_MODEL"] = "hash"
    if request.param == "sqlite":
        yield Install(tmp_path / "desk", env)
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
    with scratch_schema(base, "exdesk_procs") as schema:
        yield Install(tmp_path / "desk", {**env, "EXDESK_DATABASE_URL": in_schema(base, schema)})


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _contested(tmp_path: Path, orders: int = 40, units: int = 20) -> tuple[Path, list[Path]]:
    """``orders`` one-unit orders for a SKU that only WH-SZX stocks, ``units`` of it."""
    case = example("EX-inject-stock-012")
    world = case["world"]
    for row in world["inventory"]:
        if row["sku"] == "HDP-BT-200":
            row["on_hand"] = units if row["warehouse_id"] == "WH-SZX" else 0
    world_path = tmp_path / "world.json"
    world_path.write_text(json.dumps(world, ensure_ascii=False))
    rows = []
    for i in range(orders):
        order = json.loads(json.dumps(case["order"]))
        order.pop("notes")
        order["order_id"] = f"RACE-{i:03d}"
        order["customer"]["id"] = f"C-{i:03d}"
        order["lines"][0].update(line_id=f"RACE-{i:03d}-1", qty=1)
        order["payment"]["amount"] = order["lines"][0]["unit_price"]
        rows.append(order)
    files = []
    for n in range(4):  # every process gets every order, each in its own order
        shuffled = rows[:]
        random.Random(n).shuffle(shuffled)
        files.append(_write_jsonl(tmp_path / f"orders-{n}.jsonl", shuffled))
    return world_path, files


def _past_cases(tmp_path: Path) -> Path:
    cases = [
        {
            "case_id": f"PC-{i}",
            "kind": "stockout",
            "summary": f"WH-SHA could not ship headphones, case {i}",
            "strategy": "reallocate_warehouse",
            "outcome": {"success": True},
            "resolved_at": "2026-10-01T09:00:00+08:00",
        }
        for i in range(6)
    ]
    return _write_jsonl(tmp_path / "past.jsonl", cases)


def _audit(app: Exdesk) -> list[Any]:
    return list(app.audit.entries())


def _check_consistent(app: Exdesk) -> list[Any]:
    """State and audit agree: every action the log calls executed is in the store and the
    other way round; the log verifies with the installation's key; nothing is stuck."""
    entries = _audit(app)
    logged = {e.payload["key"] for e in entries if e.event == "tool.called"}
    with app.engine.connect() as conn:
        stored = set(conn.execute(select(tool_calls.c.key)).scalars())
    assert logged == stored
    verdict = app.audit.verify(app.public_key())
    assert verdict.ok, verdict.problem
    assert app.review.find(status=ProposalStatus.APPROVED) == []
    return entries


def test_four_processes_race_for_twenty_units(install: Install, tmp_path: Path) -> None:
    """Every process loads the world file too: a reload keeps what exdesk holds, so the
    units stay 20 however the loads and the reservations interleave."""
    world, files = _contested(tmp_path)
    code, output = install.call("knowledge", "import", str(_past_cases(tmp_path)))
    assert code == 0, output
    procs = [install.run("run", str(f), "--world", str(world)) for f in files]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert all("40 orders handled, 0 lines skipped" in o for o in outputs), outputs
    app = install.app()
    try:
        entries = _check_consistent(app)
        decided = Counter(e.payload["order_id"] for e in entries if e.event == "gate.decided")
        assert len(decided) == 40 and set(decided.values()) == {1}
        retrieved = [e for e in entries if e.event == "cases.retrieved"]
        assert len(retrieved) == 40 and all(e.payload["cases"]["stockout"] for e in retrieved)
        reallocated = [
            e.payload["order_id"]
            for e in entries
            if e.event == "plan.finished"
            and e.payload["ok"]
            and e.payload["strategy"] == "reallocate_warehouse"
        ]
        assert len(reallocated) == len(set(reallocated)) == 20
        held = {(r["warehouse_id"], r["sku"]): r["held"] for r in app.worlds.stock_rows("default")}
        assert held[("WH-SZX", "HDP-BT-200")] == 20
        for order_id in reallocated:
            assert app.orders.current("default", order_id).fulfillment.warehouse_id == "WH-SZX"  # type: ignore[union-attr]
        code, output = install.call("audit", "verify")
        assert code == 0 and output.startswith("ok: "), output
    finally:
        app.close()
