"""How many copies a NATS cluster keeps of exdesk's streams (EXDESK_STREAM_REPLICAS): asked of
a single server, more than one is refused, saying what to set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from service.settings import Settings
from service.streams import StreamUnavailable
from tests.service.stream_support import (
    NATS_URL,
    base_env,
    drop_streams,
    nats_stream,
    stream_env,
)
from tests.service.test_processes import EXDESK


def test_more_replicas_than_servers_is_refused_saying_what_to_set() -> None:
    name, extra = stream_env(NATS_URL)
    try:
        with pytest.raises(StreamUnavailable) as caught:
            nats_stream(name, extra["EXDESK_STREAM_SUBJECT"], replicas=3)
        message = str(caught.value)
        assert f"cannot make the JetStream stream {name} with 3 replica(s)" in message
        assert "non-clustered" in message and "EXDESK_STREAM_REPLICAS" in message
        nats_stream(name, extra["EXDESK_STREAM_SUBJECT"]).close()
    finally:
        drop_streams(NATS_URL, [name, f"{name}_DEAD"])


def test_the_worker_says_so_and_exits(tmp_path: Path) -> None:
    name, extra = stream_env(NATS_URL)
    env = {**base_env(), **extra, "EXDESK_STREAM_REPLICAS": "3"}
    assert Settings(stream_replicas=3).stream_replicas == 3
    try:
        done = subprocess.run(
            [EXDESK, "worker", "--stream", NATS_URL, "--data-dir", f"{tmp_path}/desk"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        drop_streams(NATS_URL, [name, f"{name}_DEAD"])
    assert done.returncode == 3, done
    assert "EXDESK_STREAM_REPLICAS" in done.stderr and "Traceback" not in done.stderr, done


def test_a_stream_found_with_fewer_replicas_is_used_and_said(
    capfd: pytest.CaptureFixture[str],
) -> None:
    name, extra = stream_env(NATS_URL)
    subject = extra["EXDESK_STREAM_SUBJECT"]
    try:
        nats_stream(name, subject).close()
        assert "replica" not in capfd.readouterr().err
        nats_stream(name, subject, replicas=3).close()
        said = capfd.readouterr().err
        assert f"the JetStream stream {name} keeps 1 replica(s)" in said
        assert f"nats stream edit {name} --replicas 3" in said
    finally:
        drop_streams(NATS_URL, [name, f"{name}_DEAD"])
