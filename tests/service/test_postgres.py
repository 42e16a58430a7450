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
