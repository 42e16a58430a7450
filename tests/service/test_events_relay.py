"""The events relay: to a signed webhook (a server the test starts), to NATS JetStream on
127.0.0.1:4222 (skipped with the reason when unreachable), several relays at once, and a
relay SIGKILLed between a publish and its mark, then run again: every event published at
least once, de-duplicating to once by its id. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from service.relay import Relay, sinks_for
from service.settings import Settings
from service.wiring import Exdesk
from store.schema import events_outbox
from tests.service.events_helpers import Receiver, database_url, every_kind_of_event, settings
from tools.event_sinks import NatsSink, WebhookSink

SECRET = "s3cret-for-tests"
NATS = "nats://127.0.0.1:4222"


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Exdesk, str | None]]:
    """An app whose outbox holds every type of event, and its database URL."""
    with database_url(request.param, tmp_path) as url:
        app = Exdesk(settings(tmp_path, url))
        try:
            every_kind_of_event(app)
            yield app, url
        finally:
            app.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(SECRET)
    yield server
    server.close()


def _relay(app: Exdesk, *sinks: Any, tries: int = 4) -> Relay:
    return Relay(
        app.outbox,
        list(sinks),
        batch=7,
        lease_s=30,
        tries=tries,
        backoff_s=0.01,
        backoff_max_s=0.05,
    )


def _ids(app: Exdesk) -> list[str]:
    return [r.event_id for r in app.outbox.list()]


def _unsend(app: Exdesk, ids: list[str]) -> None:
    """As if the relay had died after publishing these and before marking them."""
    with app.engine.begin() as conn:
        conn.execute(
            update(events_outbox)
            .where(events_outbox.c.event_id.in_(ids))
            .values(sent_at=None, claimed_by=None, claimed_until=None)
        )


def test_the_relay_posts_every_event_signed_and_retries_a_5xx(
    filled: tuple[Exdesk, str | None], receiver: Receiver
) -> None:
    app, _ = filled
    receiver.fail_first = 2  # the first event is answered 503 twice, then taken
    relay = _relay(app, WebhookSink(receiver.url, SECRET, timeout_s=5))
    totals = relay.drain()
    relay.close()
    ids = _ids(app)
    assert totals.sent == len(ids) and totals.failed == 0
    assert receiver.taken() == ids  # one relay publishes in log order
    assert [r["status"] for r in receiver.received[:3]] == [503, 503, 200]
    assert len({r["id"] for r in receiver.received[:3]}) == 1  # the same event, retried
    assert all(r["signed"] and r["header_id"] == r["id"] for r in receiver.received)
    assert all(
        r["content_type"].startswith("application/cloudevents+json") for r in receiver.received
    )
    assert [r["event"] for r in receiver.received[2:]] == [
        json.loads(r.body) for r in app.outbox.list()
    ]
    assert app.outbox.counts() == {"sent": len(ids), "pending": 0, "failing": 0}
    # published again (a relay died before marking): the receiver de-duplicates by id
    _unsend(app, ids[3:9])
    relay = _relay(app, WebhookSink(receiver.url, SECRET, timeout_s=5))
    assert relay.drain().sent == 6
    relay.close()
    taken = receiver.taken()
    assert len(taken) == len(ids) + 6 and list(dict.fromkeys(taken)) == ids


def test_a_refusal_waits_and_says_why(
    filled: tuple[Exdesk, str | None], receiver: Receiver
) -> None:
    app, _ = filled
    receiver.status = 400  # not retried in the round: a 4xx will not change by itself
    relay = _relay(app, WebhookSink(receiver.url, SECRET, timeout_s=5))
    totals = relay.drain()
    assert totals.sent == 0 and totals.failed == 1 and len(receiver.received) == 1
    (first, *rest) = app.outbox.list()
    assert first.state == "failing" and first.attempts == 1 and first.next_at is not None
    assert "answered 400" in (first.last_error or "")
    assert all(r.state == "pending" and r.attempts == 0 for r in rest)
    # it waits before its retry; the next round tries the events after it
    assert relay.drain().sent == 0 and len(receiver.received) == 2
    assert receiver.received[1]["id"] == rest[0].event_id
    receiver.status = 200
    _unsend(app, [first.event_id])  # ...its wait is over
    with app.engine.begin() as conn:
        conn.execute(update(events_outbox).values(next_at=None))
    assert relay.drain().sent == len(rest) + 1
    relay.close()
    assert set(receiver.taken()) == set(_ids(app))


def test_an_unreachable_webhook_is_retried_a_bounded_number_of_times(
    filled: tuple[Exdesk, str | None],
) -> None:
    app, _ = filled
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    relay = _relay(app, WebhookSink(f"http://127.0.0.1:{port}/", SECRET, timeout_s=1), tries=3)
    totals = relay.drain()
    relay.close()
    assert totals.sent == 0 and totals.failed == 1
    assert "ConnectError" in (app.outbox.list()[0].last_error or "")


def test_relays_at_once_publish_each_event_once(
    filled: tuple[Exdesk, str | None], receiver: Receiver
) -> None:
    app, _ = filled
    receiver.delay_s = 0.01
    relays = [_relay(app, WebhookSink(receiver.url, SECRET, timeout_s=5)) for _ in range(3)]
    threads = [threading.Thread(target=r.drain) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for r in relays:
        r.close()
    assert sorted(receiver.taken()) == sorted(_ids(app))  # all of them, none twice
    assert app.outbox.counts()["sent"] == len(_ids(app))


def _cli_env(app: Exdesk, url: str | None, receiver: Receiver, **more: str) -> dict[str, str]:
    env = {
        **os.environ,
        "EXDESK_DATA_DIR": str(app.settings.data_dir),
        "EXDESK_SIMULATED_FAULTS": "",
        "EXDESK_EVENTS_WEBHOOK_URL": receiver.url,
        "EXDESK_EVENTS_WEBHOOK_SECRET": SECRET,
        "EXDESK_EVENTS_LEASE_S": "1",
        "EXDESK_EVENTS_BATCH": "50",
        "EXDESK_EVENTS_POLL_S": "0.2",
        **more,
    }
    env.pop("EXDESK_EVENTS_NATS_URL", None)
    if url is not None:
        env["EXDESK_DATABASE_URL"] = url
    return env


def _exdesk(*args: str) -> list[str]:
    return [sys.executable, "-c", "from service.cli import main; main()", *args]


def test_a_relay_killed_between_publish_and_mark_publishes_again_with_the_same_ids(
    filled: tuple[Exdesk, str | None], receiver: Receiver
) -> None:
    app, url = filled
    ids = _ids(app)
    env = _cli_env(app, url, receiver)
    relay = subprocess.Popen(
        _exdesk("events", "relay"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    receiver.kill_pid, receiver.kill_after = relay.pid, 7  # published 7, marked none
    try:
        assert relay.wait(timeout=120) == -9
    finally:
        relay.kill()
    receiver.kill_pid = None
    assert receiver.taken()[:7] == ids[:7] and len(receiver.taken()) <= 9
    assert app.outbox.counts()["sent"] < 7  # killed before it marked them all
    again = subprocess.run(
        _exdesk("events", "relay", "--once"), env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "0 pending, 0 failing" in again.stderr
    taken = Counter(receiver.taken())
    assert set(taken) == set(ids)  # every event at least once ...
    assert any(n > 1 for n in taken.values())  # ... some twice, under the same id
    assert app.outbox.counts() == {"sent": len(ids), "pending": 0, "failing": 0}
    listed = subprocess.run(
        _exdesk("events", "list", "--json", "--limit", "1000"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == ids


def test_the_relay_command_says_what_is_missing(filled: tuple[Exdesk, str | None]) -> None:
    app, url = filled
    env = {**os.environ, "EXDESK_DATA_DIR": str(app.settings.data_dir)}
    if url is not None:
        env["EXDESK_DATABASE_URL"] = url
    for name in ("EXDESK_EVENTS_NATS_URL", "EXDESK_EVENTS_WEBHOOK_URL"):
        env.pop(name, None)
    done = subprocess.run(
        _exdesk("events", "relay", "--once"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "EXDESK_EVENTS_NATS_URL" in done.stderr
    env["EXDESK_EVENTS_WEBHOOK_URL"] = "http://127.0.0.1:9/"
    env.pop("EXDESK_EVENTS_WEBHOOK_SECRET", None)
    done = subprocess.run(
        _exdesk("events", "relay", "--once"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "EXDESK_EVENTS_WEBHOOK_SECRET" in done.stderr
    assert "Traceback" not in done.stderr


# --- NATS JetStream ---------------------------------------------------------------------------


def _nats_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=1):
            return True
    except OSError:
        return False


async def _stream_messages(subject: str) -> list[tuple[str, bytes]]:
    import nats

    nc = await nats.connect(NATS)
    try:
        js = nc.jetstream()
        name = await js.find_stream_name_by_subject(f"{subject}.>")
        info = await js.stream_info(name)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(name, seq)
            out.append(((msg.headers or {}).get("Nats-Msg-Id", ""), msg.data or b""))
        return out
    finally:
        await nc.close()


async def _delete_stream(name: str) -> None:
    import nats

    nc = await nats.connect(NATS)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def test_the_relay_publishes_to_jetstream_and_a_repeat_is_dropped(
    filled: tuple[Exdesk, str | None],
) -> None:
    if not _nats_up():
        pytest.skip("NATS JetStream is not reachable on 127.0.0.1:4222 (start nats-server -js)")
    app, _ = filled
    tag = uuid.uuid4().hex[:10]
    subject, stream = f"exdesk_test_{tag}.events", f"EXDESK_TEST_{tag}"
    # a cluster's servers as a list, the first one down: the sink fails over to the next
    sink = NatsSink(f"nats://127.0.0.1:1,{NATS}", subject=subject, stream=stream, timeout_s=5)
    try:
        relay = _relay(app, sink)
        assert relay.drain().sent == len(_ids(app))
        ids = _ids(app)
        _unsend(app, ids)  # all of them again: JetStream drops them by Nats-Msg-Id
        assert _relay(app, sink).drain().sent == len(ids)
        stored = asyncio.run(_stream_messages(subject))
        assert [msg_id for msg_id, _ in stored] == ids
        assert [json.loads(data)["id"] for _, data in stored] == ids
        assert [json.loads(data) for _, data in stored] == [
            json.loads(r.body) for r in app.outbox.list()
        ]
    finally:
        sink.close()
        asyncio.run(_delete_stream(stream))


def test_both_sinks_from_settings(filled: tuple[Exdesk, str | None], receiver: Receiver) -> None:
    if not _nats_up():
        pytest.skip("NATS JetStream is not reachable on 127.0.0.1:4222 (start nats-server -js)")
    app, _ = filled
    tag = uuid.uuid4().hex[:10]
    subject, stream = f"exdesk_test_{tag}.events", f"EXDESK_TEST_{tag}"
    config = Settings(
        data_dir=app.settings.data_dir,
        events_nats_url=NATS,
        events_subject=subject,
        events_stream=stream,
        events_webhook_url=receiver.url,
        events_webhook_secret=SECRET,
    )
    relay = Relay.from_settings(app.outbox, config, sinks_for(config))
    try:
        assert relay.drain().sent == len(_ids(app))
        assert receiver.taken() == _ids(app)
        assert [i for i, _ in asyncio.run(_stream_messages(subject))] == _ids(app)
    finally:
        relay.close()
        asyncio.run(_delete_stream(stream))


def test_the_service_relays_in_the_background(
    filled: tuple[Exdesk, str | None], receiver: Receiver
) -> None:
    from fastapi.testclient import TestClient

    from service.http import create_app

    app, url = filled
    config = Settings(
        data_dir=app.settings.data_dir,
        database_url=url,
        events_webhook_url=receiver.url,
        events_webhook_secret=SECRET,
        events_poll_s=0.1,
    )
    ids = set(_ids(app))
    with TestClient(create_app(config, sweep_interval=0)):
        for _ in range(300):  # bounded: 30 s
            if set(receiver.taken()) == ids:
                break
            time.sleep(0.1)
    assert set(receiver.taken()) == ids
    assert app.outbox.counts()["sent"] == len(ids)
