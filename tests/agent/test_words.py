"""Words for people: the customer's message on every hold waiting on them (the model's, marked,
in their language; a template without one), plans explained to approvers, summaries of manual
reviews; checked, cached per proposal and plan digest, recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.words import checked
from domain.models import Kind
from service import explain
from service.http import create_app
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import add_people, clean_case, example, start
from tests.llm_servers import serve
from tools.fake_model import ScriptedModel
from tools.model import ModelRequest

NEW = {
    "street_address": "Keizersgracht 100",
    "city": "Amsterdam",
    "postal_code": "1015 CX",
    "country_code": "NL",
}


def model_says(words: str) -> Any:
    def answer(request: ModelRequest) -> Any:
        if request.purpose == "notes":
            return {
                "intent": "change_address",
                "new_address": NEW,
                "hold_until": None,
                "quote": "send it to Keizersgracht",
            }
        return words

    return answer


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def message_of(app: Exdesk, order_id: str = "EX-0001") -> dict[str, Any]:
    sent = [
        m for m in app.backend("w").outbox(order_id) if m.get("template", "").startswith("confirm")
    ]
    assert len(sent) == 1
    return dict(sent[0]["data"]["message"])


def test_without_a_model_the_template_writes_in_the_customers_language(tmp: Path) -> None:
    app = Exdesk(Settings(data_dir=tmp / "t"))
    try:
        start(app, example("EX-addr-confirm-003"))  # a Shenzhen order: address to confirm
        said = message_of(app, "EX-0003")
        assert said["by"] == "template" and said["language"] == "zh"
        assert "地址" in said["message_text"]
    finally:
        app.close()


def test_the_models_message_is_marked_and_sent(tmp: Path) -> None:
    words = "Hello Daan, please confirm the new address Keizersgracht 100, 1015 CX Amsterdam."
    fake = ScriptedModel(model_says(words))
    app = Exdesk(Settings(data_dir=tmp / "m"), model=fake)
    try:
        case = clean_case()
        case["order"]["notes"] = "Please send it to Keizersgracht 100, 1015 CX Amsterdam"
        start(app, case)
        said = message_of(app)
        assert said == {"message_text": words, "language": "en", "by": "model:scripted"}
        asked = [r for r in fake.requests if r.purpose == "customer_message"]
        assert len(asked) == 1
        assert case["order"]["notes"] not in json.dumps(list(asked[0].messages))  # facts only
        chain = json.dumps([e.payload for e in app.audit.entries()], ensure_ascii=False)
        assert "please confirm the new address" not in chain  # beside the log, not in it
    finally:
        app.close()


@pytest.mark.parametrize(
    "words",
    [
        "Confirm at https://evil.example/login",
        "Pay the customs fee to account 6222000011112222",
        "Write to refunds@evil.example",
        "<b>Hello</b>",
        '{"intent": "confirm"}',
        "",
        "x" * 2000,
    ],
)
def test_words_that_fail_the_checks_give_way_to_the_template(tmp: Path, words: str) -> None:
    app = Exdesk(Settings(data_dir=tmp / "w"), model=ScriptedModel(model_says(words)))
    try:
        case = clean_case()
        case["order"]["notes"] = "Please send it to Keizersgracht 100, 1015 CX Amsterdam"
        start(app, case)
        assert message_of(app)["by"] == "template"
        wrote = [e for e in app.audit.entries() if e.event == "model.wrote"]
        assert [e.payload["status"] for e in wrote] == ["dropped"]
    finally:
        app.close()


def test_checked_allows_the_numbers_it_was_given() -> None:
    facts = json.dumps(
        {"proposed_address": {"postal_code": "1015 CX", "street_address": "Dam 1015"}}
    )
    assert checked("Please confirm Dam 1015.", "customer_message", facts)
    assert checked("Call 5550199 now", "customer_message", facts) is None


def test_explanations_and_summaries_are_cached_per_plan(tmp: Path) -> None:
    fake = ScriptedModel(lambda request: f"({request.purpose}) This plan holds the order.")
    app = Exdesk(Settings(data_dir=tmp / "e"), model=fake)
    try:
        result = start(app, example("EX-customs-bad_hs-005"))
        proposal = app.review.get(str(result.decisions[Kind.CUSTOMS_BLOCK].proposal_id))
        first = explain.explanation(app, proposal, "zh")
        again = explain.explanation(app, proposal, "zh")
        assert first == again and first.by_model and first.language == "zh"
        assert len([r for r in fake.requests if r.purpose == "explanation"]) == 1
        assert "Simplified Chinese" in fake.requests[-1].messages[0]["content"]
        assert explain.summary(app, proposal, "en") is None  # not a manual review
    finally:
        app.close()
    plain = Exdesk(Settings(data_dir=tmp / "p"))
    try:
        result = start(plain, example("EX-customs-bad_hs-005"))
        proposal = plain.review.get(str(result.decisions[Kind.CUSTOMS_BLOCK].proposal_id))
        said = explain.explanation(plain, proposal, "en")
        assert said.by == "template" and "customs_fix_hs_code" in said.text
    finally:
        plain.close()


def test_the_review_page_explains_and_summarizes(tmp: Path) -> None:
    def behaviour(body: dict[str, Any]) -> Any:
        if body.get("response_format") or body.get("tools"):
            return {"intent": "other", "new_address": None, "hold_until": None, "quote": "split"}
        return "The customer asks something only a person can answer. Next: call them."

    with serve(behaviour) as server:
        settings = Settings(data_dir=tmp / "h", openai_base_url=server.url, llm_model="m1")
        app = Exdesk(settings)
        try:
            token = add_people(app, {"alice": "approver"})["alice"]
            case = clean_case()
            case["order"]["notes"] = "Can you split it in two?"
            result = start(app, case, world_id="default")
            pid = str(result.decisions[Kind.CUSTOMER_REQUEST].proposal_id)
        finally:
            app.close()
        with TestClient(create_app(settings, sweep_interval=0)) as client:
            auth = {"Authorization": f"Bearer {token}"}
            detail = client.get(f"/proposals/{pid}", headers=auth).json()
            assert detail["summary"]["model"] and "Next: call them" in detail["summary"]["text"]
            said = client.get(f"/proposals/{pid}/explanation?lang=zh", headers=auth).json()
            assert said["by"] == "model:local-test" and said["language"] == "zh"
            client.post("/ui/login", data={"token": token})
            page = client.get(f"/ui/proposals/{pid}").text
            assert "Explain this plan" in page and "Summary and a next step" in page
            explained = client.get(f"/ui/proposals/{pid}?explain_it=1").text
            assert "In plain words" in explained and "written by a model" in explained
        calls = len(server.requests)
        with TestClient(create_app(settings, sweep_interval=0)) as client:
            client.get(f"/proposals/{pid}/explanation?lang=zh", headers=auth)
            client.get(f"/proposals/{pid}", headers=auth)
        assert len(server.requests) == calls  # cached: a page view never asks twice
