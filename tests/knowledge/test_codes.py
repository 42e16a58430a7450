"""Language-neutral codes and the fusion that uses them: the same facts in English and
Chinese give the same codes, and the other-language case of a query's situation comes above
same-language near misses that share the query's words but not its facts."""

from __future__ import annotations

from typing import Any

import pytest

from knowledge.codes import agreement, codes_of, fuse
from knowledge.store import check_rerank


def test_the_same_facts_give_the_same_codes_in_either_language() -> None:
    en = codes_of("WH-SHA in Shanghai is 3 units short of HDP-BT-200 for a buyer in Germany")
    zh = codes_of("上海仓WH-SHA的HDP-BT-200缺3件，寄往德国")
    assert (
        set(en)
        == set(zh)
        == {
            "id:wh-sha",
            "id:hdp-bt-200",
            "city:shanghai",
            "n:3",
            "qty:3",
            "country:DE",
        }
    )


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("the commercial invoice was missing", {"cause:doc:commercial_invoice"}),
        ("缺少商业发票", {"cause:doc:commercial_invoice"}),
        ("bank soft declined the card", {"cause:soft_decline"}),
        ("three days late; ten minutes apart", {"n:3", "days:3", "n:10", "minutes:10"}),
        ("晚了十五天，差两件", {"n:15", "days:15", "n:2", "qty:2"}),
        ("同一单，第一单", set()),  # the same order, the first order: no numbers
        ("the customer told us to wait; La Poste", set()),  # abbreviations only in capitals
        ("to the U.S., then the UK", {"country:US", "country:GB"}),
        (
            "LA warehouse, 5 pairs of running shoes",
            {"city:losangeles", "n:5", "qty:5", "goods:shoes"},
        ),
        ("WH-SHA的蓝牙耳机", {"id:wh-sha", "city:shanghai", "goods:headphones"}),
        ("国内订单，支付通道无响应", {"country:CN", "cause:processor_timeout"}),
        ("a statement dated 2026-01-02, 4.5 kg", set()),  # no "state", no numbers of a date
        ("UK postcode", {"country:GB", "cause:field:postal_code"}),
    ],
)
def test_codes_in_words(text: str, codes: set[str]) -> None:
    assert set(codes_of(text)) == codes


def _case(case_id: str, summary: str) -> dict[str, Any]:
    return {"case_id": case_id, "summary": summary}


def test_the_other_language_case_of_the_situation_comes_above_near_misses() -> None:
    # as the embedding ranked them: the query's own language first
    candidates = [
        _case("near-1", "上海仓蓝牙耳机缺17件，寄往德国，改从深圳仓发货"),
        _case("near-2", "上海仓蓝牙耳机缺3件，寄往法国，改从深圳仓发货"),
        _case("near-3", "北京仓蓝牙耳机缺3件，寄往德国，改从深圳仓发货"),
        _case("answer", "Shanghai was 3 headphones short for Germany; moved to Shenzhen"),
        _case("other-en", "Frankfurt was 9 mugs short for France; moved to Amsterdam"),
    ]
    query = "上海仓耳机不够，差3个，德国客户，转深圳仓"
    found = [c["case_id"] for c in fuse(query, candidates, 3)]
    assert found[0] == "answer"
    assert fuse(query, candidates, 3, by_language=False)[0]["case_id"] != "answer"


def test_a_query_without_codes_keeps_the_order_within_each_language() -> None:
    candidates = [_case("zh-1", "耳机缺货"), _case("zh-2", "杯子缺货"), _case("en-1", "no mugs")]
    assert [c["case_id"] for c in fuse("缺货了", candidates, 3)] == ["zh-1", "en-1", "zh-2"]
    assert [c["case_id"] for c in fuse("缺货了", candidates, 3, by_language=False)] == [
        "zh-1",
        "zh-2",
        "en-1",
    ]
    assert fuse("x", [], 5) == []


def test_an_unknown_rerank_is_refused_with_the_choices() -> None:
    assert check_rerank("lang+codes:20") == "lang+codes:20"
    for bad in ("bm25", "codes:0", "codes:x"):
        with pytest.raises(ValueError, match="dense, codes, lang\\+codes"):
            check_rerank(bad)


def test_a_field_named_otherwise_counts_against_one_not_named_counts_neither_way() -> None:
    query = codes_of("parcel to Japan bounced, street missing")
    same = agreement(query, codes_of("退回寄往日本的包裹，街道地址不完整"))
    other_country = agreement(query, codes_of("退回寄往荷兰的包裹，街道地址不完整"))
    no_country = agreement(query, codes_of("退回的包裹，街道地址不完整"))
    assert same == 4.0  # Japan and the street, 2 each
    assert no_country == 2.0  # the street; saying nothing of the country is not a conflict
    assert other_country == 0.0  # the street, less the Netherlands against Japan
    assert agreement(query, codes_of("退回寄往荷兰的包裹"), conflict=0.0) == 0.0


def test_a_fact_named_two_ways_counts_once() -> None:
    query = codes_of("3 units of Bluetooth headphones HDP-BT-200 short at WH-SHA")
    in_words = agreement(query, codes_of("上海仓蓝牙耳机缺3件"))
    both_ways = agreement(query, codes_of("WH-SHA（上海）库存不足：蓝牙耳机HDP-BT-200缺3件"))
    # the goods (SKU 3 or words 2) and the warehouse (id 3 or city 2) once each, the number
    # alone and with its unit (1 + 1)
    assert in_words == 2.0 + 2.0 + 2.0
    assert both_ways == 3.0 + 3.0 + 2.0
    # another warehouse and other goods: both named otherwise, the number the same
    assert agreement(query, codes_of("深圳仓台灯缺3件")) == -2.0 - 2.0 + 2.0


def test_a_number_in_passing_is_no_conflict_one_with_its_unit_is() -> None:
    query = codes_of("ordered twice, two orders 4 minutes apart")
    assert agreement(query, codes_of("the same order came in twice, 30 hours later")) == 0.0
    assert agreement(query, codes_of("two orders 9 minutes apart")) == 1.0 - 1.0  # n:2, minutes
    assert agreement(query, codes_of("两单相隔4分钟")) == 1.0 + 1.0 + 1.0


def test_the_other_language_case_comes_above_same_language_ones_about_other_facts() -> None:
    # an English query among Chinese cases that name the SKU (as exdesk writes them) for
    # another warehouse and destination, and the answer, which names the goods in words
    candidates = [
        _case("en-answer", "LA (WH-LAX) short 5 running shoes SNK-RUN-42 for the US; split"),
        _case("en-near", "LA (WH-LAX) short 17 running shoes SNK-RUN-42 for the US; split"),
        _case("zh-other-1", "WH-EWR（纽瓦克）库存不足：跑鞋SNK-RUN-42缺2件，寄往英国"),
        _case("zh-other-2", "WH-AMS（阿姆斯特丹）库存不足：跑鞋SNK-RUN-42缺9件，寄往荷兰"),
        _case("zh-answer", "洛杉矶WH-LAX的跑鞋缺5双，拆成两个包裹，发给美国客户"),
    ]
    query = "LA warehouse missing 5 pairs of running shoes SNK-RUN-42, split, US buyer"
    found = [c["case_id"] for c in fuse(query, candidates, 5)]
    assert found[:3] == ["en-answer", "zh-other-1", "zh-answer"]
    # as before: no conflicts, the codes at a quarter, k 10: the answer last
    before = fuse(query, candidates, 5, conflict=0.0, code_weight=0.25, k=10)
    assert before[-1]["case_id"] == "zh-answer"
