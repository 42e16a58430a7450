"""Errors of the case memory. Each says what went wrong and which setting to change."""

from __future__ import annotations

from domain.errors import ExdeskError


class EmbedderUnavailable(ExdeskError):
    """The embedding model cannot be loaded (not installed, not found, not readable)."""


class CaseMemoryUnavailable(ExdeskError):
    """The Qdrant store cannot be opened or reached, or holds vectors of another model."""
