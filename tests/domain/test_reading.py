"""Contract §8's reading, and the checks every model answer passes: nothing is repaired."""

from __future__ import annotations

import json

import pytest

from domain.reading import Intent, ReadingRejected, read_answer, reading_schema

TEXT = "我搬家了，请改寄到：上海市浦东新区世纪大道100号，200120。Thanks!"
ADDRESS = {
    "street_address": "世纪大道100号",
    "city": "上海市",
    "city_area": "浦东新区",
    "country_area": None,
    "postal_code": "200120",
    "name": None,
    "country_code": "CN",
}


def answer(**fields: object) -> str:
    base: dict[str, object] = {"intent": "none", "new_address": None, "hold_until": None}
    return json.dumps({**base, "quote": "", **fields}, ensure_ascii=False)


def test_a_valid_reading() -> None:
    reading = read_answer(
        answer(intent="change_address", new_address=ADDRESS, quote="请改寄到"), TEXT
    )
    assert reading.intent is Intent.CHANGE_ADDRESS
    assert reading.new_address is not None
    assert reading.new_address.fields()["postal_code"] == "200120"


def test_quotes_compare_after_normalizing_width_case_and_spaces() -> None:
    text = "Please  HOLD it until ２０２６-12-20, thanks"
    got = read_answer(
        answer(intent="hold_until", hold_until="2026-12-20", quote="hold it until 2026-12-20"), text
    )
    assert got.hold_until == "2026-12-20"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not one JSON object"),
        (answer(intent="refund_now", quote="Thanks"), "intent"),
        (answer(intent="cancel", quote="please cancel"), "not in the text"),
        (answer(intent="cancel", quote="Thanks", strategy="cancel_order"), "strategy"),
        (answer(intent="cancel", quote="Thanks", tier="L1", approved=True), "not a field"),
        (answer(intent="other", quote="Thanks", actions=[{"tool": "payment"}]), "not a field"),
        (answer(intent="change_address", quote="请改寄到"), "without a new_address"),
        (answer(intent="cancel", quote="Thanks", new_address=ADDRESS), "with a new_address"),
        (answer(intent="hold_until", quote="Thanks"), "without a hold_until"),
        (answer(intent="hold_until", quote="Thanks", hold_until="2026-02-30"), "hold_until"),
        (answer(intent="hold_until", quote="Thanks", hold_until="next week"), "hold_until"),
        (answer(intent="other", quote=""), "no quote"),
        (
            answer(
                intent="change_address",
                quote="请改寄到",
                new_address={**ADDRESS, "country_code": "China"},
            ),
            "country_code",
        ),
        (
            answer(
                intent="change_address",
                quote="请改寄到",
                new_address={**ADDRESS, "city": "上海\u202e"},
            ),
            "control",
        ),
        ("{" + " " * 9000 + "}", "characters long"),
    ],
)
def test_answers_that_are_dropped(raw: str, why: str) -> None:
    with pytest.raises(ReadingRejected, match=why):
        read_answer(raw, TEXT)


def test_an_intent_that_does_not_apply_is_dropped() -> None:
    notes = frozenset({Intent.CHANGE_ADDRESS, Intent.CANCEL, Intent.OTHER, Intent.NONE})
    with pytest.raises(ReadingRejected, match="does not apply"):
        read_answer(answer(intent="confirm", quote="Thanks"), TEXT, allowed=notes)


def test_schema_is_strict_and_self_contained() -> None:
    schema = reading_schema()
    assert "$defs" not in json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["hold_until", "intent", "new_address", "quote"]
    address = next(
        a for a in schema["properties"]["new_address"]["anyOf"] if a.get("type") == "object"
    )
    assert address["additionalProperties"] is False and "country_code" in address["required"]
    assert schema["properties"]["intent"]["enum"] == [i.value for i in Intent]


def test_a_quote_is_whole_words_of_the_text() -> None:
    from domain.reading import quotes

    note = "Please change the address: I moved to 1 Main St. 请改寄到公司地址"
    assert quotes(note, "I moved to 1 main st")
    assert quotes(note, "改寄到公司")
    assert not quotes(note, "e")
    assert not quotes(note, "ange the addr")
    assert not quotes(note, "")
