"""What the stream tests share: a NATS with JetStream on 127.0.0.1 (the one on 4222, or
``EXDESK_TEST_NATS_URL``), a stream of their own on it, and exdesk processes around them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest

from service.stream_nats import NatsStream
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV
from tests.service.test_processes import Install

NATS_URL = os.environ.get("EXDESK_TEST_NATS_URL", "nats://127.0.0.1:4222")


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 1):
            return True
    except OSError:
        return False


def drop_streams(url: str, names: list[str]) -> None:
    async def drop() -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
        await nc.close()

    asyncio.run(drop())


@dataclass(frozen=True)
class OnStream:
    """One test's stream (names of its own on the shared NATS) and its exdesk install."""

    url: str
    name: str
    install: Install

    def worker(self, *args: str, extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return self.install.run("worker", "--stream", self.url, *args, extra=extra)

    def publish(self, *args: str) -> tuple[int, str]:
        return self.install.call("publish", *args, "--stream", self.url)


def stream_env(url: str) -> tuple[str, dict[str, str]]:
    if not reachable(url):
        pytest.skip(f"no NATS at {url}: start nats-server -js (stream tests skipped)")
    name = f"T{uuid.uuid4().hex[:10].upper()}"
    return name, {
        "EXDESK_STREAM_NAME": name,
        "EXDESK_STREAM_SUBJECT": f"test.{name.lower()}",
        "EXDESK_STREAM_ACK_WAIT_S": "3",
        "EXDESK_STREAM_MAX_ATTEMPTS": "2",
    }


def nats_stream(name: str, subject: str, *, replicas: int = 1) -> NatsStream:
    """A ``NatsStream`` on the test NATS for stream ``name`` (made if missing), as the
    workers' durable consumer sees it, with a short ack wait."""
    return NatsStream(
        NATS_URL,
        stream=name,
        subject=subject,
        consumer="exdesk-workers",
        ack_wait_s=3,
        replicas=replicas,
    )


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXDESK_") or k == PG_ENV}
    env["EXDESK_EMBEDDING_MODEL"] = "hash"
    return env


def on_stream_for(database: str, tmp_path: Path) -> Iterator[OnStream]:
    """What a test's ``on_stream`` fixture yields: a stream of its own and an install on
    ``database`` ("sqlite" or "postgresql"); the stream is dropped afterwards."""
    name, extra = stream_env(NATS_URL)
    env = {**base_env(), **extra}
    try:
        if database == "sqlite":
            yield OnStream(NATS_URL, name, Install(tmp_path / "desk", env))
            return
        base = os.environ.get(PG_ENV)
        if not base:
            pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
        with scratch_schema(base, "exdesk_stream") as schema:
            env["EXDESK_DATABASE_URL"] = in_schema(base, schema)
            yield OnStream(NATS_URL, name, Install(tmp_path / "desk", env))
    finally:
        drop_streams(NATS_URL, [name, f"{name}_DEAD"])
