"""docs/events.md is the schema of events out: its field tables are read here and checked
against what the outbox writes for every event type, so the page cannot drift from the code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.events import EVENT_TYPES, event_id
from service.settings import Settings
from service.wiring import Exdesk
from tests.service.events_helpers import every_kind_of_event, settings
from tools.event_sinks import CONTENT_TYPE, EVENT_ID_HEADER, SIGNATURE_HEADER, signature

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
_TABLE = re.compile(r"<!-- fields: (?P<name>[\w.]+) -->\n(?P<table>(?:\|.*\n)+)")
_ROW = re.compile(r"^\| `(?P<field>\w+)` \| (?P<type>[^|]+) \| (?P<present>[^|]+) \|")

_BASE: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "array of objects": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
}


def _checker(type_text: str) -> Callable[[Any], bool]:
    """A predicate for a documented type such as ``string or null``."""
    base, nullable = type_text.strip(), False
    if base.endswith(" or null"):
        base, nullable = base.removesuffix(" or null"), True
    assert base in _BASE, f"docs/events.md: unknown field type {type_text!r}"
    check = _BASE[base]
    return lambda v: (nullable and v is None) or check(v)


Fields = dict[str, tuple[Callable[[Any], bool], bool]]  # field → (type check, always there)


def documented() -> dict[str, Fields]:
    tables: dict[str, Fields] = {}
    for match in _TABLE.finditer(DOC.read_text(encoding="utf-8")):
        fields: Fields = {}
        for line in match["table"].splitlines()[2:]:
            row = _ROW.match(line)
            assert row, f"docs/events.md: a field row that does not read: {line!r}"
            assert row["field"] not in fields, f"{match['name']}: {row['field']} twice"
            fields[row["field"]] = (_checker(row["type"]), row["present"].strip() == "always")
        tables[match["name"]] = fields
    return tables


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every event the outbox holds after a scenario that makes every type."""
    path = tmp_path_factory.mktemp("events-doc")
    app = Exdesk(settings(path, None))
    try:
        every_kind_of_event(app)
        return [json.loads(r.body) for r in app.outbox.list()]
    finally:
        app.close()


def _agrees(where: str, fields: Fields, value: dict[str, Any]) -> None:
    undocumented = set(value) - set(fields)
    assert not undocumented, f"{where}: written but not in docs/events.md: {undocumented}"
    for name, (check, always) in fields.items():
        if name not in value:
            assert not always, f"{where}: docs/events.md says {name} is always there"
            continue
        assert check(value[name]), f"{where}.{name}: {value[name]!r} is not what the doc says"


def test_the_doc_documents_every_type_and_only_those() -> None:
    tables = documented()
    assert set(tables) == {"envelope", "common", *EVENT_TYPES}
    for type in EVENT_TYPES:  # a type's own fields never repeat the common ones
        assert not set(tables[type]) & set(tables["common"]), type


def test_every_event_written_has_the_fields_the_doc_lists(written: list[dict[str, Any]]) -> None:
    tables = documented()
    assert {e["type"] for e in written} == set(EVENT_TYPES)
    seen: dict[str, set[str]] = {}
    for event in written:
        type = event["type"]
        _agrees(f"{type} envelope", tables["envelope"], event)
        assert event["specversion"] == "1.0" and event["datacontenttype"] == "application/json"
        assert event["id"] == event_id(event["source"], event["data"]["audit_seq"], type)
        type_fields = tables[type]
        _agrees(f"{type} data", {**tables["common"], **type_fields}, event["data"])
        seen.setdefault(type, set()).update(event["data"])
    for type in EVENT_TYPES:  # a field the doc says is always there was seen in the scenario
        always = {f for f, (_, a) in tables[type].items() if a}
        assert always <= seen[type], type


def test_a_field_the_doc_does_not_list_is_caught(written: list[dict[str, Any]]) -> None:
    tables = documented()
    event = next(e for e in written if e["type"] == "plan.approved")
    fields = {**tables["common"], **tables["plan.approved"]}
    with pytest.raises(AssertionError, match=r"not in docs/events\.md"):
        _agrees("plan.approved", fields, {**event["data"], "surprise": 1})
    with pytest.raises(AssertionError, match="always there"):
        _agrees("plan.approved", fields, {k: v for k, v in event["data"].items() if k != "tier"})
    with pytest.raises(AssertionError, match="not what the doc says"):
        _agrees("plan.approved", fields, {**event["data"], "audit_seq": "40"})


def _python_block_after(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    at = text.index(heading)
    start = text.index("```python\n", at) + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_docs_verification_example_checks_exdesks_signature() -> None:
    scope: dict[str, Any] = {}
    exec(_python_block_after("### Verifying the signature"), scope)
    verify = scope["verify"]
    body = b'{"id":"x","type":"plan.approved"}'
    header = signature("s3cret", body)
    assert verify("s3cret", body, header)
    assert not verify("other", body, header)
    assert not verify("s3cret", body + b" ", header)
    assert not verify("s3cret", body, None)
    assert not verify("s3cret", body, header.removeprefix("sha256="))


def test_the_doc_names_the_headers_subjects_and_defaults_the_code_uses() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    defaults = Settings()
    for name in (SIGNATURE_HEADER, EVENT_ID_HEADER, CONTENT_TYPE, "Nats-Msg-Id"):
        assert f"`{name}`" in text, name
    assert f"`{defaults.events_subject}.plan.approved`" in text
    assert f"(default `{defaults.events_stream}`)" in text
    for name in Settings.model_fields:
        if name.startswith("events_"):
            assert f"`EXDESK_{name.upper()}`" in text, f"docs/events.md lacks {name}"
