"""Settings, from the environment (prefix EXDESK_) and command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXDESK_", frozen=True)

    data_dir: Path = Path(".exdesk")
    # SQLAlchemy URL of the store, review queue and audit log; SQLite under data_dir if unset.
    database_url: str | None = None
    # A policy file of your own; the shipped default policy if unset.
    policy_file: Path | None = None
    # How often the graph checkpoints: every step ("sync"), in the background ("async"),
    # or only when a thread pauses or ends ("exit").
    durability: Literal["sync", "async", "exit"] = "sync"
    # Case memory: a Qdrant server URL (embedded Qdrant under data_dir if unset) and the
    # sentence-transformers model (a name or a path).
    qdrant_url: str | None = None
    embedding_model: str = "all-MiniLM-L6-v2"
