"""The whole desk on PostgreSQL (EXDESK_DATABASE_URL), when a test database is configured."""

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
from tests.factories import EXAMPLES


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
        cases = [p.value for p in read_jsonl(EXAMPLES, EvalCase) if p.value is not None]
        report = run_eval(app, cases)
        scores = report["summary"]["scores"]
        assert scores["detection_exact_match"] == scores["top_strategy"] == scores["tier"] == 1.0
        assert scores["order_after"] == 1.0
        pending = app.review.find(status="pending")
        assert len(pending) == 4
        pid = pending[0].proposal_id
        for by in ("alice", "bob"):
            app.review.vote(
                pid,
                by=by,
                role="supervisor",
                decision="approve",
                reason="ok",
                plan_digest=None,
                policy=app.policy,
            )
        proposal = app.review.get(pid)
        result = app.runner.resume(app.desk(proposal.world_id), proposal.thread_id)
        assert result.decisions[proposal.kind]["status"] == "executed"
        verdict = app.audit.verify()
        assert verdict.ok, verdict.problem
    finally:
        app.close()
