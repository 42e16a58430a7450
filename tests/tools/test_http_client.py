"""The leash of the HTTP backends: what is retried and how often, with which key, how long
it waits, when the circuit opens and closes, and which tool error each failure becomes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from domain.errors import ToolRejected, ToolUnavailable
from tools.http_client import (
    KEY_HEADER,
    REPLAY_OF_HEADER,
    REPLAYED_HEADER,
    REQUEST_HEADER,
    CircuitBreaker,
    HttpPort,
    Leash,
)

Answer = Callable[[httpx.Request], httpx.Response]


@dataclass
class Script:
    """Answers requests in turn (the last one again when they run out), and keeps them."""

    answers: list[Answer]
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answers[min(len(self.seen), len(self.answers)) - 1](request)


def status(code: int, body: object = None, **headers: str) -> Answer:
    return lambda request: httpx.Response(code, json=body or {"detail": "x"}, headers=headers)


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def port(script: Script, sleeps: list[float] | None = None, **leash: float) -> HttpPort:
    waits = sleeps if sleeps is not None else []
    return HttpPort(
        "inventory",
        "http://127.0.0.1:9",
        leash=Leash(**{"retries": 3, "backoff_s": 0.1, "breaker_failures": 100, **leash}),
        transport=httpx.MockTransport(script),
        sleep=waits.append,
    )


def reserve(p: HttpPort) -> dict[str, object]:
    return p.call("POST", "/inventory/reservations", body={"qty": 1}, key="k-1", world_id="w")


def test_retryable_failures_are_retried_under_the_same_key_then_answered() -> None:
    script = Script([timeout, status(503), status(502), status(200, {"reserved": 1})])
    sleeps: list[float] = []
    assert reserve(port(script, sleeps)) == {"reserved": 1}
    assert len(script.seen) == 4
    assert {r.headers[KEY_HEADER] for r in script.seen} == {"k-1"}
    assert len({r.headers[REQUEST_HEADER] for r in script.seen}) == 1
    assert [r.headers["Exdesk-World"] for r in script.seen] == ["w"] * 4
    # Exponential backoff with jitter: each wait in [half, all] of 0.1 × 2ⁿ.
    assert len(sleeps) == 3
    assert all(0.1 * 2**n / 2 <= wait <= 0.1 * 2**n for n, wait in enumerate(sleeps))


def test_retries_are_bounded_and_end_unavailable() -> None:
    script = Script([status(500)])
    with pytest.raises(ToolUnavailable, match=r"inventory is unavailable: .*HTTP 500.*4 tries"):
        reserve(port(script))
    assert len(script.seen) == 4


def test_a_refusal_is_not_retried() -> None:
    script = Script([status(409, {"error": "rejected", "detail": "only 2 of SKU-1 available"})])
    with pytest.raises(ToolRejected, match="only 2 of SKU-1 available"):
        reserve(port(script))
    assert len(script.seen) == 1


def test_retry_after_is_honoured_within_the_cap() -> None:
    script = Script([status(429, None, **{"Retry-After": "2"}), status(200, {"reserved": 1})])
    sleeps: list[float] = []
    reserve(port(script, sleeps, backoff_max_s=1.5))
    assert sleeps == [1.5]


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(200, text="<html>ok</html>"),
        lambda r: httpx.Response(200, json=[1, 2]),
        lambda r: httpx.Response(302, headers={"Location": "/login"}),
    ],
)
def test_an_answer_that_is_not_a_json_object_is_unavailable(answer: Answer) -> None:
    with pytest.raises(ToolUnavailable):
        reserve(port(Script([answer])))


def test_a_replay_is_marked_unless_it_is_the_calls_own_lost_answer() -> None:
    replay = status(200, {"reserved": 1}, **{REPLAYED_HEADER: "true"})
    assert reserve(port(Script([replay]))) == {"reserved": 1, "replayed": True}
    # Lost to a timeout, answered again to the retry: this call's own answer.
    assert reserve(port(Script([timeout, replay]))) == {"reserved": 1}
    # Refused connections never reached the shop: a replay after them is a repeat.
    assert reserve(port(Script([refused, replay]))) == {"reserved": 1, "replayed": True}

    def replay_of(request_id: str | None) -> Answer:
        def answer(request: httpx.Request) -> httpx.Response:
            rid = request_id or request.headers[REQUEST_HEADER]
            headers = {REPLAYED_HEADER: "true", REPLAY_OF_HEADER: rid}
            return httpx.Response(200, json={"reserved": 1}, headers=headers)

        return answer

    # A shop that names the request that acted settles it, lost answers or not.
    assert reserve(port(Script([status(500), replay_of("someone-else")]))) == {
        "reserved": 1,
        "replayed": True,
    }
    assert reserve(port(Script([status(500), replay_of(None)]))) == {"reserved": 1}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_fails_fast_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow() is None
        breaker.failed()
    assert breaker.state == "closed"
    breaker.failed()
    assert breaker.state == "open"
    assert breaker.allow() == 10
    clock.now = 10
    assert breaker.state == "half-open"
    assert breaker.allow() is None  # one trial
    assert breaker.allow() == 0  # and no second one while it is out
    breaker.failed()  # the trial failed: open again, for another 10 s
    assert breaker.state == "open"
    clock.now = 20
    assert breaker.allow() is None
    breaker.succeeded()
    assert breaker.state == "closed"


def test_an_open_circuit_sends_nothing() -> None:
    script = Script([refused])
    p = port(script, retries=1, breaker_failures=4, breaker_reset_s=60)
    for _ in range(2):  # two calls of two tries: the 4th failure opens the circuit
        with pytest.raises(ToolUnavailable, match="2 tries"):
            reserve(p)
    assert len(script.seen) == 4
    assert p.breaker.state == "open"
    with pytest.raises(ToolUnavailable, match="circuit open"):
        reserve(p)
    assert len(script.seen) == 4


def test_a_refusal_is_an_answer_and_keeps_the_circuit_closed() -> None:
    script = Script([status(500), status(409), status(500), status(409)])
    p = port(script, retries=0, breaker_failures=2)
    for _ in range(2):
        with pytest.raises(ToolUnavailable):
            reserve(p)
        with pytest.raises(ToolRejected):
            reserve(p)
    assert p.breaker.state == "closed"


def test_a_real_refused_port_is_unavailable() -> None:
    p = HttpPort("notify", "http://127.0.0.1:9", leash=Leash(retries=1, backoff_s=0.01))
    with pytest.raises(ToolUnavailable, match=r"notify is unavailable: .*cannot connect"):
        p.call("POST", "/notify/orders/X/messages", body={}, key="k")
    p.close()
