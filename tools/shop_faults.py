"""Faults the reference shop injects, for tests and drills: set with ``PUT /_reference/faults``
(a list of ``Fault``), they fail, delay or lose the answers of a share of the requests. The
shop also logs every request it saw (``GET /_reference/requests``), so that a test can count
the tries of one call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

FaultMode = Literal["fail-before", "fail-after", "delay-before", "delay-after"]


class Fault(BaseModel):
    """What to do to requests of ``op`` (``tool.op`` as in the registry, ``orders.get``,
    ``facts.view``, or ``*``): ``fail-before`` answers ``status`` without acting;
    ``fail-after`` acts, then answers ``status`` (the answer is lost); ``delay-before`` and
    ``delay-after`` wait ``seconds`` before acting or before answering (longer than the
    client's timeout: a timeout; shorter: a slow answer). Applies to every ``every``-th
    matching request, ``times`` times (0: without end)."""

    op: str = "*"
    mode: FaultMode
    status: int = Field(default=503, ge=400, le=599)
    seconds: float = Field(default=0.0, ge=0, le=60)
    every: int = Field(default=1, ge=1)
    times: int = Field(default=1, ge=0)


@dataclass
class _Armed:
    fault: Fault
    seen: int = 0
    fired: int = 0


class Faults:
    """The faults armed on the server, and the requests it saw (for tests to count tries)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self.requests: list[dict[str, Any]] = []
        self._acted: dict[str, str] = {}

    def acted(self, key: str, request_id: str) -> None:
        """The request that acted under ``key`` (kept while the server runs, the newest
        100,000): a replay names it, so that a client tells its own lost answer from a
        repeat."""
        with self._lock:
            self._acted[key] = request_id
            while len(self._acted) > 100_000:
                del self._acted[next(iter(self._acted))]

    def acted_for(self, key: str) -> str | None:
        with self._lock:
            return self._acted.get(key)

    def arm(self, faults: list[Fault]) -> None:
        with self._lock:
            self._armed = [_Armed(f) for f in faults]

    def take(self, op: str, key: str | None, request_id: str | None) -> Fault | None:
        with self._lock:
            chosen: Fault | None = None
            for armed in self._armed:
                fault = armed.fault
                if fault.op not in ("*", op) or (fault.times and armed.fired >= fault.times):
                    continue
                armed.seen += 1
                if chosen is None and armed.seen % fault.every == 0:
                    armed.fired += 1
                    chosen = fault
            self.requests.append(
                {"op": op, "key": key, "request_id": request_id, "fault": chosen and chosen.mode}
            )
            return chosen


def problem(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "detail": detail})


@contextmanager
def faulted(fault: Fault | None) -> Iterator[Callable[[JSONResponse], JSONResponse]]:
    """Around one request: the fault's part before acting, and what it does to the answer."""
    if fault is not None and fault.mode == "delay-before":
        time.sleep(fault.seconds)
    if fault is not None and fault.mode == "fail-before":
        raise Injected(fault.status)

    def answer(response: JSONResponse) -> JSONResponse:
        if fault is not None and fault.mode == "delay-after":
            time.sleep(fault.seconds)
        if fault is not None and fault.mode == "fail-after":
            return problem(fault.status, "unavailable", "injected fault (the call was made)")
        return response

    yield answer


class Injected(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
