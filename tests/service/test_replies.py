"""Customers' replies (contract §8.2): a confirmation writes the proposed address and lifts the
hold; anything else reaches a person, who sees the quote; without a model, a person reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import replies
from service.http import create_app
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import add_people, clean_case, start
from tests.llm_servers import serve, untrusted_text
from tools.fake_model import ScriptedModel

NOTES = "I moved: please send it to Keizersgracht 100, 1015 CX Amsterdam."
NEW = {
    "street_address": "Keizersgracht 100",
    "city": "Amsterdam",
    "postal_code": "1015 CX",
    "country_code": "NL",
}


def reading(intent: str, quote: str, **fields: Any) -> dict[str, Any]:
    return {"intent": intent, "new_address": None, "hold_until": None, "quote": quote, **fields}


def by_text(request: Any) -> Any:
    """A model that reads the note as an address change and replies as their words say."""
    text = untrusted_text({"messages": list(request.messages)})
    if text == NOTES:
        return reading("change_address", "please send it to Keizersgracht 100", new_address=NEW)
    if text.startswith("Yes"):
        return reading("confirm", "Yes")
    if text.startswith("Actually"):
        other = {**NEW, "street_address": "Prinsengracht 263", "postal_code": "1016 GV"}
        return reading("change_address", "Actually", new_address=other)
    if text.startswith("Confirmed"):
        return reading("confirm", "words that are not in the reply")
    return reading("other", text[:12])


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Exdesk]:
    desk = Exdesk(Settings(data_dir=tmp_path / "d"), model=ScriptedModel(by_text))
    case = clean_case()
    case["order"]["notes"] = NOTES
    start(desk, case)
    yield desk
    desk.close()


def order(app: Exdesk) -> Any:
    return app.desk("w").order("EX-0001")


def test_a_confirmation_writes_the_address_and_lifts_the_hold(app: Exdesk) -> None:
    assert order(app).status == "on_hold" and order(app).ship_to.street_address == "Dam 1"
    got, new = replies.receive(app, "w", "EX-0001", "Yes, that's my new address.", by="olive")
    assert new and got.outcome == "address_written"
    after = order(app)
    assert after.ship_to.street_address == "Keizersgracht 100"
    assert after.ship_to.postal_code == "1015 CX" and after.ship_to.name == "Daan de Vries"
    assert after.status == "open" and not after.holds
    assert app.model is not None
    fake = app.model.model
    assert isinstance(fake, ScriptedModel)
    calls = len(fake.requests)
    again, new = replies.receive(app, "w", "EX-0001", "Yes, that's my new address.", by="olive")
    assert not new and again == got
    assert len(fake.requests) == calls  # the same reply again asks the model nothing
    events = [e.event for e in app.audit.entries()]
    assert events.count("reply.received") == 1 and app.audit.verify().ok


def test_another_address_asks_again_then_a_confirmation_writes_it(app: Exdesk) -> None:
    got, _ = replies.receive(app, "w", "EX-0001", "Actually: Prinsengracht 263", by="olive")
    assert got.outcome == "asked_again" and got.proposed_address is not None
    assert order(app).ship_to.street_address == "Dam 1" and order(app).status == "on_hold"
    done, _ = replies.receive(app, "w", "EX-0001", "Yes, Prinsengracht.", by="olive")
    assert done.outcome == "address_written"
    assert order(app).ship_to.street_address == "Prinsengracht 263"


def test_anything_else_reaches_a_person_and_nothing_is_written(app: Exdesk) -> None:
    question, _ = replies.receive(app, "w", "EX-0001", "When will it arrive?", by="olive")
    assert question.outcome == "for_person" and question.quote == "When will it"
    lie, _ = replies.receive(app, "w", "EX-0001", "Confirmed!", by="olive")
    assert lie.outcome == "for_person" and "not read" in (lie.detail or "")  # quote not in text
    assert order(app).ship_to.street_address == "Dam 1" and order(app).status == "on_hold"
    assert [r.reply_id for r in app.replies.for_people()] == [lie.reply_id, question.reply_id]


def test_without_a_model_a_reply_goes_to_a_person(tmp_path: Path) -> None:
    desk = Exdesk(Settings(data_dir=tmp_path / "plain"))
    try:
        case = clean_case()
        case["order"]["payment"] = {
            "status": "failed",
            "method": "card",
            "amount": 33.33,
            "failure_code": "expired_card",
        }
        start(desk, case)
        got, _ = replies.receive(desk, "w", "EX-0001", "Yes, confirmed", by="olive")
        assert got.outcome == "for_person" and got.intent is None
        assert desk.desk("w").order("EX-0001").status == "on_hold"
        with pytest.raises(Exception, match="not known"):
            replies.receive(desk, "w", "NOPE", "hi", by="olive")
        with pytest.raises(Exception, match="empty"):
            replies.receive(desk, "w", "EX-0001", "   ", by="olive")
    finally:
        desk.close()


def test_the_http_reply_and_the_review_page(tmp_path: Path) -> None:
    def behaviour(body: dict[str, Any]) -> Any:
        class Request:
            messages = body["messages"]

        return by_text(Request)

    with serve(behaviour) as server:
        settings = Settings(
            data_dir=tmp_path / "h", openai_base_url=server.url, llm_model="local-test"
        )
        app = Exdesk(settings)
        try:
            tokens = add_people(app, {"olive": "operator", "audrey": "auditor"})
            case = clean_case()
            case["order"]["notes"] = NOTES
            start(app, case, world_id="default")
        finally:
            app.close()
        with TestClient(create_app(settings, sweep_interval=0)) as client:
            olive = {"Authorization": f"Bearer {tokens['olive']}"}
            refused = client.post(
                "/orders/EX-0001/replies",
                json={"text": "When will it arrive? <script>x</script>"},
                headers={"Authorization": f"Bearer {tokens['audrey']}"},
            )
            assert refused.status_code == 403
            asked = client.post(
                "/orders/EX-0001/replies",
                json={"text": "When will it arrive? <script>x</script>"},
                headers=olive,
            )
            assert asked.status_code == 200 and asked.json()["outcome"] == "for_person"
            client.post("/ui/login", data={"token": tokens["olive"]})
            page = client.get("/ui/queue").text
            assert "Customer replies waiting for a person" in page and "When will it" in page
            assert "<script>x</script>" not in page and "&lt;script&gt;" in page
            yes = client.post("/orders/EX-0001/replies", json={"text": "Yes please"}, headers=olive)
            assert yes.json()["outcome"] == "address_written" and yes.json()["holds"] == []
            missing = client.post("/orders/NOPE/replies", json={"text": "hi"}, headers=olive)
            assert missing.status_code == 422
