"""Reading input files: every line a model, an error or a notice; the rest still read."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from domain.errors import InputError
from domain.models import Order, World
from evals.cases import EvalCase
from service.inputs import (
    MAX_LINE_BYTES,
    Parsed,
    describe_errors,
    read_json,
    read_jsonl,
    read_past_cases,
    unique_by,
)
from tests.factories import example
from tests.knowledge.support import ORDER
from tests.knowledge.test_cases import good_case


def _order(order_id: str, **changes: Any) -> dict[str, Any]:
    raw = example("EX-clean-001")["order"]
    raw.update(order_id=order_id, **changes)
    return raw


def _line(order_id: str, **changes: Any) -> bytes:
    return json.dumps(_order(order_id, **changes), ensure_ascii=False).encode()


def _write(path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    path.write_bytes(b"".join(line + end for line in lines))
    return path


def _read(path: Path, **kw: Any) -> list[Parsed[Order]]:
    return list(read_jsonl(path, Order, **kw))


def _ids(parsed: list[Parsed[Order]]) -> list[tuple[int, str]]:
    return [(p.line, p.value.order_id) for p in parsed if p.value is not None]


def _errors(parsed: list[Parsed[Order]]) -> list[str]:
    return [p.error for p in parsed if p.error is not None]


def test_a_plain_file(tmp_path: Path) -> None:
    parsed = _read(_write(tmp_path / "o.jsonl", [_line("A"), _line("B")]))
    assert _ids(parsed) == [(1, "A"), (2, "B")]
    assert [p.kind for p in parsed] == ["value", "value"]


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _line("A") + b"\r\n" + _line("B") + b"\r\n" + _line("C"))
    parsed = _read(path)
    assert _ids(parsed) == [(1, "A"), (2, "B"), (3, "C")]
    assert all(p.error is None and p.notice is None for p in parsed)


def test_joined_files_keep_working_with_a_second_byte_order_mark(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", [_line("A"), b"\xef\xbb\xbf" + _line("B")])
    assert _ids(_read(path)) == [(1, "A"), (2, "B")]


def test_a_byte_that_is_not_utf8_names_the_line_and_the_rest_is_read(tmp_path: Path) -> None:
    bad = _line("B", notes="caf\xe9").replace("café".encode(), b"caf\xe9")
    path = _write(tmp_path / "orders.jsonl", [_line("A"), bad, _line("C")])
    parsed = _read(path)
    assert _ids(parsed) == [(1, "A"), (3, "C")]
    column = bad.index(b"\xe9") + 1
    assert _errors(parsed) == [
        f"{path} line 2: not UTF-8 text (byte 0xE9 at column {column}); "
        "save the file as UTF-8 and run again"
    ]
    assert parsed[1].kind == "error"


def test_a_latin1_file_is_refused_line_by_line_not_with_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(json.dumps(_order("Ä-1")).encode().replace(b"\\u00c4", b"\xc4") + b"\n")
    (error,) = _errors(_read(path))
    assert "line 1: not UTF-8 text (byte 0xC4" in error


def test_an_empty_line_is_a_notice_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(_line("A") + b"\n\n" + _line("B") + b"\n \t\r\n" + _line("C") + b"\n")
    parsed = _read(path)
    assert _ids(parsed) == [(1, "A"), (3, "B"), (5, "C")]
    assert _errors(parsed) == []
    notices = [(p.line, p.notice) for p in parsed if p.kind == "notice"]
    assert notices == [
        (2, f"{path} line 2: empty line, ignored"),
        (4, f"{path} line 4: empty line, ignored"),
    ]
    assert all(p.value is None and p.error is None for p in parsed if p.kind == "notice")


def test_the_final_newline_is_no_empty_line(tmp_path: Path) -> None:
    for end in (b"\n", b"\r\n"):
        parsed = _read(_write(tmp_path / "o.jsonl", [_line("A"), _line("B")], end))
        assert [p.kind for p in parsed] == ["value", "value"]
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert _read(tmp_path / "empty.jsonl") == []


def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    huge = b'{"order_id": "' + b"x" * (2 * MAX_LINE_BYTES) + b'"}'
    path = _write(tmp_path / "orders.jsonl", [_line("A"), huge, _line("C")])
    tracemalloc.start()
    try:
        parsed = _read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _ids(parsed) == [(1, "A"), (3, "C")]
    (error,) = _errors(parsed)
    assert error.startswith(f"{path} line 2: the line is 2.0 MiB ({len(huge)} bytes)")
    assert "more than the 1.0 MiB a line may hold" in error
    assert peak < 1.5 * MAX_LINE_BYTES  # the 2 MiB line was never held whole


def test_the_line_limit_is_a_keyword_and_bounds_memory(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", [b"[" * 3_000_000, _line("B"), b"y" * 5000])
    tracemalloc.start()
    try:
        parsed = _read(path, max_line_bytes=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _ids(parsed) == [(2, "B")]
    errors = _errors(parsed)
    assert len(errors) == 2
    assert "line 1: the line is 2.9 MiB (3000000 bytes), more than the 9.8 KiB" in errors[0]
    assert errors[1].startswith(f"{path} line 3: not valid JSON")
    assert peak < 1_000_000


def test_a_line_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    line = _line("A")
    path = _write(tmp_path / "o.jsonl", [line, line.replace(b'"A"', b'"B"')], b"\r\n")
    assert _ids(_read(path, max_line_bytes=len(line))) == [(1, "A"), (2, "B")]
    (error,) = _errors(_read(path, max_line_bytes=len(line) - 1))[:1]
    assert f"line 1: the line is {len(line)} bytes, more than the {len(line) - 1} bytes" in error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{not json", r"line 2: not valid JSON \(Expecting property name .* at column 2\)"),
        (b'{"order_id": NaN}', r"line 2: not valid JSON \(NaN is not a JSON number"),
        (b'{"a": 1, "a": 2}', r"line 2: not valid JSON \(key 'a' appears twice in one object"),
        (b"[" * 100_000, r"line 2: not valid JSON \(nested too deeply\)"),
        (b'{"n": ' + b"9" * 5000 + b"}", r"line 2: not valid JSON \(.*digits"),
        (b"[1, 2]", r"line 2: an array, where a JSON object \{\.\.\.\} is expected"),
        (b'"A-1"', r"line 2: a string, where a JSON object"),
        (b"42", r"line 2: a number, where a JSON object"),
        (b"null", r"line 2: null, where a JSON object"),
    ],
)
def test_lines_that_are_no_json_object(tmp_path: Path, text: bytes, message: str) -> None:
    path = _write(tmp_path / "o.jsonl", [_line("A"), text, _line("C")])
    parsed = _read(path)
    assert _ids(parsed) == [(1, "A"), (3, "C")]
    (error,) = _errors(parsed)
    assert error.startswith(str(path))
    assert error.endswith("; fix it and run again")
    assert __import__("re").search(message, error), error


def test_a_validation_error_names_the_field(tmp_path: Path) -> None:
    raw = _order("B")
    raw["lines"][0]["qty"] = 0
    path = _write(tmp_path / "orders.jsonl", [_line("A"), json.dumps(raw).encode()])
    (error,) = _errors(_read(path))
    assert error == (
        f"{path} line 2: lines.0.qty: Input should be greater than 0 (got 0); fix it and run again"
    )


def test_long_offending_values_are_cut_short(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", [_line("x" * 5000)])
    (error,) = _errors(_read(path))
    assert "order_id: String should have at most 200 characters (got 'xxxx" in error
    assert "… (5000 characters))" in error
    assert len(error) < 300


def test_a_file_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.jsonl: cannot open .*check the path"):
        _read(tmp_path / "missing.jsonl")


# --- the same id twice -------------------------------------------------------------------


def test_the_same_order_id_twice_keeps_the_first_and_names_both_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "orders.jsonl",
        [_line("A-0"), _line("A-1"), b"", b"{bad", _line("A-2"), _line("A-3"), _line("A-1")],
    )
    parsed = list(read_jsonl(path, Order))
    good, errors = unique_by(parsed, lambda o: o.order_id, path, "order_id", what="order")
    assert _ids(good) == [(1, "A-0"), (2, "A-1"), (5, "A-2"), (6, "A-3")]
    assert len(errors) == 2
    assert errors[0].startswith(f"{path} line 4: not valid JSON")
    assert errors[1] == (
        f"{path} line 7: order_id 'A-1' is already on line 2; "
        "give each order its own order_id (line 7 skipped)"
    )
    assert [p.line for p in parsed if p.kind == "notice"] == [3]


def test_the_same_eval_case_id_twice(tmp_path: Path) -> None:
    case = example("EX-clean-001")
    other = dict(case, id="EX-other")
    path = _write(
        tmp_path / "cases.jsonl",
        [json.dumps(c).encode() for c in (case, other, case)],
    )
    good, errors = unique_by(read_jsonl(path, EvalCase), lambda c: c.id, path, "id")
    assert [p.value.id for p in good if p.value is not None] == ["EX-clean-001", "EX-other"]
    assert errors == [
        f"{path} line 3: id 'EX-clean-001' is already on line 1; "
        "give each line its own id (line 3 skipped)"
    ]


def test_parsed_is_built_as_before() -> None:
    assert Parsed(3, None, "bad").kind == "error"
    assert Parsed(line=3, value=None, error=None, notice="empty").kind == "notice"
    assert Parsed(line=1, value=Order.model_validate(_order("A")), error=None).kind == "value"
    assert callable(describe_errors)


# --- past cases --------------------------------------------------------------------------


def test_past_cases_good_lines_kept_bad_lines_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "cases.jsonl",
        [
            json.dumps(good_case("A")).encode(),
            json.dumps(good_case("B", outcome={"success": "maybe"})).encode(),
            b"",
            b"{not json",
            json.dumps(
                good_case("C", summary="上海仓缺货，改由深圳仓发货", order=ORDER),
                ensure_ascii=False,
            ).encode(),
            json.dumps(good_case("D", resolved_at="2026-10-01T12:00:00")).encode(),
            json.dumps(good_case("E", strategy="teleport", kind="lost")).encode(),
            json.dumps(good_case("A", summary="again")).encode(),
            b"\xff\xfe",
        ],
    )
    cases, errors = read_past_cases(path)
    assert [c.case_id for c in cases] == ["A", "C"]
    assert cases[0].summary.startswith("WH-SHA")
    assert cases[1].order is not None and cases[1].order.order_id == "O-1"
    assert len(errors) == 6
    assert errors[0] == (
        f"{path} line 2: outcome.success: Input should be a valid boolean, unable to interpret "
        "input (got 'maybe'); fix it and run again"
    )
    assert errors[1].startswith(f"{path} line 4: not valid JSON")
    assert errors[2].startswith(f"{path} line 6: resolved_at: Input should have timezone info")
    assert f"{path} line 7: kind:" in errors[3] and "; strategy:" in errors[3]
    assert errors[4] == (
        f"{path} line 8: case_id 'A' is already on line 1; "
        "give each past case its own case_id (line 8 skipped)"
    )
    assert errors[5].startswith(f"{path} line 9: not UTF-8 text (byte 0xFF at column 1)")
    assert all(e.endswith(("run again", "skipped)")) for e in errors)


def test_past_cases_missing_fields_are_named(tmp_path: Path) -> None:
    raw = good_case("A")
    del raw["outcome"]["success"], raw["summary"]
    _, errors = read_past_cases(_write(tmp_path / "c.jsonl", [json.dumps(raw).encode()]))
    assert "line 1: summary: Field required; outcome.success: Field required" in errors[0]


def test_past_cases_from_a_file_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.jsonl: cannot open"):
        read_past_cases(tmp_path / "missing.jsonl")


# --- whole JSON documents ----------------------------------------------------------------


def _world_bytes() -> bytes:
    return json.dumps(example("EX-clean-001")["world"], indent=2).encode()


def test_read_json_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    path.write_bytes(b"\xef\xbb\xbf" + _world_bytes().replace(b"\n", b"\r\n"))
    assert read_json(path, World) == World.model_validate(example("EX-clean-001")["world"])


def test_read_json_names_a_byte_that_is_not_utf8(tmp_path: Path) -> None:
    data = _world_bytes()
    cut = data.index(b"\n", data.index(b"\n") + 1) + 3  # on line 3
    path = tmp_path / "world.json"
    path.write_bytes(data[:cut] + b"\x80" + data[cut:])
    with pytest.raises(InputError) as info:
        read_json(path, World)
    assert str(info.value) == (
        f"{path} line 3: not UTF-8 text (byte 0x80 at byte offset {cut}); "
        "save the file as UTF-8 and run again"
    )


def test_read_json_bad_json_and_bad_fields(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    path.write_bytes(b'{\n  "now": \n}')
    with pytest.raises(InputError, match=r"world\.json line 3: not valid JSON \(Expecting value"):
        read_json(path, World)
    path.write_bytes(b'{"now": 12345}')
    with pytest.raises(InputError, match=r"world\.json: now: .*not an RFC 3339 timestamp"):
        read_json(path, World)
    path.write_bytes(b'{"now": "2026-11-20T09:00:00+08:00", "now": "2027-01-01T00:00:00Z"}')
    with pytest.raises(InputError, match="key 'now' appears twice"):
        read_json(path, World)
    with pytest.raises(InputError, match=r"nothing\.json: cannot read"):
        read_json(tmp_path / "nothing.json", World)
