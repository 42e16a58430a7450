"""Reading the files users feed in. Errors name the file, the line and the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from domain.errors import InputError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Parsed(Generic[M]):
    line: int
    value: M | None
    error: str | None


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


def describe_errors(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    errors = _root_causes(exc)
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "(record)")
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}{shown}")
    more = len(errors) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def read_jsonl(path: Path, model: type[M]) -> Iterator[Parsed[M]]:
    """Each non-blank line as a model, or an error naming the line and field."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from exc
    with handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Parsed(
                    number,
                    None,
                    f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno})",
                )
                continue
            try:
                yield Parsed(number, model.model_validate(raw), None)
            except ValidationError as exc:
                yield Parsed(
                    number,
                    None,
                    f"{path} line {number}: {describe_errors(exc)}; fix it and run again",
                )


def read_json(path: Path, model: type[M]) -> M:
    """A whole-file JSON document as a model."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path}: {describe_errors(exc)}; fix it and run again") from exc
