"""Removing each language's mean vector: what makes a multilingual model match across languages.

Multilingual sentence encoders place every Chinese text a little towards one point and every
English text towards another: cosines within a language crowd together, and a Chinese query
finds Chinese cases before the English translation of the same case. Subtracting each
language's mean vector (then normalising again) removes that offset. ``Centered`` does it for
any embedder.

The means are estimated from shipped calibration pairs (``data/calibration_pairs.jsonl``: the
same past case written in English and in Chinese, made by ``evals.history``), never from the
cases a user stores, so a stored vector never needs recomputing. They are precomputed for the
packaged models (``data/calibration_means.json``; ``python -m knowledge.calibration``
recomputes them); for any other model they are computed on first use. Measurements and the
choice: ``docs/case-memory.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from knowledge.embedder import Embedder, Vectors, unit_rows
from knowledge.situation import Lang, text_language

PAIRS_FILE = "calibration_pairs.jsonl"
MEANS_FILE = "calibration_means.json"
LANGS: tuple[Lang, ...] = ("en", "zh")


def _data(name: str) -> Any:
    return resources.files("knowledge") / "data" / name


def calibration_pairs() -> list[tuple[str, str]]:
    """The shipped (English, Chinese) pairs."""
    text = _data(PAIRS_FILE).read_text(encoding="utf-8")
    pairs = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [(str(p["en"]), str(p["zh"])) for p in pairs]


def pairs_digest(pairs: Sequence[tuple[str, str]]) -> str:
    data = json.dumps(list(pairs), ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def language_means(embedder: Embedder, pairs: Sequence[tuple[str, str]]) -> dict[Lang, Vectors]:
    """Each language's mean (raw) vector over the pairs."""
    english = embedder.embed([en for en, _ in pairs])
    chinese = embedder.embed([zh for _, zh in pairs])
    return {"en": english.mean(axis=0), "zh": chinese.mean(axis=0)}


def shipped_means(model: str) -> dict[Lang, Vectors] | None:
    """The precomputed means of ``model``, if they were computed from the shipped pairs."""
    try:
        table = json.loads(_data(MEANS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    entry = table.get(model)
    if entry is None or entry.get("pairs_digest") != pairs_digest(calibration_pairs()):
        return None
    return {lang: np.asarray(entry[lang], dtype=np.float32) for lang in LANGS}


class Centered:
    """``base`` with each text's language mean removed: ``unit(v − mean[lang(text)])``."""

    def __init__(self, base: Embedder, means: dict[Lang, Vectors] | None = None) -> None:
        self.base = base
        self._means = means
        self._lock = threading.Lock()

    @property
    def means(self) -> dict[Lang, Vectors]:
        with self._lock:
            if self._means is None:
                self._means = shipped_means(self.base.name) or language_means(
                    self.base, calibration_pairs()
                )
            return self._means

    @property
    def name(self) -> str:
        """The base's name, the option, and a digest of the means: vectors made with other
        means are not comparable, and the case memory refuses to mix them."""
        means = self.means
        digest = hashlib.sha256(b"".join(means[lang].tobytes() for lang in LANGS)).hexdigest()
        return f"{self.base.name}:centered@{digest[:8]}"

    @property
    def dim(self) -> int:
        return self.base.dim

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        rows = self.base.embed(texts, query=query).copy()
        if not len(rows):
            return rows
        means = self.means
        for i, text in enumerate(texts):
            rows[i] -= means[text_language(text)]
        return unit_rows(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Recompute the shipped means of the packaged models from the shipped pairs."""
    from knowledge.embedder import make_embedder

    names = list(argv if argv is not None else sys.argv[1:]) or ["use-m3", "e5-small"]
    pairs = calibration_pairs()
    table: dict[str, Any] = {}
    target = _data(MEANS_FILE)
    with contextlib.suppress(FileNotFoundError):
        table = json.loads(target.read_text(encoding="utf-8"))
    for name in names:
        means = language_means(make_embedder(name), pairs)
        table[name] = {
            "pairs": len(pairs),
            "pairs_digest": pairs_digest(pairs),
            **{lang: [round(float(x), 7) for x in means[lang]] for lang in LANGS},
        }
        print(f"{name}: means of {len(pairs)} pairs", file=sys.stderr)
    with open(str(target), "w", encoding="utf-8") as handle:
        json.dump(table, handle, separators=(",", ":"))
        handle.write("\n")


if __name__ == "__main__":
    main()
