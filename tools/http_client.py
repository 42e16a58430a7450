"""JSON over HTTP to a shop's system, on a leash: timeouts, bounded retries with exponential
backoff and jitter, a circuit breaker, and the answers translated into the tool errors.

What a call comes out as (the caller's compensation runs on any ``ToolError``):

- 2xx with a JSON object: the result. ``Idempotent-Replayed: true`` marks an answer the shop
  gave before to the same ``Idempotency-Key``; it is returned with ``replayed: true``, as the
  simulated backends do, unless it is this call's own answer, lost to a timeout or a 5xx and
  given again to a retry. Every try of one call carries the same ``Exdesk-Request-Id``; a shop
  that names the request that acted (``Exdesk-Replay-Of``) settles which it is, and without
  it an answer replayed to a retry of a request that may have reached the shop counts as the
  call's own.
- 4xx (but 408, 425 and 429): the shop refused, ``ToolRejected`` with its ``detail``. Not
  retried: the same request would be refused again, and a refusal keeps no record of the key.
- 408, 425, 429, 500, 502, 503, 504, a timeout or a broken connection: retried up to
  ``retries`` times, after ``backoff_s × 2ⁿ`` seconds with jitter (or the shop's
  ``Retry-After``, capped), always under the same ``Idempotency-Key``, so the shop acts once
  however many times the request arrives. Then ``ToolUnavailable``.
- ``breaker_failures`` failed requests in a row open the port's circuit: for ``breaker_reset_s``
  calls fail at once with ``ToolUnavailable``, sending nothing; then one request is let through
  and its outcome closes the circuit or opens it again.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from domain.errors import ToolRejected, ToolUnavailable

REPLAYED_HEADER = "Idempotent-Replayed"
KEY_HEADER = "Idempotency-Key"
WORLD_HEADER = "Exdesk-World"
REQUEST_HEADER = "Exdesk-Request-Id"
REPLAY_OF_HEADER = "Exdesk-Replay-Of"
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Leash:
    """How patient a port is with its system (see the module)."""

    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    retries: int = 3
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0


class CircuitBreaker:
    """Closed, open (for ``reset_s``, after ``failures`` failures in a row) or half-open (one
    trial request). Thread-safe; one per port of a process."""

    def __init__(
        self, *, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures, self.reset_s, self._clock = failures, reset_s, clock
        self._lock = threading.Lock()
        self._failed = 0
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial request is out

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_s:
            return "half-open"
        return "open"

    def allow(self) -> float | None:
        """None when a request may go now; else the seconds until the circuit half-opens."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return None
            if state == "half-open" and not self._trial:
                self._trial = True
                return None
            assert self._opened_at is not None
            return max(0.0, self.reset_s - (self._clock() - self._opened_at))

    def succeeded(self) -> None:
        with self._lock:
            self._failed, self._opened_at, self._trial = 0, None, False

    def failed(self) -> None:
        with self._lock:
            self._failed += 1
            if self._trial or self._failed >= self.failures:
                self._opened_at, self._trial = self._clock(), False


class _Retry(Exception):
    """One attempt that failed in a way worth trying again."""

    def __init__(self, why: str, *, reached: bool, wait: float | None = None) -> None:
        super().__init__(why)
        self.why, self.reached, self.wait = why, reached, wait


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body))
        if isinstance(detail, list):  # FastAPI's validation errors
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                for e in detail
                if isinstance(e, dict)
            )
        return str(detail)[:1000]
    return str(body)[:300]


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return min(cap, max(0.0, float(raw))) if raw else None
    except ValueError:
        return None


class HttpPort:
    """One port's system at ``base_url``: its client, leash and circuit."""

    def __init__(
        self,
        tool: str,
        base_url: str,
        *,
        leash: Leash,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tool, self.leash, self._sleep = tool, leash, sleep
        self.base_url = base_url.rstrip("/")
        self.breaker = CircuitBreaker(
            failures=leash.breaker_failures, reset_s=leash.breaker_reset_s
        )
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(leash.timeout_s, connect=leash.connect_timeout_s),
            # No Nagle delay: a request's headers and body go out without waiting for an ACK.
            transport=transport
            or httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]),
        )

    def close(self) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        world_id: str | None = None,
    ) -> dict[str, Any]:
        """One call (see the module): the answer's JSON object, or a ``ToolError``."""
        headers = {KEY_HEADER: key} if key is not None else {}
        if world_id is not None:
            headers[WORLD_HEADER] = quote(world_id, safe="")  # header values are ASCII
        request_id = uuid.uuid4().hex  # the same for every try of this call
        headers[REQUEST_HEADER] = request_id
        sent = False  # an earlier try may have reached the shop
        last = "no request was sent"
        for attempt in range(self.leash.retries + 1):
            wait = self.breaker.allow()
            if wait is not None:
                raise ToolUnavailable(
                    self.tool,
                    f"{self.base_url} failed {self.leash.breaker_failures} times in a row "
                    f"(last: {last}); circuit open, next try in {wait:.1f} s",
                )
            try:
                result, replayed = self._once(method, path, body, headers)
            except _Retry as failure:
                self.breaker.failed()
                sent = sent or failure.reached
                last = failure.why
                if attempt == self.leash.retries:
                    break
                self._sleep(self._backoff(attempt, failure.wait))
                continue
            except ToolRejected:
                self.breaker.succeeded()  # the shop answered: a refusal is an answer
                raise
            except ToolUnavailable:
                self.breaker.failed()  # it answered, but not with anything usable
                raise
            self.breaker.succeeded()
            own = replayed == request_id or (replayed == "" and sent)
            if replayed is not None and not own:
                return {**result, "replayed": True}
            return result
        tries = self.leash.retries + 1
        raise ToolUnavailable(
            self.tool, f"{method} {self.base_url}{path}: {last} ({tries} tries); try again later"
        )

    def _backoff(self, attempt: int, asked: float | None) -> float:
        if asked is not None:
            return asked
        ceiling = min(self.leash.backoff_max_s, self.leash.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # equal jitter: spread, never zero

    def _once(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[dict[str, Any], str | None]:
        """The answer, and None if it is not a replay, else the id of the request that acted
        (empty when the shop does not say)."""
        try:
            response = self._client.request(method, path, json=body, headers=headers)
        except httpx.ConnectTimeout as exc:
            raise _Retry(f"connect timeout ({exc})", reached=False) from exc
        except httpx.ConnectError as exc:
            raise _Retry(f"cannot connect ({exc})", reached=False) from exc
        except httpx.TimeoutException as exc:
            raise _Retry(f"no answer within {self.leash.timeout_s} s", reached=True) from exc
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}", reached=True) from exc
        status = response.status_code
        if status in RETRYABLE_STATUS:
            raise _Retry(
                f"HTTP {status}: {_detail(response)}",
                reached=True,
                wait=_retry_after(response, self.leash.backoff_max_s),
            )
        if 400 <= status < 500:
            raise ToolRejected(f"{self.tool}: {_detail(response)} (HTTP {status})")
        if not 200 <= status < 300:
            raise ToolUnavailable(self.tool, f"HTTP {status}: {_detail(response)}")
        try:
            result = response.json()
        except ValueError:
            result = None
        if not isinstance(result, dict):
            raise ToolUnavailable(
                self.tool, f"{method} {path} answered {status} without a JSON object"
            )
        if response.headers.get(REPLAYED_HEADER, "").lower() != "true":
            return result, None
        return result, response.headers.get(REPLAY_OF_HEADER, "")
