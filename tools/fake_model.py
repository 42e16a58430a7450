"""``ScriptedModel``: a shipped fake of the model port, for tests and drills.

It answers from a script: a list of answers taken in turn (the last one repeats), or a function
of the request. An answer is text (the model's JSON or words), a dict (sent as its JSON), or a
``ModelError`` to raise (a timeout, an outage). Every request is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from tools.model import ModelAnswer, ModelError, ModelRequest

Script = str | dict[str, Any] | ModelError


class ScriptedModel:
    def __init__(
        self,
        script: Sequence[Script] | Callable[[ModelRequest], Script],
        *,
        name: str = "scripted",
        via: str = "content",
        tokens: tuple[int, int] = (100, 20),
    ) -> None:
        self.name = name
        self._script = script
        self._via = via
        self._tokens = tokens
        self._lock = threading.Lock()
        self._turn = 0
        self.requests: list[ModelRequest] = []

    def complete(self, request: ModelRequest, *, timeout: float) -> ModelAnswer:
        with self._lock:
            self.requests.append(request)
            turn = self._turn
            self._turn += 1
        if callable(self._script):
            item = self._script(request)
        else:
            item = self._script[min(turn, len(self._script) - 1)]
        if isinstance(item, ModelError):
            raise item
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        via: Literal["content", "tool_call"] = (
            "tool_call" if self._via == "tool_call" else "content"
        )
        return ModelAnswer(
            text=text,
            via=via,
            model=self.name,
            prompt_tokens=self._tokens[0],
            completion_tokens=self._tokens[1],
        )
