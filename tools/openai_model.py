"""``OpenAIChatModel``: the model port over the ``openai`` package, for any OpenAI-compatible
endpoint (OpenAI itself, vLLM, llama.cpp's server, Ollama).

A structured request is asked as a ``response_format`` JSON schema (``output="json_schema"``)
or as the arguments of one tool the model must call (``output="tool"``), since servers differ
in what they support. Whatever comes back, the answer's text is the tool call's arguments when
there is one, else the message's content: both forms are accepted. The client's own retries
are off; ``tools.model.GuardedModel`` retries, with backoff, within the run's budget.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from tools.model import (
    ModelAnswer,
    ModelRefused,
    ModelRequest,
    ModelTimeout,
    ModelUnavailable,
    Output,
)


class OpenAIChatModel:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        output: Output = "json_schema",
        client: openai.OpenAI | None = None,
    ) -> None:
        self.name = model
        self.output = output
        self._client = client or openai.OpenAI(
            base_url=base_url,
            # Local servers need no key; the package insists on one.
            api_key=api_key or "none",
            max_retries=0,
        )

    def complete(self, request: ModelRequest, *, timeout: float) -> ModelAnswer:
        extra: dict[str, Any] = {}
        if request.schema is not None:
            name = request.schema_name or "answer"
            if self.output == "tool":
                extra["tools"] = [
                    {
                        "type": "function",
                        "function": {
                            "name": name,
                            "description": "Give the answer as this function's arguments.",
                            "parameters": request.schema,
                        },
                    }
                ]
                extra["tool_choice"] = {"type": "function", "function": {"name": name}}
            else:
                extra["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": request.schema, "strict": True},
                }
        try:
            response = self._client.chat.completions.create(
                model=self.name,
                messages=list(request.messages),  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                temperature=0,
                timeout=timeout,
                **extra,
            )
        except openai.APITimeoutError as exc:
            raise ModelTimeout(f"no answer within {timeout:g} s") from exc
        except openai.APIConnectionError as exc:
            raise ModelUnavailable(f"cannot reach the endpoint ({exc})") from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            detail = f"the endpoint answered HTTP {status}"
            if status in (408, 409, 429) or status >= 500:
                raise ModelUnavailable(detail) from exc
            raise ModelRefused(detail) from exc
        except openai.OpenAIError as exc:  # an answer the package cannot read at all
            raise ModelUnavailable(f"unreadable answer ({type(exc).__name__}: {exc})") from exc
        return _answer(response, self.name)


def _answer(response: Any, model: str) -> ModelAnswer:
    usage = getattr(response, "usage", None)
    tokens: dict[str, Any] = {
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
    }
    name = str(getattr(response, "model", None) or model)
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ModelAnswer(text="", via="content", model=name, **tokens)
    message = choices[0].message
    calls = getattr(message, "tool_calls", None) or []
    if calls:
        arguments = getattr(getattr(calls[0], "function", None), "arguments", "")
        if not isinstance(arguments, str):  # some servers send an object, not its JSON
            arguments = json.dumps(arguments, ensure_ascii=False)
        tool = str(getattr(getattr(calls[0], "function", None), "name", "") or "")
        return ModelAnswer(text=arguments, via="tool_call", model=name, tool=tool, **tokens)
    return ModelAnswer(text=str(message.content or ""), via="content", model=name, **tokens)
