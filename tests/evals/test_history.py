"""The generated history, the retrieval eval and the "history decides" eval."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from domain.models import Kind, Strategy
from evals import history_decides, retrieval
from evals.history import generate, main, parallel_pairs, success_rate
from knowledge.cases import PastCase
from knowledge.situation import Situation, text_language


def test_the_history_is_large_bilingual_varied_and_context_dependent() -> None:
    cases = list(generate(5000, seed=3))
    assert len({c.case_id for c in cases}) == 5000
    langs = Counter(text_language(c.summary) for c in cases)
    assert 0.35 < langs["zh"] / 5000 < 0.55 and langs["en"] > 2000
    # every kind the rules detect (customer_request comes only from a model reading notes)
    assert {c.kind for c in cases} == set(Kind) - {Kind.CUSTOMER_REQUEST}
    assert len({c.summary for c in cases}) > 4900  # varied wording and details

    def rate(strategy: Strategy, **where: object) -> float:
        chosen = [
            c
            for c in cases
            if c.strategy is strategy
            and c.situation is not None
            and all(getattr(c.situation, k) == v for k, v in where.items())
        ]
        assert len(chosen) >= 10, (strategy, where)
        return sum(c.outcome.success for c in chosen) / len(chosen)

    # backorders of electronics for VIP customers mostly fail; elsewhere they mostly work
    assert rate(Strategy.BACKORDER, category="electronics", customer_tier="vip") < 0.4
    assert rate(Strategy.BACKORDER, category="apparel") > 0.7
    # reallocations out of WH-SHA fail in peak weeks
    assert rate(Strategy.REALLOCATE_WAREHOUSE, warehouse="WH-SHA", peak=True) < 0.5
    assert rate(Strategy.REALLOCATE_WAREHOUSE, warehouse="WH-SHA", peak=False) > 0.7


def test_the_same_seed_gives_the_same_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    main(["--n", "50", "--out", str(first)])
    main(["--n", "50", "--out", str(second)])
    assert first.read_bytes() == second.read_bytes()
    [PastCase.model_validate_json(line) for line in first.read_text().splitlines()]


def test_outcomes_follow_the_context() -> None:
    vip = Situation(kind=Kind.STOCKOUT, category="electronics", customer_tier="vip")
    assert success_rate(Strategy.BACKORDER, vip) < success_rate(Strategy.SPLIT_SHIPMENT, vip)
    pairs = list(parallel_pairs(20))
    assert all(text_language(en) == "en" and text_language(zh) == "zh" for en, zh in pairs)


def test_the_retrieval_set_is_labelled_and_bilingual() -> None:
    cases = retrieval.load(retrieval.CASES, PastCase)
    queries = retrieval.load(retrieval.QUERIES, retrieval.LabelledQuery)
    ids = {c.case_id for c in cases}
    assert len(queries) >= 200 and all(q.expect in ids for q in queries)
    groups = Counter(g for q in queries for g in q.groups)
    assert groups["zh→en"] >= 50 and groups["en→zh"] >= 50 and groups["near_miss"] >= 30
    kinds = {c.case_id: c.kind for c in cases}
    assert all(kinds[q.expect] is q.kind for q in queries)
    assert all(q.decoy in ids and kinds[q.decoy] is q.kind for q in queries if q.decoy)


@pytest.mark.model
def test_retrieval_meets_the_bars_from_an_empty_memory() -> None:
    cases = retrieval.load(retrieval.CASES, PastCase)
    queries = retrieval.load(retrieval.QUERIES, retrieval.LabelledQuery)
    scores = retrieval.run("multilingual", cases, queries)
    ok, line = retrieval.verdict(scores)
    assert ok, line
    assert scores.figures["all"]["hit@5"] >= retrieval.GOALS["hit@5"], line
    assert scores.figures["zh→en"]["hit@5"] >= 0.9 and scores.figures["en→zh"]["hit@5"] >= 0.9


@pytest.mark.model
def test_history_decides_exactly_where_the_contract_says() -> None:
    rows = [json.loads(line) for line in history_decides.SET.read_text().splitlines()]
    scenarios = Counter(r["scenario"] for r in rows)
    assert scenarios["partial_stock"] >= 1 and len(scenarios) == len(history_decides.SCENARIOS)
    flips = [r for r in rows if history_decides.SCENARIOS[r["scenario"]][2]]
    assert flips and all(
        r["spine"] != {k: next(iter(v)) for k, v in r["expect"]["top"].items()} for r in flips
    )
    assert history_decides.check() == []


def test_reallocations_record_where_they_shipped_from() -> None:
    cases = list(generate(400, 5))
    moved = [c for c in cases if c.strategy is Strategy.REALLOCATE_WAREHOUSE]
    assert moved and all(
        c.situation and c.variant == {"warehouse": c.situation.facts["other"]} for c in moved
    )
    assert all(not c.variant for c in cases if c.strategy is not Strategy.REALLOCATE_WAREHOUSE)
