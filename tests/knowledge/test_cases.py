"""Reading past cases: good lines kept, each bad line named with its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain.errors import InputError
from domain.models import Kind, Strategy
from knowledge.cases import PastCase, read_cases
from tests.knowledge.support import ORDER


def _good(case_id: str, **changes: Any) -> dict[str, Any]:
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


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_good_lines_are_kept_and_bad_lines_name_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "cases.jsonl",
        [
            json.dumps(_good("A")),
            json.dumps(_good("B", outcome={"success": "maybe"})),
            "",
            "{not json",
            json.dumps(_good("C", summary="上海仓缺货，改由深圳仓发货", order=ORDER)),
            json.dumps(_good("D", resolved_at="2026-10-01T12:00:00")),
            json.dumps(_good("E", strategy="teleport", kind="lost")),
        ],
    )
    cases, errors = read_cases(path)

    assert [c.case_id for c in cases] == ["A", "C"]
    assert cases[1].order is not None and cases[1].order.order_id == "O-1"
    assert cases[0].kind is Kind.STOCKOUT and cases[0].strategy is Strategy.REALLOCATE_WAREHOUSE
    assert len(errors) == 4
    assert errors[0] == (
        f"{path} line 2: outcome.success: Input should be a valid boolean, unable to interpret "
        "input (got 'maybe'); fix it and import again"
    )
    assert errors[1].startswith(f"{path} line 4: not valid JSON")
    assert errors[2].startswith(f"{path} line 6: resolved_at: Input should have timezone info")
    assert f"{path} line 7: kind:" in errors[3] and "; strategy:" in errors[3]
    assert all(e.endswith("fix it and import again") for e in errors)


def test_missing_fields_are_named(tmp_path: Path) -> None:
    raw = _good("A")
    del raw["outcome"]["success"], raw["summary"]
    _, errors = read_cases(_write(tmp_path / "c.jsonl", [json.dumps(raw)]))
    assert "line 1: summary: Field required; outcome.success: Field required" in errors[0]


def test_unreadable_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.jsonl: cannot open"):
        read_cases(tmp_path / "missing.jsonl")


def test_a_case_round_trips_through_json() -> None:
    case = PastCase.model_validate(_good("A", order=ORDER))
    again = PastCase.model_validate_json(case.model_dump_json())
    assert again == case
    assert case.model_dump(mode="json")["outcome"]["cost_usd"] == 4.5
