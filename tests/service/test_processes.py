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
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXDESK_") or k == PG_ENV}
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
        decided = Counter(e.payload["order_id"] for e in entries if e.event == "order.detected")
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


CRASH_TEMPLATES = (
    "EX-clean-001",
    "EX-addr-fix-002",
    "EX-addr-confirm-003",
    "EX-customs-bad_hs-005",
    "EX-payment-008",
    "EX-delay-009",
    "EX-inject-stock-012",
)
MESSAGES = {"EX-addr-confirm-003": "customer", "EX-payment-008": "payment_link"}


def _crash_scenario(tmp_path: Path, per_template: int) -> tuple[Path, Path, dict[str, str]]:
    """Orders made from the contract examples (messages, fixes, reservations, proposals),
    all in one world with stock enough for every reallocation. Returns the world, the orders
    and each order's template."""
    world = example("EX-clean-001")["world"]
    for row in world["inventory"]:
        row["on_hand"] = (
            0 if (row["warehouse_id"], row["sku"]) == ("WH-SHA", "HDP-BT-200") else 10**6
        )
    events: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    template_of: dict[str, str] = {}
    for i in range(per_template):
        for name in CRASH_TEMPLATES:
            case = example(name)
            order = case["order"]
            new_id = f"K{i:03d}-{order['order_id']}"
            for n, line in enumerate(order["lines"]):
                line["line_id"] = f"{new_id}-{n}"
            events += [dict(e, order_id=new_id) for e in case["world"].get("events", [])]
            order.update(order_id=new_id)
            order["customer"]["id"] = f"C-{new_id}"
            orders.append(order)
            template_of[new_id] = name
    world["events"] = events
    world_path = tmp_path / "world.json"
    world_path.write_text(json.dumps(world, ensure_ascii=False))
    return world_path, _write_jsonl(tmp_path / "orders.jsonl", orders), template_of


def test_a_run_killed_again_and_again_does_everything_once(
    install: Install, tmp_path: Path
) -> None:
    world, orders, template_of = _crash_scenario(tmp_path, per_template=43)  # 301 orders
    code, output = install.call("audit", "checkpoint")  # migrate and make the key first
    assert code == 0, output
    rng = random.Random(7)
    kills = 0
    for _ in range(7):
        proc = install.run("run", str(orders), "--world", str(world), "--out", "/dev/null")
        time.sleep(rng.uniform(2.0, 5.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=600)
    assert kills >= 3
    code, output = install.call("run", str(orders), "--world", str(world), "--out", "/dev/null")
    assert code == 0, output
    assert f"{len(template_of)} orders handled, 0 lines skipped" in output
    app = install.app()
    try:
        entries = _check_consistent(app)
        decided = Counter(e.payload["order_id"] for e in entries if e.event == "order.detected")
        assert set(decided) == set(template_of) and set(decided.values()) == {1}
        assert {e.payload["order_version"] for e in entries if e.event == "order.detected"} == {1}
        sent = Counter(
            (m["order_id"], m["channel"], m.get("template"))
            for m in app.backend("default").outbox()
        )
        assert set(sent.values()) == {1}  # no message twice
        for order_id, name in template_of.items():
            channels = [c for (o, c, _t) in sent if o == order_id]
            if name in MESSAGES:
                trail = [
                    (e.event, e.payload.get("key"), e.payload.get("error"), e.payload.get("detail"))
                    for e in entries
                    if e.payload.get("order_id") == order_id
                    or order_id in json.dumps(e.payload.get("args", {}))
                ]
                if MESSAGES[name] not in channels:
                    from agent.runner import thread_id_for

                    tid = thread_id_for(app.desk("default"), order_id, 1)
                    graph = app.runner._graph
                    config = {"configurable": {"thread_id": tid}}
                    history = [
                        (h.metadata.get("step"), h.next, sorted(h.values), h.tasks)
                        for h in graph.get_state_history(config)
                    ]
                    raise AssertionError((order_id, channels, trail, history))
        proposals = app.review.find()
        assert {p.status for p in proposals} == {ProposalStatus.PENDING}
        assert len(proposals) == sum(
            1 for n in template_of.values() if n == "EX-customs-bad_hs-005"
        )
        held = {(r["warehouse_id"], r["sku"]): r["held"] for r in app.worlds.stock_rows("default")}
        reallocations = sum(1 for n in template_of.values() if n == "EX-inject-stock-012")
        assert held[("WH-SZX", "HDP-BT-200")] == 3 * reallocations
    finally:
        app.close()


@pytest.mark.parametrize("when", ["crash-before", "crash-after"])
def test_an_approval_killed_at_its_first_action_is_finished(
    install: Install, tmp_path: Path, when: str
) -> None:
    case = example("EX-customs-bad_hs-005")
    world = tmp_path / "world.json"
    world.write_text(json.dumps(case["world"]))
    orders = _write_jsonl(tmp_path / "orders.jsonl", [case["order"]])
    code, output = install.call("run", str(orders), "--world", str(world))
    assert code == 0, output
    app = install.app()
    try:
        (proposal,) = app.review.find()
    finally:
        app.close()
    pid = proposal.proposal_id
    first_op = "{tool}.{op}".format(**proposal.plan.actions[0].model_dump())
    code, output = install.call("review", "approve", pid, "--by", "alice")
    assert code == 0 and "still needs" in output, output
    faults = {"EXDESK_SIMULATED_FAULTS": f"{first_op}={when}"}
    code, output = install.call("review", "approve", pid, "--by", "bob", extra=faults)
    assert code == -signal.SIGKILL, output
    app = install.app()
    try:
        assert app.review.get(pid).status is ProposalStatus.APPROVED  # the vote stands
    finally:
        app.close()
    # finish it: approving again, or `review resume`
    if when == "crash-before":
        code, output = install.call("review", "approve", pid, "--by", "bob")
    else:
        code, output = install.call("review", "resume", pid)
    assert code == 0 and f"{pid}: executed" in output, output
    app = install.app()
    try:
        _check_consistent(app)
        assert app.review.get(pid).status is ProposalStatus.EXECUTED
        after = app.orders.current("default", "EX-0005")
        assert after is not None and after.status == "open"
        assert after.lines[2].hs_code == "761699"
        assert [v.by for v in app.review.votes(pid)] == ["alice", "bob"]
        docs = [m for m in app.backend("default").outbox("EX-0005") if m["channel"] == "customs"]
        assert len(docs) == len({m["document"] for m in docs})
    finally:
        app.close()


def test_a_thread_paused_by_one_process_resumes_in_another(tmp_path: Path) -> None:
    """Two data dirs on one PostgreSQL database: one drafts, the other approves and runs."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXDESK_")}
    case = example("EX-stock-late-006")
    world = tmp_path / "world.json"
    world.write_text(json.dumps(case["world"]))
    orders = _write_jsonl(tmp_path / "orders.jsonl", [case["order"]])
    with scratch_schema(base, "exdesk_resume") as schema:
        env["EXDESK_DATABASE_URL"] = in_schema(base, schema)
        first, second = Install(tmp_path / "one", env), Install(tmp_path / "two", env)
        code, output = first.call("run", str(orders), "--world", str(world))
        assert code == 0 and "awaiting_approval" in output, output
        code, output = second.call("review", "list")
        pid = output.split()[0]
        assert pid.startswith("P-"), output
        assert second.call("review", "approve", pid, "--by", "alice")[0] == 0
        code, output = second.call("review", "approve", pid, "--by", "bob")
        assert code == 0 and f"{pid}: executed" in output, output
        for where in (first, second):
            code, output = where.call("audit", "verify")
            assert code == 0 and "signature checked" in output, output


def test_processes_starting_together_on_a_new_data_dir(install: Install) -> None:
    procs = [install.run("review", "list") for _ in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert all("0 proposal(s)" in o for o in outputs), outputs
