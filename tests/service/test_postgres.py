"""The whole desk on PostgreSQL (EXDESK_DATABASE_URL), when a test database is configured:
the store, the audit log and the graph's checkpoints (PostgresSaver) in one database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from evals.cases import EvalCase
from evals.harness import run_eval
from service.inputs import read_jsonl
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV
from tests.factories import EXAMPLES, example, start, vote


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
    with scratch_schema(base, "exdesk_e2e") as schema:
        yield in_schema(base, schema)


def test_eval_and_approval_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    app = Exdesk(Settings(data_dir=tmp_path, database_url=pg_url))
    try:
        assert app.engine.dialect.name == "postgresql"
        assert type(app.runner._graph.checkpointer).__name__ == "PostgresSaver"
        assert not (tmp_path / "exdesk.db").exists()
        cases = [p.value for p in read_jsonl(EXAMPLES, EvalCase) if p.value is not None]
        report = run_eval(app, cases)
        scores = report["summary"]["scores"]
        assert scores["detection_exact_match"] == scores["top_strategy"] == scores["tier"] == 1.0
        assert scores["order_after"] == 1.0
        pending = app.review.find(status=None)
        assert len(pending) == 4
        proposal = pending[0]
        vote(app, proposal.proposal_id, "alice", "supervisor", "ok")
        result = vote(app, proposal.proposal_id, "bob", "supervisor", "ok").run
        assert result is not None
        assert result.decisions[proposal.kind].status == "executed"
        verdict = app.audit.verify()
        assert verdict.ok, verdict.problem
    finally:
        app.close()


def test_the_longest_ids_fit_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    case = example("EX-customs-bad_hs-005")
    case["order"]["order_id"] = "O" * 200
    for n, line in enumerate(case["order"]["lines"]):
        line["line_id"] = f"{'L' * 190}-{n}"
    app = Exdesk(Settings(data_dir=tmp_path, database_url=pg_url))
    try:
        result = start(app, case, world_id="W" * 200)
        (pid,) = [d.proposal_id for d in result.decisions.values()]
        assert pid is not None
        vote(app, pid, "alice")
        done = vote(app, pid, "bob").run
        assert done is not None and done.order_after.status == "open"
        assert app.audit.verify().ok
    finally:
        app.close()


def test_notes_holds_and_replies_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """Contract §8 on PostgreSQL: a hold until a date released by the sweep, an address
    confirmed by a reply, words cached, all replayed from the recorded answers."""
    from datetime import datetime

    from agent.replay import replay
    from service import replies, review
    from tests.factories import clean_case
    from tools.fake_model import ScriptedModel
    from tools.model import ModelRequest

    new = {
        "street_address": "Keizersgracht 100",
        "city": "Amsterdam",
        "postal_code": "1015 CX",
        "country_code": "NL",
    }

    def answer(request: ModelRequest) -> object:
        text = str(request.messages[-1]["content"])
        empty = {"new_address": None, "hold_until": None}
        if request.purpose != "notes" and request.purpose != "reply":
            return "Please confirm the new address."
        if "before 2026-12-05" in text:
            return {
                **empty,
                "intent": "hold_until",
                "hold_until": "2026-12-05",
                "quote": "before 2026-12-05",
            }
        if "Keizersgracht" in text:
            return {
                **empty,
                "intent": "change_address",
                "new_address": new,
                "quote": "Keizersgracht 100",
            }
        return {**empty, "intent": "confirm", "quote": "yes"}

    app = Exdesk(Settings(data_dir=tmp_path, database_url=pg_url), model=ScriptedModel(answer))
    try:
        held = clean_case()
        held["order"]["notes"] = "not before 2026-12-05 please"
        start(app, held)
        moved = clean_case()
        moved["order"]["order_id"] = "EX-0002"
        moved["order"]["notes"] = "send it to Keizersgracht 100, 1015 CX Amsterdam"
        start(app, moved)
        desk = app.desk("w")
        assert review.sweep(app, datetime.fromisoformat("2026-12-05T00:00:00+08:00")) == [
            ("EX-0001", "held until 2026-12-05: released")
        ]
        assert desk.order("EX-0001").status == "open"
        got, _ = replies.receive(app, "w", "EX-0002", "yes, that's right", by="olive")
        assert got.outcome == "address_written"
        assert desk.order("EX-0002").ship_to.street_address == "Keizersgracht 100"
        report = replay(app.audit.entries(), app.checkers, app.audit.clear_values)
        assert report.mismatches == [] and report.reproduced == 2
        assert app.audit.verify().ok
    finally:
        app.close()
