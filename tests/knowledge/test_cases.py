"""Past cases as data. Reading them from files: tests/service/test_inputs.py."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import knowledge.cases
from domain.models import Kind, Strategy
from knowledge.cases import PastCase
from tests.knowledge.support import ORDER


def good_case(case_id: str, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "case_id": case_id,
        "kind": "stockout",
        "summary": "WH-SHA short on TEE-COT-NVY, reallocated to WH-SZX",
        "strategy": "reallocate_warehouse",
        "outcome": {"success": True, "resolution_hours": 3, "cost_usd": 4.5},
        "resolved_at": "2026-10-01T12:00:00+08:00",
    }
    raw.update(changes)
    return raw


def test_a_case_round_trips_through_json() -> None:
    case = PastCase.model_validate(good_case("A", order=ORDER))
    again = PastCase.model_validate_json(case.model_dump_json())
    assert again == case
    assert case.model_dump(mode="json")["outcome"]["cost_usd"] == 4.5
    assert case.kind is Kind.STOCKOUT and case.strategy is Strategy.REALLOCATE_WAREHOUSE


def test_a_case_in_any_language() -> None:
    case = PastCase.model_validate(good_case("C", summary="上海仓缺货，改由深圳仓发货"))
    assert case.summary.startswith("上海仓")


@pytest.mark.parametrize(
    "changes",
    [
        {"outcome": {"success": "maybe"}},
        {"resolved_at": "2026-10-01T12:00:00"},
        {"strategy": "teleport"},
        {"kind": "lost"},
        {"summary": ""},
    ],
)
def test_bad_cases_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PastCase.model_validate(good_case("A", **changes))


def test_knowledge_reads_no_files() -> None:
    assert not hasattr(knowledge.cases, "read_cases")
