"""The hard bilingual retrieval eval: its data renders into whole cases in both languages,
its near misses share the answer's words but change one fact, and it scores what it finds."""

from __future__ import annotations

import re

from evals import retrieval_hard as hard


def test_every_situation_renders_in_both_languages_with_every_slot_filled() -> None:
    situations = hard.load()
    assert len(situations) == 24
    assert {s["kind"] for s in situations} == set(hard.CHANGES)
    for s in situations:
        for lang in hard.LANGS:
            text = hard.render(s[lang], s["slots"], s["strategy"], s["success"], lang)
            assert "{" not in text and "}" not in text
            assert not re.search(r"(to|寄往|寄) ?[:：,，;；]", text), text  # no empty slot
            assert s[f"q_{lang}"] not in text  # queries are written apart from the cases


def test_near_misses_share_the_template_but_change_a_fact() -> None:
    for s in hard.load():
        for lang in hard.LANGS:
            answer = hard.render(s[lang], s["slots"], s["strategy"], s["success"], lang)
            near = list(hard.near_misses(s, lang, 8, seed=1))
            assert len({c.summary for c in near}) == 8
            assert all(c.summary != answer and c.kind.value == s["kind"] for c in near)
            assert {c.outcome.success for c in near} == {True, False}


def test_it_scores_both_targets_of_every_query() -> None:
    (result,) = hard.run("hash", ["dense"], hard.load()[:6], near=2)
    assert result.cases == 6 * 2 * 3
    assert result.figures["all"]["n"] == 6 * 2 * 2
    assert result.figures["en→zh"]["n"] == result.figures["zh→en"]["n"] == 6
    assert 0 <= result.figures["all"]["mrr"] <= 1
    assert result.figures["either"]["n"] == 12
