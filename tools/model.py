"""The model port: a chat model behind any OpenAI-compatible endpoint, and the leash around it.

``ChatModel`` is the port (``OpenAIChatModel`` in ``tools.openai_model`` over the ``openai``
package, ``ScriptedModel`` in ``tools.fake_model`` for tests). ``GuardedModel`` is what exdesk
calls: a timeout per try, bounded retries with backoff, a budget of calls and tokens per run,
and a limit on calls in flight. It never raises for the endpoint's trouble: an ``Attempt``
says what happened, and the caller goes on without a model (contract §8).

A model only proposes and explains. Nothing here reads its answer: ``domain.reading`` checks
it, and code decides what follows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from domain.errors import ExdeskError

Output = Literal["json_schema", "tool"]


class ModelError(ExdeskError):
    """The endpoint did not answer usefully (a timeout, an error status, no connection)."""

    retryable = True


class ModelTimeout(ModelError):
    """No answer within the timeout."""


class ModelUnavailable(ModelError):
    """The endpoint could not be reached, or answered with a server error or a rate limit."""


class ModelRefused(ModelError):
    """The endpoint refused the request itself (a 4xx other than 408/429): trying again would
    not help."""

    retryable = False


@dataclass(frozen=True)
class ModelRequest:
    """One call. ``messages`` are chat messages (``{"role", "content"}``); untrusted text goes
    only in a message of its own, as JSON data (see ``agent.prompts``). With ``schema`` the
    answer must be one JSON object of that schema: asked as ``response_format`` or as the
    arguments of the one tool ``schema_name``, as ``output`` says; either form is accepted
    back."""

    purpose: str
    messages: tuple[dict[str, str], ...]
    schema_name: str | None = None
    schema: dict[str, Any] | None = None
    max_tokens: int = 400


@dataclass(frozen=True)
class ModelAnswer:
    text: str  # the JSON text (content, or the tool call's arguments), or the plain text
    via: Literal["content", "tool_call"]
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool: str | None = None  # the tool the model called, for an answer given as a tool call

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatModel(Protocol):
    """A chat model. ``complete`` raises ``ModelError`` (never anything else) when the endpoint
    does not answer."""

    name: str

    def complete(self, request: ModelRequest, *, timeout: float) -> ModelAnswer: ...


@dataclass
class Budget:
    """What one run may spend on the model: calls and tokens (prompt + completion)."""

    max_calls: int
    max_tokens: int
    calls: int = 0
    tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_call(self) -> bool:
        with self._lock:
            if self.calls >= self.max_calls or self.tokens >= self.max_tokens:
                return False
            self.calls += 1
            return True

    def spend(self, tokens: int) -> None:
        with self._lock:
            self.tokens += max(tokens, 0)


@dataclass(frozen=True)
class Attempt:
    """What asking the model came to: an answer, or why there is none."""

    answer: ModelAnswer | None
    failure: str | None  # "timeout", "unavailable", "refused", "budget"
    detail: str = ""
    tries: int = 0
    seconds: float = 0.0


@dataclass
class Stats:
    calls: int = 0
    answers: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    # what readings came to: "read", "dropped" (the answer failed the checks), "failed"
    outcomes: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def outcome(self, status: str) -> None:
        with self._lock:
            self.outcomes[status] = self.outcomes.get(status, 0) + 1

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "answers": self.answers,
                "tokens": self.tokens,
                "failures": dict(sorted(self.failures.items())),
                "readings": dict(sorted(self.outcomes.items())),
            }

    def count(self, attempt: Attempt) -> None:
        with self._lock:
            self.calls += attempt.tries
            if attempt.answer is not None:
                self.answers += 1
                self.tokens += attempt.answer.tokens
            if attempt.failure:
                self.failures[attempt.failure] = self.failures.get(attempt.failure, 0) + 1


class GuardedModel:
    """A ``ChatModel`` on a leash: see the module."""

    def __init__(
        self,
        model: ChatModel,
        *,
        timeout_s: float = 20.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        concurrency: int = 2,
        budget: Budget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self.retries = max(retries, 0)
        self.backoff_s = backoff_s
        self.budget = budget or Budget(max_calls=500, max_tokens=500_000)
        self.stats = Stats()
        self._slots = threading.BoundedSemaphore(max(concurrency, 1))
        self._sleep = sleep

    @property
    def name(self) -> str:
        return self.model.name

    def ask(self, request: ModelRequest) -> Attempt:
        started = time.monotonic()
        tries = 0
        last: ModelError | None = None
        for n in range(self.retries + 1):
            if n:
                self._sleep(self.backoff_s * 2 ** (n - 1))
            if not self.budget.take_call():
                attempt = Attempt(
                    None,
                    "budget",
                    f"the run's model budget is spent ({self.budget.calls} calls, "
                    f"{self.budget.tokens} tokens)",
                    tries,
                    time.monotonic() - started,
                )
                self.stats.count(attempt)
                return attempt
            tries += 1
            try:
                with self._slots:
                    answer = self.model.complete(request, timeout=self.timeout_s)
            except ModelError as exc:
                last = exc
                if not exc.retryable:
                    break
                continue
            self.budget.spend(answer.tokens)
            attempt = Attempt(answer, None, "", tries, time.monotonic() - started)
            self.stats.count(attempt)
            return attempt
        failure = (
            "timeout"
            if isinstance(last, ModelTimeout)
            else "refused"
            if isinstance(last, ModelRefused)
            else "unavailable"
        )
        attempt = Attempt(None, failure, str(last), tries, time.monotonic() - started)
        self.stats.count(attempt)
        return attempt
