"""Markers of the eval tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "model: loads a real embedding model (a few seconds, offline)"
    )
