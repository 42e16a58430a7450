"""RFC 8785 (JSON Canonicalization Scheme) bytes: audit payloads, hashes and digests.

``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes the RFC 8785
bytes for strings (it escapes exactly ``"``, ``\\`` and control characters, in lowercase
``\\u00xx``), for integers and for ``true``/``false``/``null``. It differs for floats written
with an exponent or a trailing ``.0``, for integers past 2**53, and in key order when keys hold
characters beyond U+FFFF (RFC 8785 sorts by UTF-16 code units). ``canonical_json`` uses it when
none of those occur (an integral float is written as the integer it equals, which is what RFC
8785 writes too), and the ``rfc8785`` package otherwise (``rfc8785_bytes``), which also
explains values JSON cannot hold. The two agree byte for byte (``tests/domain/test_jcs.py``).

Only JSON-native values are accepted: ``dict`` with ``str`` keys, ``list`` (or ``tuple``),
``str``, ``int``, ``float``, ``bool`` and ``None``. Anything else (``Decimal``, ``datetime``,
``UUID``, a pydantic model) raises ``TypeError`` naming where it sits, so the caller converts it
first (``model.model_dump(mode="json")`` does this for pydantic models). Values JSON cannot hold
exactly (NaN, infinities, integers beyond 2**53 - 1, lone surrogates, cycles) raise ``ValueError``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, cast

import rfc8785

_SAFE_INT = 2**53 - 1
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_CONVERT_HINTS = {
    "Decimal": "use str(value) to keep it exact, or float(value) if a JSON number is wanted",
    "datetime": "use value.isoformat() on a timezone-aware datetime",
    "date": "use value.isoformat()",
    "UUID": "use str(value)",
    "bytes": "use value.hex() or base64",
    "set": "use sorted(value) to get a list",
    "frozenset": "use sorted(value) to get a list",
}


class _Invalid(Exception):
    """Raised while walking a value; collects the path on the way back up."""

    def __init__(self, error: type[Exception], message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.parts: list[str | int] = []


def canonical_json(obj: object) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``obj``.

    Raises ``TypeError`` for a value that is not JSON-native and ``ValueError`` for one JSON
    cannot represent exactly; both name the path of the offending value (``$.lines[2].price``).
    """
    fast = _fast(obj)
    return fast[0].encode("utf-8") if fast is not None else rfc8785_bytes(obj)


def canonical_text(obj: object) -> str:
    """``canonical_json(obj)`` as text."""
    fast = _fast(obj)
    return fast[0] if fast is not None else rfc8785_bytes(obj).decode("utf-8")


def canonical_pair(obj: object) -> tuple[str, Any]:
    """``(canonical_text(obj), the JSON value that text reads back as)``: the value is a fresh
    copy (tuples as lists, integral floats as integers) made on the way, so a caller that keeps
    both need not parse the text again."""
    fast = _fast(obj)
    if fast is not None:
        return fast
    text = rfc8785_bytes(obj).decode("utf-8")
    return text, json.loads(text)


def rfc8785_bytes(obj: object) -> bytes:
    """The canonical bytes as the ``rfc8785`` package writes them, every value checked first
    (the reference the fast path is tested against, and its fallback)."""
    try:
        _walk(obj, set())
    except _Invalid as exc:
        raise exc.error(f"{_format_path(exc.parts)}: {exc.message}") from None
    return rfc8785.dumps(cast(Any, obj))


_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


class _Slow(Exception):
    """The value needs the full canonicalizer."""


def _fast(value: object) -> tuple[str, Any] | None:
    """(the canonical text by the standard library, the copy it wrote), or None where it would
    not write RFC 8785 (or the value is not JSON): then ``rfc8785_bytes`` writes it, or says
    what is wrong."""
    try:
        plain = _plain(value)
        text = _ENCODE(plain)
        text.encode("utf-8")  # a lone surrogate cannot be UTF-8: let the full path say so
        return text, plain
    except (_Slow, TypeError, ValueError, UnicodeEncodeError, RecursionError):
        return None


def _plain(value: Any) -> Any:
    """A copy of ``value`` with integral floats as integers; _Slow when the standard library
    would not write the RFC 8785 form."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -_SAFE_INT <= value <= _SAFE_INT:
            return value
        raise _Slow
    if kind is float:
        if value.is_integer():  # ES6 writes past 2**53 in its shortest digits: the full path
            if -_SAFE_INT <= value <= _SAFE_INT:
                return int(value)
            raise _Slow
        magnitude = abs(value)
        if 1e-4 <= magnitude < 1e16:  # repr writes these without an exponent, as ES6 does
            return value
        raise _Slow
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                raise _Slow
            out[key] = _plain(item)
        return out
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]
    raise _Slow


def _walk(value: object, active: set[int]) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        _check_int(value)
    elif isinstance(value, float):
        _check_float(value)
    elif isinstance(value, str):
        _check_str(value)
    elif isinstance(value, dict):
        _enter(value, active)
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid(
                    TypeError,
                    f"object key {key!r} is of type {type(key).__name__}; "
                    "JSON object keys must be str",
                )
            _walk_child(item, key, active)
        active.discard(id(value))
    elif isinstance(value, list | tuple):
        _enter(value, active)
        for index, item in enumerate(value):
            _walk_child(item, index, active)
        active.discard(id(value))
    else:
        name = type(value).__name__
        hint = _CONVERT_HINTS.get(name, "make it a str, int, float, bool, None, list or dict")
        raise _Invalid(TypeError, f"{name} is not a JSON type; convert it first: {hint}")


def _enter(container: object, active: set[int]) -> None:
    if id(container) in active:
        raise _Invalid(ValueError, "the value contains itself (a cycle); JSON cannot hold it")
    active.add(id(container))


def _walk_child(item: object, part: str | int, active: set[int]) -> None:
    try:
        _walk(item, active)
    except _Invalid as exc:
        exc.parts.append(part)
        raise


def _check_int(value: int) -> None:
    if not -_SAFE_INT <= value <= _SAFE_INT:
        raise _Invalid(
            ValueError,
            f"integer {value} is outside ±(2**53 - 1) and would lose precision as a JSON number; "
            "log it as a string",
        )


def _check_float(value: float) -> None:
    if not math.isfinite(value):
        raise _Invalid(ValueError, f"{value} is not a finite number; JSON has no NaN or infinity")


def _check_str(value: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid(
            ValueError, "string contains a lone surrogate and is not valid Unicode text"
        ) from None


def _format_path(parts: list[str | int]) -> str:
    path = "$"
    for part in reversed(parts):
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}"
        else:
            path += f"[{part!r}]"
    return path
