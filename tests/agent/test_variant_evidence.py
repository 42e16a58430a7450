"""Evidence per variant: a plan cites the past cases of its own parameters (the warehouse a
reallocation ships from) where the memory holds some, and its strategy's otherwise; the
approver reads which in the plan's evidence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import playbooks
from agent.detect import detect
from agent.inputs import case_inputs
from agent.rank import rank, retrieve_evidence, situation_for
from agent.variants import variant_of
from domain.models import Kind, Plan, Strategy
from domain.policy import default_policy
from knowledge.cases import Outcome, PastCase
from knowledge.embedder import HashEmbedder
from knowledge.situation import describe
from knowledge.store import QdrantCaseMemory, open_memory
from service.settings import Settings
from service.wiring import Exdesk
from tests.agent.test_playbooks import stockout_case
from tests.factories import context, start

POLICY = default_policy()
R = Strategy.REALLOCATE_WAREHOUSE


def _past(case_id: str, text: str, warehouse: str | None, success: bool) -> PastCase:
    return PastCase(
        case_id=case_id,
        kind=Kind.STOCKOUT,
        summary=text,
        strategy=R,
        outcome=Outcome(success=success),
        resolved_at=datetime(2026, 10, 1, tzinfo=UTC),
        variant={"warehouse": warehouse} if warehouse else {},
    )


@pytest.fixture
def memory() -> Iterator[QdrantCaseMemory]:
    found = open_memory(url=None, embedder=HashEmbedder(), learns=False)
    yield found
    found.close()


def _reallocations(memory: QdrantCaseMemory) -> dict[str, Plan]:
    ctx = context(stockout_case())
    (finding,) = [f for f in detect(ctx) if f.kind is Kind.STOCKOUT]
    drafts = playbooks.draft(ctx, finding)
    similar = retrieve_evidence(memory, situation_for(ctx, finding), POLICY, drafts)
    plans = rank(drafts, POLICY, similar)
    # what ranking read comes back the same from the audit log's record of it (replay)
    assert rank(drafts, POLICY, case_inputs({"stockout": similar})["stockout"]) == plans
    return {variant_of(p)["warehouse"]: p for p in plans if p.strategy is R}


def _text() -> str:
    ctx = context(stockout_case())
    (finding,) = [f for f in detect(ctx) if f.kind is Kind.STOCKOUT]
    return describe(situation_for(ctx, finding))


def test_two_reallocations_from_different_warehouses_get_their_own_evidence(
    memory: QdrantCaseMemory,
) -> None:
    text = _text()
    memory.import_cases(
        [_past(f"SZX-{i}", text, "WH-SZX", success=i == 0) for i in range(4)]
        + [_past(f"EWR-{i}", text, "WH-EWR", success=True) for i in range(3)]
    )
    plans = _reallocations(memory)
    assert set(plans) == {"WH-SZX", "WH-EWR"}
    szx, ewr = plans["WH-SZX"], plans["WH-EWR"]
    assert set(szx.similar_cases) == {f"SZX-{i}" for i in range(4)}
    assert set(ewr.similar_cases) == {f"EWR-{i}" for i in range(3)}
    assert (
        "past cases that shipped from WH-SZX: 4 similar cases used reallocate_warehouse, "
        "1 succeeded (25%)"
    ) in szx.evidence
    assert (
        "past cases that shipped from WH-EWR: 3 similar cases used reallocate_warehouse, "
        "3 succeeded (100%)"
    ) in ewr.evidence


def test_a_variant_without_cases_of_its_own_falls_back_to_the_strategy(
    memory: QdrantCaseMemory,
) -> None:
    text = _text()
    memory.import_cases(
        [_past(f"SZX-{i}", text, "WH-SZX", success=True) for i in range(2)]
        + [_past(f"ANY-{i}", text, None, success=False) for i in range(3)]
    )
    plans = _reallocations(memory)
    assert set(plans["WH-SZX"].similar_cases) == {"SZX-0", "SZX-1"}
    # no past reallocation shipped from WH-EWR: every similar reallocation counts
    assert set(plans["WH-EWR"].similar_cases) == {"SZX-0", "SZX-1", "ANY-0", "ANY-1", "ANY-2"}
    assert (
        "past cases: 5 similar cases used reallocate_warehouse, 2 succeeded (40%)"
        in plans["WH-EWR"].evidence
    )


def test_a_memory_without_variants_gives_the_evidence_of_before(memory: QdrantCaseMemory) -> None:
    text = _text()
    memory.import_cases([_past(f"ANY-{i}", text, None, success=i < 2) for i in range(4)])
    plans = _reallocations(memory)
    assert plans["WH-SZX"].similar_cases == plans["WH-EWR"].similar_cases
    assert (
        plans["WH-SZX"].evidence[-1]
        == plans["WH-EWR"].evidence[-1]
        == ("past cases: 4 similar cases used reallocate_warehouse, 2 succeeded (50%)")
    )


def test_a_run_learns_its_variant_and_the_next_run_cites_it(tmp_path: Path) -> None:
    app = Exdesk(Settings(data_dir=tmp_path / "data", embedding_model="hash"))
    try:
        result = start(app, stockout_case())
        top = result.plans[Kind.STOCKOUT][0]
        assert result.decisions[Kind.STOCKOUT].status.value == "executed"
        assert variant_of(top) == {"warehouse": "WH-SZX"}
        (learned,) = app.case_memory.search(_text(), kind=Kind.STOCKOUT, limit=1)
        assert learned["variant"] == {"warehouse": "WH-SZX"}
    finally:
        app.close()
