"""``NatsStream.fetch`` against the NATS on 127.0.0.1: a worker never gets more than its
batch, even when nats-py delivers more (an earlier pull request's messages arriving late),
and a timeout inside nats-py means "nothing yet", not "NATS is away". Skipped, saying so,
when no NATS answers there."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from service.stream_nats import NatsStream
from service.streams import Outgoing
from tests.service.stream_support import NATS_URL, drop_streams, nats_stream, stream_env


@pytest.fixture
def stream() -> Iterator[NatsStream]:
    name, extra = stream_env(NATS_URL)
    one = nats_stream(name, extra["EXDESK_STREAM_SUBJECT"])
    try:
        yield one
    finally:
        one.close()
        drop_streams(NATS_URL, [name, f"{name}_DEAD"])


def _publish(stream: NatsStream, count: int) -> None:
    stream.publish(
        [
            Outgoing(world_id="w", order_id=f"o{i}", body=json.dumps({"i": i}).encode())
            for i in range(count)
        ]
    )


def test_more_delivered_than_asked_comes_with_the_next_fetch(stream: NatsStream) -> None:
    _publish(stream, 10)

    async def pull_ahead() -> None:  # what a timed-out fetch's pull request leaves behind
        sub = await stream._subscription()
        request = json.dumps({"batch": 7, "no_wait": True}).encode()
        await stream._nc.publish(sub._nms, request, sub._deliver)
        for _ in range(200):
            if sub._sub._pending_queue.qsize() >= 7:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{sub._sub._pending_queue.qsize()} of 7 delivered")

    stream._call(pull_ahead())
    batches = [stream.fetch(3, timeout=1.0) for _ in range(5)]
    assert len(batches[0]) == 3
    assert all(len(b) <= 3 for b in batches)  # never more than asked
    seqs = [d.seq for b in batches for d in b]
    assert seqs == list(range(1, 11))  # each once, in order: none lost, none doubled
    for delivery in (d for b in batches for d in b):
        assert stream.ack(delivery)
    assert stream.fetch(3, timeout=0.2) == []


def test_a_timeout_inside_nats_py_is_nothing_yet(
    stream: NatsStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = stream._call(stream._subscription())

    async def times_out(*args: object, **kwargs: object) -> list[object]:
        raise TimeoutError  # what nats-py raises (asyncio's, the builtin) when its time is up

    monkeypatch.setattr(sub, "fetch", times_out)
    assert stream.fetch(4, timeout=0.2) == []
