"""Reading the files users feed in. Errors name the file, the line, the field and what to do.

Every JSON Lines input (orders, eval cases, past cases) goes through ``read_jsonl``: it reads
the file as bytes, one bounded line at a time, and yields for each line a model, an error or
a notice, then goes on with the rest of the file. One bad line never ends the reading, and no
line is held in memory beyond ``max_line_bytes``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from domain.errors import InputError
from knowledge.cases import PastCase

M = TypeVar("M", bound=BaseModel)

MAX_LINE_BYTES = 1 << 20  # 1 MiB: far above any real order, well below trouble
_CHUNK = 1 << 16  # a line is read this much at a time
_BOM = b"\xef\xbb\xbf"
_MAX_ERRORS_PER_LINE = 5
_MAX_SHOWN = 60  # characters of an offending value quoted in an error

ParsedKind = Literal["value", "error", "notice"]


@dataclass(frozen=True)
class Parsed(Generic[M]):
    """One line of a JSON Lines file: a ``value``, an ``error`` (the line was skipped and the
    run should fail), or a ``notice`` (the line was ignored, which is no error)."""

    line: int
    value: M | None
    error: str | None
    notice: str | None = None

    @property
    def kind(self) -> ParsedKind:
        if self.value is not None:
            return "value"
        return "error" if self.error is not None else "notice"


def _root_causes(exc: ValidationError) -> list[Any]:
    """The errors, less those that only follow from a deeper one (a tuple left too short
    because its one item failed)."""
    errors = exc.errors()
    locs = [tuple(e["loc"]) for e in errors]
    return [
        e
        for e, loc in zip(errors, locs, strict=True)
        if not any(other != loc and other[: len(loc)] == loc for other in locs)
    ]


def _shown(value: object) -> str:
    """``value``'s repr, cut short when long (an offending value may be a megabyte)."""
    text = repr(value)
    if len(text) <= _MAX_SHOWN:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:_MAX_SHOWN]}…{size}"


def describe_errors(exc: ValidationError, prefix: str = "") -> str:
    """``field.path: message (got 'value')`` for the first few errors, joined by ``; ``."""
    parts = []
    errors = _root_causes(exc)
    for err in errors[:_MAX_ERRORS_PER_LINE]:
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "(record)")
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {_shown(got)})"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}{shown}")
    more = len(errors) - _MAX_ERRORS_PER_LINE
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


# --- JSON --------------------------------------------------------------------------------


class _NotJson(ValueError):
    """JSON text that ``json`` accepts but the JSON standard does not, or that we refuse."""


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number; write a number or a string")


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _NotJson(f"key {_shown(key)} appears twice in one object; keep one")
        out[key] = value
    return out


def _loads(text: str) -> Any:
    """``json.loads``, refusing NaN/Infinity and repeated keys (the last would silently win).

    Raises ``ValueError`` (``json.JSONDecodeError`` for syntax) with a readable message.
    """
    try:
        return json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_repeated_keys)
    except RecursionError:
        raise _NotJson("nested too deeply") from None


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)  # _NotJson, or int() refusing a number of thousands of digits


_JSON_TYPES = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "a number")


def _not_utf8(exc: UnicodeDecodeError, data: bytes | bytearray, offset: int) -> str:
    """``not UTF-8 text (byte 0xNN at column C)``; ``offset`` is where ``data`` started."""
    return f"byte 0x{data[exc.start]:02X} at column {offset + exc.start + 1}"


# --- JSON Lines --------------------------------------------------------------------------


def _line_end(tail: bytes) -> int:
    """How many of the last bytes of a line are its line end (``\\n`` or ``\\r\\n``)."""
    if tail.endswith(b"\r\n"):
        return 2
    return 1 if tail.endswith(b"\n") else 0


def _raw_lines(handle: IO[bytes], limit: int) -> Iterator[tuple[int, bytearray | None, int]]:
    """(line number, its bytes without the line end or None when longer than ``limit``,
    its size in bytes without the line end).

    Read in chunks: a line is held only up to ``limit`` bytes; the rest of an overlong line
    is read past, never held whole.
    """
    number = 0
    while True:
        data: bytearray | None = bytearray()
        size = 0
        tail = b""
        while True:
            chunk = handle.readline(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            tail = (tail + chunk)[-2:]
            if data is not None:
                if len(data) + len(chunk) > limit + 2:  # + room for "\r\n"
                    data = None
                else:
                    data += chunk
            if chunk.endswith(b"\n"):
                break
        if size == 0:
            return
        number += 1
        ending = _line_end(tail)
        size -= ending
        if data is not None:
            del data[len(data) - ending :]
        yield number, (data if data is not None and size <= limit else None), size


def _size(n: int, exact: bool = False) -> str:
    """``2.0 MiB``, ``9.8 KiB``, ``757 bytes``; ``exact`` adds the bytes to a rounded size."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" + (f" ({n} bytes)" if exact else "")
    return f"{n} bytes"


def read_jsonl(
    path: Path, model: type[M], *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Parsed[M]]:
    """Each line of a JSON Lines file as a model, or an error or notice naming the line.

    The file is read in binary, a line at a time. A UTF-8 byte order mark at the start of a
    line (the file's, or one left by joining files) and CRLF line ends are accepted. An empty
    or blank line is a notice, not an error; the newline that ends the last line is no empty
    line. A line longer than ``max_line_bytes`` (without its line end), a line that is not
    UTF-8, not JSON or not a JSON object, and one the model refuses are errors naming the
    file, the line, the field where there is one, and what to do; the reading goes on.
    A file that cannot be opened raises ``InputError``.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(
            f"{path}: cannot open ({exc.strerror}); check the path and run again"
        ) from exc
    with handle:
        try:
            yield from _parsed_lines(handle, path, model, max_line_bytes)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror}); check the file") from exc


def _parsed_lines(
    handle: IO[bytes], path: Path, model: type[M], max_line_bytes: int
) -> Iterator[Parsed[M]]:
    for number, data, size in _raw_lines(handle, max_line_bytes):
        where = f"{path} line {number}"
        if data is None:
            yield Parsed(
                number,
                None,
                f"{where}: the line is {_size(size, exact=True)}, more than the "
                f"{_size(max_line_bytes)} a line may hold; split it or fix it and run again",
            )
            continue
        yield _parse_line(data, where, number, model)


def _parse_line(data: bytearray, where: str, number: int, model: type[M]) -> Parsed[M]:
    offset = 0
    if data.startswith(_BOM):
        del data[: len(_BOM)]
        offset = len(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Parsed(
            number,
            None,
            f"{where}: not UTF-8 text ({_not_utf8(exc, data, offset)}); "
            "save the file as UTF-8 and run again",
        )
    if not text.strip():
        return Parsed(number, None, None, notice=f"{where}: empty line, ignored")
    try:
        raw = _loads(text)
    except ValueError as exc:
        return Parsed(
            number, None, f"{where}: not valid JSON ({_json_problem(exc)}); fix it and run again"
        )
    if not isinstance(raw, dict):
        return Parsed(
            number,
            None,
            f"{where}: {_json_type(raw)}, where a JSON object {{...}} is expected "
            "(one record a line); fix it and run again",
        )
    try:
        return Parsed(number, model.model_validate(raw), None)
    except ValidationError as exc:
        return Parsed(number, None, f"{where}: {describe_errors(exc)}; fix it and run again")


def unique_by(
    items: Iterable[Parsed[M]],
    key: Callable[[M], Hashable],
    path: Path,
    field: str,
    *,
    what: str = "line",
) -> tuple[list[Parsed[M]], list[str]]:
    """The lines that hold a value, each ``key`` once, and the errors of the others
    (``first_of_each``, read whole)."""
    errors: list[str] = []
    good = list(first_of_each(items, key, path, field, errors, what=what))
    return good, errors


def first_of_each(
    items: Iterable[Parsed[M]],
    key: Callable[[M], Hashable],
    path: Path,
    field: str,
    errors: list[str],
    *,
    what: str = "line",
) -> Iterator[Parsed[M]]:
    """The lines that hold a value, each ``key`` once, as they are read; the errors of the
    others go to ``errors`` as they come.

    ``key`` reads the id from a value (``lambda o: o.order_id``), ``field`` names it in the
    message. A later line whose key was already seen is an error naming both lines; the first
    is kept. Errors are every line's own error and one per repeated key, in line order;
    notices are neither (read them from ``items``)::

        orders.jsonl line 7: order_id 'A-1' is already on line 2; give each order its own
        order_id (line 7 skipped)
    """
    first: dict[Hashable, int] = {}
    for item in items:
        if item.value is None:
            if item.error is not None:
                errors.append(item.error)
            continue
        value = key(item.value)
        if value in first:
            errors.append(
                f"{path} line {item.line}: {field} {_shown(value)} is already on line "
                f"{first[value]}; give each {what} its own {field} (line {item.line} skipped)"
            )
            continue
        first[value] = item.line
        yield item


def count_lines(path: Path) -> int:
    """How many lines ``path`` has (for a progress bar), read a megabyte at a time; 0 when it
    cannot be read (reading it says why)."""
    count, last = 0, b"\n"
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                count += block.count(b"\n")
                last = block[-1:]
    except OSError:
        return 0
    return count + (last != b"\n")


def read_past_cases(
    path: Path, *, max_line_bytes: int = MAX_LINE_BYTES
) -> tuple[list[PastCase], list[str]]:
    """The good past cases of a JSON Lines file (contract §5), each ``case_id`` once, and one
    error per line skipped. Empty lines are ignored without an error.

    A file that cannot be opened raises ``InputError``.
    """
    parsed = read_jsonl(path, PastCase, max_line_bytes=max_line_bytes)
    good, errors = unique_by(parsed, lambda c: c.case_id, path, "case_id", what="past case")
    return [item.value for item in good if item.value is not None], errors


# --- whole JSON documents ----------------------------------------------------------------


def read_json(path: Path, model: type[M]) -> M:
    """A whole-file JSON document (the world) as a model; ``InputError`` naming the file,
    and the line or byte where it can be found, if it cannot be used.

    A UTF-8 byte order mark at the start is accepted.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}); check the path") from exc
    offset = 0
    if data.startswith(_BOM):
        data, offset = data[len(_BOM) :], len(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02X} at byte offset "
            f"{offset + exc.start}); save the file as UTF-8 and run again"
        ) from None
    try:
        raw: Any = _loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
            "fix it and run again"
        ) from exc
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); fix it and run again") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path}: {describe_errors(exc)}; fix it and run again") from exc
