"""RFC 8785 canonical JSON text, fast where the standard library already writes it.

``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes the RFC 8785
bytes for strings (it escapes exactly ``"``, ``\\`` and control characters, in lowercase
``\\u00xx``), for integers and for ``true``/``false``/``null``. It differs for floats written
with an exponent or a trailing ``.0``, for integers past 2**53, and in key order when keys hold
characters beyond U+FFFF (RFC 8785 sorts by UTF-16 code units). :func:`canonical_text` uses it
when none of those occur (an integral float is written as the integer it equals, which is
what RFC 8785 writes too), and ``domain.canonical`` otherwise, which also explains values JSON
cannot hold. The two agree byte for byte (``tests/audit/test_jcs.py``).
"""

from __future__ import annotations

import json
from typing import Any

from domain.canonical import canonical_json

_SAFE_INT = 2**53 - 1
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


class _Slow(Exception):
    """The value needs the full canonicalizer."""


def canonical_text(value: Any) -> str:
    """The RFC 8785 canonical JSON of ``value`` as text; TypeError / ValueError (naming the
    path) for what JSON cannot hold exactly, as ``domain.canonical.canonical_json``."""
    try:
        plain = _plain(value)
        text = _ENCODE(plain)
        text.encode("utf-8")  # a lone surrogate cannot be UTF-8: let the full path say so
        return text
    except (_Slow, TypeError, ValueError, UnicodeEncodeError, RecursionError):
        return canonical_json(value).decode("utf-8")


def _plain(value: Any) -> Any:
    """``value`` with integral floats as integers; _Slow when the standard library would not
    write the RFC 8785 form."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -_SAFE_INT <= value <= _SAFE_INT:
            return value
        raise _Slow
    if kind is float:
        if value.is_integer() and -_SAFE_INT <= value <= _SAFE_INT:
            return int(value)
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
