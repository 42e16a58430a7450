"""The fast canonical JSON (``canonical_text``, ``canonical_json``) writes exactly what the
rfc8785 package writes (``rfc8785_bytes``), and refuses what it refuses."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from domain.canonical import canonical_json, canonical_pair, canonical_text, rfc8785_bytes

EXAMPLES = Path(__file__).resolve().parents[2] / "evals" / "data" / "examples.jsonl"

TRICKY: list[Any] = [
    {"b": 1, "a": [True, False, None], "": "x"},
    {"f": 3.0, "g": -0.0, "h": 0.1, "i": 1e-7, "j": 1e21, "k": 1e16, "l": 123456789.125},
    {"small": 0.00001, "edge": 0.0001, "big": 9007199254740991, "e": 2.5e-5, "n": -1.5},
    {"esc": '"\\\b\f\n\r\t\x00\x1f\x7f é ü 中文 😀 \u2028'},
    {"\u20ac": 1, "\U0001f600": 2, "\ufb33": 3, "z": 4, "a": 5},  # UTF-16 order differs
    [1, [2, [3, {"x": [4.5, 5.0]}]]],
    {"money": 19.99, "fx": 0.0067, "cost": 14.0, "pct": 33.333333333333336},
    # integral floats past 2**53: ES6 writes their shortest digits, not ".0" (the audit log's
    # fast path wrote 9007199254740992.0 until 2026-12-07)
    {"p": 9007199254740992.0, "q": -9007199254740994.0, "r": 1.2345678901234567e15 * 8},
]


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_tricky_values_are_written_as_rfc8785_writes_them(value: Any) -> None:
    want = rfc8785_bytes(value).decode("utf-8")
    assert canonical_text(value) == want
    assert canonical_json(value) == want.encode("utf-8")
    text, copy = canonical_pair(value)
    assert (text, copy) == (want, json.loads(want))
    assert copy is not value


def test_random_values_agree() -> None:
    rng = random.Random(8785)
    alphabet = ["a", "b", "Z", "é", "中", "😀", "\n", '"', "\\", "\x01", "\uffff", "\ue000"]

    def text(n: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(n)))

    def value(depth: int) -> Any:
        pick = rng.randrange(9 if depth < 4 else 6)
        if pick == 0:
            return rng.randrange(-(2**60), 2**60) if rng.random() < 0.2 else rng.randrange(-99, 99)
        if pick == 1:
            return rng.choice(
                [
                    rng.uniform(-1e6, 1e6),
                    rng.random() * 10 ** rng.randrange(-12, 25),
                    float(rng.randrange(-1000, 1000)),
                ]
            )
        if pick == 2:
            return text(8)
        if pick in (3, 4, 5):
            return rng.choice([True, False, None])
        if pick in (6, 7):
            return {text(6): value(depth + 1) for _ in range(rng.randrange(5))}
        return [value(depth + 1) for _ in range(rng.randrange(5))]

    for _ in range(3000):
        item = value(0)
        try:
            want = rfc8785_bytes(item).decode("utf-8")
        except (TypeError, ValueError):
            with pytest.raises((TypeError, ValueError)):
                canonical_text(item)
            with pytest.raises((TypeError, ValueError)):
                canonical_json(item)
            continue
        assert canonical_text(item) == want, item
        assert canonical_json(item) == want.encode("utf-8"), item
        assert canonical_pair(item) == (want, json.loads(want)), item


def test_real_payloads_agree() -> None:
    for line in EXAMPLES.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        assert canonical_text(case) == rfc8785_bytes(case).decode("utf-8")


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({"x": float("nan")}, ValueError, r"\$.x"),
        ({"x": Decimal("1.1")}, TypeError, r"\$.x: Decimal"),
        ({"x": "\ud800"}, ValueError, "lone surrogate"),
        ({1: "x"}, TypeError, "object key 1"),
        ({"x": 2**60}, ValueError, "outside"),
    ],
)
def test_what_json_cannot_hold_is_refused_with_its_path(
    value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        canonical_text(value)
    with pytest.raises(error, match=message):
        canonical_json(value)
    with pytest.raises(error, match=message):
        canonical_pair(value)


def test_the_pair_copies_every_container() -> None:
    value = {"a": [{"b": [1, 2]}, (3.0, "x")], "c": {"d": None}}
    _, copy = canonical_pair(value)
    assert copy == {"a": [{"b": [1, 2]}, [3, "x"]], "c": {"d": None}}
    copy["a"][0]["b"].append(9)
    copy["c"]["d"] = 1
    assert value == {"a": [{"b": [1, 2]}, (3.0, "x")], "c": {"d": None}}


def test_entry_strings_are_written_as_json_writes_them() -> None:
    from audit.models import json_str

    rng = random.Random(6)
    alphabet = ["a", "Z", "0", " ", '"', "\\", "\x00", "\x1f", "\x7f", "é", "中", "😀", "\u2028"]
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        assert json_str(value) == rfc8785_bytes(value).decode("utf-8")
