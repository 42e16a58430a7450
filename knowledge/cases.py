"""Past cases (contract §5) and reading them from JSON Lines.

A past case is an exception that was resolved before: its kind, a free-text summary in any
language, optionally the order, the strategy used and how it ended. Summaries and orders are
untrusted data: they are stored and compared, never followed as instructions.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import AwareDatetime, Field, ValidationError

from domain.errors import InputError
from domain.models import Frozen, Kind, Money, Order, Strategy

_MAX_ERRORS_PER_LINE = 5


class Outcome(Frozen):
    success: bool
    resolution_hours: float | None = Field(default=None, ge=0)
    cost_usd: Money | None = Field(default=None, ge=0)
    note: str | None = None


class PastCase(Frozen):
    case_id: str = Field(min_length=1)
    kind: Kind
    summary: str = Field(min_length=1)
    order: Order | None = None
    strategy: Strategy
    outcome: Outcome
    resolved_at: AwareDatetime


def describe_validation(exc: ValidationError) -> str:
    """``field.path: message (got 'value')`` for the first few errors, joined by ``; ``."""
    errors = exc.errors()
    parts: list[str] = []
    for err in errors[:_MAX_ERRORS_PER_LINE]:
        where = ".".join(str(p) for p in err["loc"]) or "(record)"
        got = err.get("input")
        shown = "" if got is None or isinstance(got, dict | list) else f" (got {got!r})"
        parts.append(f"{where}: {err['msg']}{shown}")
    if len(errors) > _MAX_ERRORS_PER_LINE:
        parts.append(f"and {len(errors) - _MAX_ERRORS_PER_LINE} more")
    return "; ".join(parts)


def parse_case(text: str, where: str) -> PastCase:
    """One JSON object as a past case; ``InputError`` naming ``where`` and the field if not."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); fix it and import again"
        ) from exc
    try:
        return PastCase.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{where}: {describe_validation(exc)}; fix it and import again") from exc


def read_cases(path: Path) -> tuple[list[PastCase], list[str]]:
    """The good cases of a JSON Lines file, and one error per bad line (file, line, field).

    Blank lines are skipped. A file that cannot be opened raises ``InputError``.
    """
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"{path}: cannot open ({exc.strerror}); check the path and import again"
        ) from exc
    cases: list[PastCase] = []
    errors: list[str] = []
    with handle:
        try:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    cases.append(parse_case(text, f"{path} line {number}"))
                except InputError as exc:
                    errors.append(str(exc))
        except UnicodeDecodeError as exc:
            errors.append(
                f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 and import again"
            )
    return cases, errors
