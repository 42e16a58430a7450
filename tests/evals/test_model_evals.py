"""Contract §8 end to end, against local OpenAI-compatible servers these tests start: a helpful
model, garbage, a slow one, one that alternates tool calls and plain content, a hostile one
over the whole dev set, and a liar whose readings are schema-valid but false."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.rank import tier_of
from agent.replay import replay
from domain.models import Draft, Strategy
from evals.cases import EvalCase
from evals.harness import run_eval
from service.settings import Settings
from service.wiring import Exdesk, memory_for
from tests.llm_servers import Behaviour, Slow, alternating, garbage, helpful, hostile, serve
from tests.llm_servers import untrusted_text as text_of
from tools.registry import ACTIONS

DATA = Path(__file__).resolve().parents[2] / "evals" / "data"
NOTES = [json.loads(line) for line in (DATA / "notes.jsonl").read_text("utf-8").splitlines()]
READINGS = {c["order"]["notes"]: c["reading"] for c in NOTES}
VOLATILE = ("run", "seconds", "policy", "model")


def cases(rows: list[dict[str, Any]]) -> list[EvalCase]:
    return [EvalCase.model_validate(r) for r in rows]


@contextmanager
def desk(tmp: Path, url: str | None = None, **llm: Any) -> Iterator[Exdesk]:
    extra: dict[str, Any] = {"llm_backoff_s": 0, **llm}
    if url is not None:
        extra |= {"openai_base_url": url, "llm_model": "local-test"}
    settings = Settings(data_dir=tmp, embedding_model="hash", **extra)
    app = Exdesk(settings, memory=memory_for(settings, persistent=False))
    try:
        yield app
    finally:
        app.close()


def evaluate(tmp: Path, rows: list[dict[str, Any]], behaviour: Behaviour | None, **llm: Any) -> Any:
    if behaviour is None:
        with desk(tmp) as app:
            return run_eval(app, cases(rows)), None, app
    with serve(behaviour) as server, desk(tmp, server.url, **llm) as app:
        report = run_eval(app, cases(rows))
        before = len(server.requests)
        report["replay"] = replay(app.audit.entries(), app.checkers, app.audit.clear_values)
        report["replay_calls"] = len(server.requests) - before
        report["verify"] = app.audit.verify().ok
        return report, server, app


def figures(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report["summary"].items() if k not in VOLATILE}


def outcomes(report: dict[str, Any]) -> list[Any]:
    """Each case's exceptions, plans, decisions and order after, less the proposal ids (made of
    the run's world names)."""
    rows = [(c["id"], c["kinds"], c["exceptions"], c["order_after"]) for c in report["cases"]]
    return json.loads(re.sub(r"P-[0-9a-f]{6,}", "P-*", json.dumps(rows, ensure_ascii=False)))


def test_helpful_model_reads_the_notes_set_into_section_8_1_plans(tmp_path: Path) -> None:
    report, _server, _ = evaluate(tmp_path / "m", NOTES, helpful(READINGS))
    scores = report["summary"]["scores"]
    assert scores["misses"] == [], scores["misses"]
    assert report["summary"]["unsafe_executions"] == []
    assert report["summary"]["model"]["readings"] == {"read": len(NOTES)}
    by_id = {c["id"]: c for c in report["cases"]}
    for case in NOTES:
        got = by_id[case["id"]]
        assert got["order_after"]["ship_to"] == case["order"]["ship_to"]  # never written
        reading = case["reading"]
        if reading["intent"] == "change_address":
            top = got["exceptions"][0]["plans"][0]
            data = next(a for a in top["actions"] if a["op"] == "send")["args"]["data"]
            assert data["proposed_address"] == reading["new_address"] | {
                k: v for k, v in data["proposed_address"].items() if k not in reading["new_address"]
            }
            assert {k: v for k, v in reading["new_address"].items() if v} == data[
                "proposed_address"
            ]
        if reading["intent"] == "hold_until":
            top = got["exceptions"][0]["plans"][0]
            assert top["actions"][0]["args"]["until"] == reading["hold_until"]
    assert report["replay"].reproduced == report["replay"].decisions == len(NOTES)
    assert report["replay_calls"] == 0  # replay called no model
    assert report["verify"]
    # without a model the same cases come out as today: nothing from the notes
    plain, _, _ = evaluate(tmp_path / "plain", NOTES, None)
    assert all(c["kinds"] == [] for c in plain["cases"])
    assert [c["order_after"]["status"] for c in plain["cases"]] == ["open"] * len(NOTES)


@pytest.mark.parametrize("output", ["json_schema", "tool"])
def test_tool_calls_and_plain_content_by_turns_are_both_read(tmp_path: Path, output: str) -> None:
    report, server, _ = evaluate(tmp_path, NOTES, alternating(READINGS), llm_output=output)
    assert report["summary"]["scores"]["misses"] == []
    asked = {"tools" in r for r in server.requests if text_of(r)}
    assert asked == {output == "tool"}


def test_garbage_leaves_every_order_as_without_a_model(tmp_path: Path) -> None:
    report, _, _ = evaluate(tmp_path / "g", NOTES, garbage)
    plain, _, _ = evaluate(tmp_path / "p", NOTES, None)
    assert outcomes(report) == outcomes(plain)
    assert report["summary"]["model"]["readings"] == {"dropped": len(NOTES)}


def test_a_slow_model_times_out_with_bounded_retries(tmp_path: Path) -> None:
    rows = NOTES[:4]
    report, server, _ = evaluate(
        tmp_path / "s", rows, lambda body: Slow(1.5), llm_timeout_s=0.2, llm_retries=1
    )
    plain, _, _ = evaluate(tmp_path / "p", rows, None)
    assert outcomes(report) == outcomes(plain)
    model = report["summary"]["model"]
    assert model["failures"] == {"timeout": len(rows)} and model["readings"] == {"failed": 4}
    readings = [r for r in server.requests if text_of(r)]
    assert len(readings) == 2 * len(rows)  # one try and one retry each, no more


def test_hostile_model_over_the_whole_dev_set_changes_nothing(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (DATA / "dev.jsonl").read_text("utf-8").splitlines()]
    with_notes = sum(  # notes on an order that has not shipped or been cancelled
        1
        for r in rows
        if (r["order"].get("notes") or "").strip()
        and r["order"].get("status", "open") not in ("fulfilled", "cancelled")
    )
    report, server, app = evaluate(tmp_path / "h", rows, hostile)
    plain, _, _ = evaluate(tmp_path / "p", rows, None)
    assert figures(report) == figures(plain)  # every dev-set figure, exactly
    assert outcomes(report) == outcomes(plain)
    model = report["summary"]["model"]
    readings = [r for r in server.requests if text_of(r)]
    assert model["readings"] == {"dropped": with_notes} and len(readings) == with_notes
    policy = app.policy
    for case in report["cases"]:
        for exception in case["exceptions"]:
            for plan in exception["plans"]:
                assert plan["strategy"] in {s.value for s in Strategy}
                assert all((a["tool"], a["op"]) in ACTIONS for a in plan["actions"])
                draft = Draft.model_validate(
                    {"kind": exception["kind"], **{k: plan[k] for k in ("strategy", "actions")}}
                    | {"cost_usd": plan["cost_usd"]}
                )
                assert plan["tier"] >= tier_of(draft, policy).value  # never above its tier
    assert report["replay"].mismatches == [] and report["replay"].reproduced == len(rows)
    assert report["replay_calls"] == 0  # replay called no model


def liar(body: dict[str, Any]) -> Any:
    """Schema-valid and false: a cancellation nobody asked for, an attacker's address, a hold
    for ever, a question — each quoting a few words the text does contain."""
    text = text_of(body)
    quote = text[:6]
    base = {"new_address": None, "hold_until": None, "quote": quote}
    turn = len(text) % 4
    if turn == 0:
        return base | {"intent": "cancel"}
    if turn == 1:
        attacker = {
            "name": "Mallory",
            "street_address": "Dam 2",
            "city": "Amsterdam",
            "postal_code": "1012 JS",
            "country_code": "NL",
            "city_area": None,
            "country_area": None,
        }
        return base | {"intent": "change_address", "new_address": attacker}
    if turn == 2:
        return base | {"intent": "hold_until", "hold_until": "2099-01-01"}
    return base | {"intent": "other"}


def test_a_liar_gets_no_further_than_a_true_reading(tmp_path: Path) -> None:
    rows = NOTES + [
        r
        for r in (json.loads(line) for line in (DATA / "dev.jsonl").read_text("utf-8").splitlines())
        if (r["order"].get("notes") or "").strip()
    ]
    report, _, _app = evaluate(tmp_path / "l", rows, liar)
    plain, _, _ = evaluate(tmp_path / "p", rows, None)
    assert report["summary"]["unsafe_executions"] == []
    without = {c["id"]: c["order_after"] for c in plain["cases"]}
    for case in report["cases"]:
        after = case["order_after"]
        assert after["ship_to"] == without[case["id"]]["ship_to"]  # the model wrote no address
        assert after["status"] != "cancelled"
        for exception in case["exceptions"]:
            decision = exception["decision"]
            if exception["kind"] != "customer_request":
                continue
            if decision["status"] == "executed":  # a hold or a question, nothing else
                assert decision["tier"] == "L1"
                assert decision["strategy"] in ("address_confirm_with_customer", "hold_until_date")
            else:
                assert decision["status"] == "awaiting_approval" and decision["tier"] != "L1"
    assert report["summary"]["model"]["readings"].get("read", 0) > 0


def test_the_notes_set_is_what_its_generator_writes() -> None:
    from evals.notes import build

    assert json.loads(json.dumps(build(), ensure_ascii=False)) == NOTES
