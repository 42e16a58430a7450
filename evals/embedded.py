"""The embedded defaults for benchmarks: whatever the environment says (a database URL, a
shop, a model endpoint), a benchmark measures exdesk on SQLite in a folder of its own, with
simulated tools and no model, and never writes into a store the user configured."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.settings import Settings

# Settings read these without the EXDESK_ prefix (the names every OpenAI client reads).
_UNPREFIXED = ("OPENAI_BASE_URL", "OPENAI_API_KEY")


def _ours(name: str) -> bool:
    return name.startswith("EXDESK_") or name in _UNPREFIXED


def environment(data_dir: Path) -> dict[str, str]:
    """The environment of a child ``exdesk`` process: this one's without exdesk's settings,
    with ``EXDESK_DATA_DIR`` set."""
    env = {k: v for k, v in os.environ.items() if not _ours(k)}
    env["EXDESK_DATA_DIR"] = str(data_dir)
    return env


@contextmanager
def _hidden() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if _ours(k)}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of the embedded defaults under ``data_dir``, the environment ignored."""
    with _hidden():
        return Settings(data_dir=data_dir, **overrides)
