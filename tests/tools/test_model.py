"""The model port: the openai adapter against local OpenAI-compatible servers, the leash
(timeouts, retries with backoff, budget, concurrency), the settings, and the guard that keeps
tests off real endpoints."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from domain.errors import InputError
from service.settings import Settings
from service.wiring import model_for
from tests.llm_servers import Slow, Status, Via, serve
from tools.fake_model import ScriptedModel
from tools.model import (
    Budget,
    GuardedModel,
    ModelRefused,
    ModelRequest,
    ModelTimeout,
    ModelUnavailable,
)
from tools.openai_model import OpenAIChatModel

SCHEMA = {
    "type": "object",
    "properties": {"intent": {"type": "string"}},
    "required": ["intent"],
    "additionalProperties": False,
}
REQUEST = ModelRequest(
    purpose="test",
    messages=({"role": "system", "content": "answer"}, {"role": "user", "content": "hi"}),
    schema_name="reading",
    schema=SCHEMA,
)


def _model(url: str, output: Any = "json_schema") -> OpenAIChatModel:
    return OpenAIChatModel(base_url=url, api_key=None, model="m", output=output)


def test_json_schema_request_and_content_answer() -> None:
    with serve(lambda body: {"intent": "none"}) as server:
        answer = _model(server.url).complete(REQUEST, timeout=5)
    assert answer.text == '{"intent": "none"}' and answer.via == "content"
    sent = server.requests[0]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    assert "tools" not in sent and sent["temperature"] == 0
    assert answer.prompt_tokens > 0 and answer.model == "local-test"


def test_tool_request_and_tool_call_answer() -> None:
    with serve(lambda body: {"intent": "cancel"}) as server:
        answer = _model(server.url, "tool").complete(REQUEST, timeout=5)
    assert answer.via == "tool_call" and answer.text == '{"intent": "cancel"}'
    sent = server.requests[0]
    assert sent["tools"][0]["function"]["name"] == "reading"
    assert sent["tools"][0]["function"]["parameters"] == SCHEMA
    assert sent["tool_choice"]["function"]["name"] == "reading"
    assert "response_format" not in sent


def test_either_form_is_accepted_back() -> None:
    """Servers differ: a tool call where a response_format was asked, and the other way."""
    with serve(lambda body: Via("tool_call", {"intent": "other"})) as server:
        assert _model(server.url).complete(REQUEST, timeout=5).text == '{"intent": "other"}'
    with serve(lambda body: Via("content", {"intent": "other"})) as server:
        assert _model(server.url, "tool").complete(REQUEST, timeout=5).via == "content"


def test_errors_are_translated() -> None:
    with serve(lambda body: Slow(2.0)) as server, pytest.raises(ModelTimeout):
        _model(server.url).complete(REQUEST, timeout=0.3)
    with serve(lambda body: Status(503)) as server, pytest.raises(ModelUnavailable):
        _model(server.url).complete(REQUEST, timeout=5)
    with serve(lambda body: Status(400)) as server, pytest.raises(ModelRefused):
        _model(server.url).complete(REQUEST, timeout=5)
    with serve(lambda body: "x") as server:
        url = server.url
    with pytest.raises(ModelUnavailable):  # the server is gone: nothing listens there
        _model(url).complete(REQUEST, timeout=2)


def test_retries_back_off_then_give_up() -> None:
    waits: list[float] = []
    fake = ScriptedModel([ModelUnavailable("down")])
    guarded = GuardedModel(fake, retries=2, backoff_s=0.5, sleep=waits.append)
    attempt = guarded.ask(REQUEST)
    assert attempt.answer is None and attempt.failure == "unavailable"
    assert attempt.tries == 3 and waits == [0.5, 1.0]
    assert guarded.stats.failures == {"unavailable": 1} and guarded.stats.calls == 3


def test_a_retry_that_works_is_an_answer() -> None:
    fake = ScriptedModel([ModelTimeout("slow"), '{"intent": "none"}'])
    attempt = GuardedModel(fake, retries=1, sleep=lambda s: None).ask(REQUEST)
    assert attempt.answer is not None and attempt.tries == 2 and attempt.failure is None


def test_a_refusal_is_not_retried() -> None:
    fake = ScriptedModel([ModelRefused("400")])
    attempt = GuardedModel(fake, retries=3, sleep=lambda s: None).ask(REQUEST)
    assert attempt.failure == "refused" and attempt.tries == 1 and len(fake.requests) == 1


def test_budget_of_calls_and_tokens() -> None:
    fake = ScriptedModel(['{"intent": "none"}'], tokens=(60, 10))
    guarded = GuardedModel(fake, budget=Budget(max_calls=10, max_tokens=150))
    results = [guarded.ask(REQUEST) for _ in range(4)]
    # 70 tokens a call: the third call starts at 140 < 150, the fourth finds it spent.
    assert [r.failure for r in results] == [None, None, None, "budget"]
    assert len(fake.requests) == 3
    calls = GuardedModel(fake, budget=Budget(max_calls=1, max_tokens=10**6))
    assert [calls.ask(REQUEST).failure for _ in range(2)] == [None, "budget"]


def test_concurrency_is_limited() -> None:
    lock = threading.Lock()
    inflight = [0, 0]  # now, most

    def slow(request: ModelRequest) -> str:
        with lock:
            inflight[0] += 1
            inflight[1] = max(inflight[1], inflight[0])
        time.sleep(0.05)
        with lock:
            inflight[0] -= 1
        return "{}"

    guarded = GuardedModel(ScriptedModel(slow), concurrency=2)
    threads = [threading.Thread(target=guarded.ask, args=(REQUEST,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inflight[1] == 2


def test_settings_read_the_openai_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert model_for(Settings()) is None  # off by default
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    with pytest.raises(InputError, match="EXDESK_LLM_MODEL"):
        model_for(Settings())
    monkeypatch.setenv("EXDESK_LLM_MODEL", "qwen")
    monkeypatch.setenv("EXDESK_LLM_TIMEOUT_S", "3")
    settings = Settings()
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert settings.openai_api_key == "sk-local" and settings.llm_timeout_s == 3
    guarded = model_for(settings)
    assert guarded is not None and guarded.name == "qwen" and guarded.timeout_s == 3
    assert Settings(openai_base_url="http://x/v1").openai_base_url == "http://x/v1"


def test_no_test_reaches_a_real_endpoint() -> None:
    """The autouse guard in tests/conftest.py: a request off this machine fails the test."""
    with pytest.raises(pytest.fail.Exception, match="never reach a real endpoint"):
        httpx.get("https://api.openai.com/v1/models")
    model = OpenAIChatModel(base_url="https://api.openai.com/v1", api_key="sk", model="gpt")
    with pytest.raises(pytest.fail.Exception):
        model.complete(REQUEST, timeout=1)
