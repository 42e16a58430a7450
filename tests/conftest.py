"""Shared fixtures: databases (SQLite always, PostgreSQL when EXDESK_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

try:  # the openai package's own HTTP client (recent versions)
    import httpx2
except ImportError:  # pragma: no cover - older openai versions use httpx
    httpx2 = None
from sqlalchemy import Engine

from store.db import in_schema, make_engine, scratch_schema

PG_ENV = "EXDESK_TEST_DATABASE_URL"


@pytest.fixture(autouse=True, scope="session")
def _own_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Signing keys go under the user's config dir: a test session gets a config dir of its own."""
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if before is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = before


LLM_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "EXDESK_LLM_MODEL", "OPENAI_ORG_ID")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_real_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches a real model endpoint by accident: a developer's OPENAI_* variables are
    not seen, and any HTTP request (the ``openai`` package's included) to a host that is not
    this machine fails the test. Tests talk to servers they start on 127.0.0.1."""
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)

    def guard(request: Any) -> None:
        if not _loopback(request.url.host):
            pytest.fail(
                f"a test tried to reach {request.url.host} ({request.method} {request.url}): "
                "tests never reach a real endpoint; serve a fake on 127.0.0.1 "
                "(tests/llm_servers.py) or use tools.fake_model.ScriptedModel",
                pytrace=False,
            )

    for package in (httpx, httpx2):
        if package is None:
            continue
        sync_send = package.HTTPTransport.handle_request
        async_send = package.AsyncHTTPTransport.handle_async_request

        def checked(self: Any, request: Any, _send: Any = sync_send) -> Any:
            guard(request)
            return _send(self, request)

        async def checked_async(self: Any, request: Any, _send: Any = async_send) -> Any:
            guard(request)
            return await _send(self, request)

        monkeypatch.setattr(package.HTTPTransport, "handle_request", checked)
        monkeypatch.setattr(package.AsyncHTTPTransport, "handle_async_request", checked_async)


def pytest_report_header() -> str:
    if os.environ.get(PG_ENV):
        return f"PostgreSQL tests: on ({PG_ENV} is set)"
    return f"PostgreSQL tests: SKIPPED ({PG_ENV} is unset)"


def _pg_engine() -> Iterator[Engine]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
    with scratch_schema(url, "exdesk_test") as schema:
        engine = make_engine(in_schema(url, schema))
        yield engine
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """An empty database: a SQLite file, and PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "exdesk.db"
        engine = make_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
    else:
        yield from _pg_engine()
