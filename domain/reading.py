"""What a model reads text into (contract §8), and the checks its answer must pass.

A model's answer is one ``Reading``. ``read_answer`` takes the answer's raw text and the text
that was read, and gives the reading or raises ``ReadingRejected`` saying why: not JSON, not
the schema (an unknown intent, a field nobody asked for: a strategy, a tier, an action, an
approval), fields that do not fit the intent, or a quote the text does not contain. Nothing is
repaired: a rejected answer is dropped, and the order is handled as without a model.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.models import ADDRESS_FIELDS, CountryCode

MAX_QUOTE = 500
MAX_FIELD = 300
MAX_ANSWER = 8_000  # characters of an answer worth parsing at all


class Intent(StrEnum):
    CHANGE_ADDRESS = "change_address"
    HOLD_UNTIL = "hold_until"
    CANCEL = "cancel"
    CONFIRM = "confirm"
    OTHER = "other"
    NONE = "none"


class ReadingRejected(ValueError):
    """A model's answer that is not a reading of the text. The message says why."""


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _plain(value: str | None) -> str | None:
    if value is not None and _CONTROL.search(value):
        raise ValueError("contains control or bidi characters")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class NoteAddress(_Strict):
    """An address the text gives (contract §8: the fields of ``ship_to``)."""

    name: str | None = Field(default=None, max_length=MAX_FIELD)
    street_address: str = Field(min_length=1, max_length=MAX_FIELD)
    city: str = Field(min_length=1, max_length=MAX_FIELD)
    city_area: str | None = Field(default=None, max_length=MAX_FIELD)
    country_area: str | None = Field(default=None, max_length=MAX_FIELD)
    postal_code: str | None = Field(default=None, max_length=40)
    country_code: CountryCode

    _no_control = field_validator(
        "name", "street_address", "city", "city_area", "country_area", "postal_code"
    )(_plain)

    def fields(self) -> dict[str, str]:
        """The set fields, named as ``ship_to``'s."""
        data = self.model_dump(exclude_none=True)
        return {k: str(data[k]) for k in ADDRESS_FIELDS if data.get(k)}


class Reading(_Strict):
    """A note's (or a reply's) reading, exactly contract §8's object."""

    intent: Intent
    new_address: NoteAddress | None = None
    hold_until: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    quote: str = Field(max_length=MAX_QUOTE)

    @field_validator("hold_until")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        if value is not None:
            date.fromisoformat(value)  # 2026-02-30 is refused
        return value

    @property
    def date(self) -> date | None:
        return None if self.hold_until is None else date.fromisoformat(self.hold_until)


def reading_schema() -> dict[str, Any]:
    """The JSON schema a model answers in: every property listed as required (nullable where
    optional) and no others allowed, as strict structured outputs want; ``$defs`` inlined, for
    servers that do not follow references. The answer is validated against ``Reading``
    itself, lengths and patterns included."""
    schema = Reading.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            # lengths and patterns are checked on the answer; left in the schema, they blow up
            # the grammars some servers compile from it (llama.cpp's)
            drop = ("title", "default", "description", "maxLength", "minLength", "pattern")
            out = {k: inline(v) for k, v in node.items() if k not in drop}
            if out.get("type") == "object" and "properties" in out:
                out["required"] = list(out["properties"])
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return dict(inline(schema))


def normalized(text: str) -> str:
    """Text compared for quoting: NFKC, case folded, runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def quotes(text: str, quote: str) -> bool:
    """True when ``quote`` is words of ``text`` (after ``normalized``)."""
    q, t = normalized(quote), normalized(text)
    if not q:
        return False
    at = t.find(q)
    while at >= 0:  # whole words: not "e" of "the" (CJK characters are words of their own)
        end = at + len(q)
        if not (at and _joined(t[at - 1], q[0])) and not (end < len(t) and _joined(q[-1], t[end])):
            return True
        at = t.find(q, at + 1)
    return False


def _joined(a: str, b: str) -> bool:
    """True when ``a`` then ``b`` are inside one word (letters or digits, not CJK)."""
    return a.isalnum() and b.isalnum() and not (_cjk(a) or _cjk(b))


def _cjk(c: str) -> bool:
    o = ord(c)
    return (
        0x3040 <= o <= 0x30FF
        or 0x3400 <= o <= 0x9FFF
        or 0xAC00 <= o <= 0xD7AF
        or 0xF900 <= o <= 0xFAFF
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(answer)"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "not a field of a reading (the model cannot propose strategies, tiers, "
        message += "actions or approvals)"
    return f"{where}: {message}"


def read_answer(answer: str, text: str, *, allowed: frozenset[Intent] | None = None) -> Reading:
    """The reading in a model's ``answer`` to reading ``text``; ``ReadingRejected`` if none.

    ``allowed``: the intents that make sense here (a note is not a confirmation; a reply may
    be). An intent outside them is as unknown as an invented one.
    """
    if len(answer) > MAX_ANSWER:
        raise ReadingRejected(f"the answer is {len(answer)} characters long, not one reading")
    try:
        data = json.loads(answer)
    except json.JSONDecodeError:
        raise ReadingRejected("the answer is not JSON") from None
    if not isinstance(data, dict):
        raise ReadingRejected("the answer is not one JSON object")
    try:
        reading = Reading.model_validate_json(answer)
    except ValidationError as exc:
        raise ReadingRejected(_first_error(exc)) from None
    if allowed is not None and reading.intent not in allowed:
        raise ReadingRejected(f"intent: {reading.intent.value} does not apply here")
    intent = reading.intent
    if intent is Intent.CHANGE_ADDRESS and reading.new_address is None:
        raise ReadingRejected("intent change_address without a new_address")
    if intent is not Intent.CHANGE_ADDRESS and reading.new_address is not None:
        raise ReadingRejected(f"intent {intent.value} with a new_address")
    if intent is Intent.HOLD_UNTIL and reading.hold_until is None:
        raise ReadingRejected("intent hold_until without a hold_until date")
    if intent is not Intent.HOLD_UNTIL and reading.hold_until is not None:
        raise ReadingRejected(f"intent {intent.value} with a hold_until date")
    if intent is not Intent.NONE and not reading.quote.strip():
        raise ReadingRejected("no quote: a reading must quote the words that say it")
    if reading.quote.strip() and not quotes(text, reading.quote):
        raise ReadingRejected("quote: these words are not in the text")
    return reading
