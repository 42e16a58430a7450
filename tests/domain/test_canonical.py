"""canonical_json follows RFC 8785 and refuses what JSON cannot hold."""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest

from domain.canonical import canonical_json


def test_rfc8785_section_3_2_2_example() -> None:
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        r' "string": "\u20ac$\u000F\u000aA' + "'" + r'\u0042\u0022\u005c\\\"\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        r'"string":"€$\u000f\nA' + "'" + r'B\"\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_keys_sort_by_utf16_code_units_rfc8785_section_3_2_3() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    expected = "{" + ",".join(f'"{_escape(k)}":"{value[k]}"' for k in order) + "}"
    assert canonical_json(value) == expected.encode("utf-8")


def _escape(key: str) -> str:
    return "\\r" if key == "\r" else key


@pytest.mark.parametrize(
    ("ieee_hex", "expected"),
    [  # RFC 8785 Appendix B
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("41b3de4355555555", "333333333.3333333"),
    ],
)
def test_numbers_serialize_as_ecmascript_does(ieee_hex: str, expected: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(ieee_hex))
    assert canonical_json(number) == expected.encode()


def test_unicode_is_written_as_utf8_and_only_controls_are_escaped() -> None:
    assert canonical_json("é€😀\u007f\u001f\t") == '"é€😀\u007f\\u001f\\t"'.encode()


def test_integral_floats_and_ints_agree() -> None:
    assert (
        canonical_json({"a": 1.0, "b": 1, "c": -0.0, "d": 4.50}) == b'{"a":1,"b":1,"c":0,"d":4.5}'
    )


def test_tuples_serialize_as_arrays_and_str_enums_as_strings() -> None:
    class Kind(StrEnum):
        STOCKOUT = "stockout"

    assert canonical_json({"k": Kind.STOCKOUT, "t": (1, "x")}) == b'{"k":"stockout","t":[1,"x"]}'


@pytest.mark.parametrize(
    ("value", "path", "hint"),
    [
        ({"amount": Decimal("12.50")}, "$.amount", "str(value)"),
        ({"lines": [{"at": datetime(2026, 1, 1, tzinfo=UTC)}]}, "$.lines[0].at", "isoformat"),
        ({"ids": {uuid.uuid4()}}, "$.ids", "sorted(value)"),
        ({"odd key": [1, 2, uuid.uuid4()]}, "$['odd key'][2]", "str(value)"),
        ({"obj": object()}, "$.obj", "make it a str"),
        ({"nested": {3: "x"}}, "$.nested", "keys must be str"),
    ],
)
def test_non_json_types_raise_type_error_naming_the_path(value: Any, path: str, hint: str) -> None:
    with pytest.raises(TypeError) as caught:
        canonical_json(value)
    assert str(caught.value).startswith(f"{path}: ")
    assert hint in str(caught.value)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"x": float("nan")}, "$.x"),
        ({"x": [float("inf")]}, "$.x[0]"),
        ({"big": 2**53}, "$.big"),
        ({"s": "\ud800"}, "$.s"),
    ],
)
def test_values_json_cannot_hold_exactly_raise_value_error(value: Any, path: str) -> None:
    with pytest.raises(ValueError) as caught:
        canonical_json(value)
    assert str(caught.value).startswith(f"{path}: ")


def test_cycles_are_refused() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["me"] = [cyclic]
    with pytest.raises(ValueError, match="cycle"):
        canonical_json(cyclic)


def test_shared_but_acyclic_values_are_fine() -> None:
    shared = [1, 2]
    assert canonical_json({"a": shared, "b": shared}) == b'{"a":[1,2],"b":[1,2]}'


def test_safe_integer_bounds_are_accepted() -> None:
    assert canonical_json([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"
