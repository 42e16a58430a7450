"""Back-pressure: a database that stops answering writes (its audit table locked by another
session on PostgreSQL, the write lock held on SQLite) for longer than the stream's ack wait.
The workers take no more than a batch each and the stream keeps the rest, nothing commits
while the database is held, no event is dead-lettered or lost, and once the database is back
every order ends decided exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.js.api import ConsumerInfo
from sqlalchemy import Engine, TextClause, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from service.settings import Settings
from store.db import make_engine, transaction
from tests.service.stream_support import OnStream, on_stream_for
from tests.service.test_processes import _check_consistent, _crash_scenario

BATCH = 4
HELD_S = 7.0  # more than twice the tests' ack wait (3 s)


@pytest.fixture(params=["sqlite", "postgresql"])
def on_stream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnStream]:
    yield from on_stream_for(request.param, tmp_path)


def _consumer(url: str, stream: str) -> ConsumerInfo | None:
    async def ask() -> ConsumerInfo | None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            return await nc.jetstream().consumer_info(stream, "exdesk-workers")
        except nats.js.errors.NotFoundError:
            return None
        finally:
            await nc.close()

    return asyncio.run(ask())


def _dead_count(url: str, stream: str) -> int:
    async def ask() -> int:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            info = await nc.jetstream().stream_info(f"{stream}_DEAD")
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(ask())


def _split(orders: Path, first: int) -> tuple[Path, Path]:
    lines = orders.read_text(encoding="utf-8").splitlines(keepends=True)
    head, tail = orders.with_name("first.jsonl"), orders.with_name("rest.jsonl")
    head.write_text("".join(lines[:first]), encoding="utf-8")
    tail.write_text("".join(lines[first:]), encoding="utf-8")
    return head, tail


def test_a_held_database_slows_the_workers_and_loses_nothing(
    on_stream: OnStream, tmp_path: Path
) -> None:
    world, orders, template_of = _crash_scenario(tmp_path, per_template=5)  # 35 orders
    first, rest = _split(orders, 7)
    total, later = len(template_of), len(template_of) - 7
    install = on_stream.install
    code, output = on_stream.publish(str(first), "--world", str(world))
    assert code == 0 and "7 events published" in output, output
    database = Settings(
        data_dir=install.data_dir, database_url=install.env.get("EXDESK_DATABASE_URL")
    ).database()
    engine = make_engine(database)
    decided = text("SELECT count(*) FROM audit_log WHERE event = 'order.detected'")  # decisions
    workers = [on_stream.worker("--batch", str(BATCH), "--until-idle", "15") for _ in range(2)]
    try:
        deadline = time.monotonic() + 300  # the workers up, and the first orders decided
        while _count(engine, decided) < 7:
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
            time.sleep(0.1)
        with transaction(engine) as held:  # SQLite: BEGIN IMMEDIATE takes the write lock
            if engine.dialect.name == "postgresql":
                held.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
            code, output = on_stream.publish(str(rest))  # the stream only: no database
            assert code == 0 and f"{later} events published" in output, output
            # each worker takes what it can and stops at its first write: both hold events
            deadline = time.monotonic() + 60
            while (info := _consumer(on_stream.url, on_stream.name)) is None or (
                info.num_ack_pending < 2
            ):
                assert time.monotonic() < deadline, f"the workers took nothing: {info}"
                time.sleep(0.1)
            samples = []
            until = time.monotonic() + HELD_S
            while time.monotonic() < until:
                info = _consumer(on_stream.url, on_stream.name)
                assert info is not None
                samples.append(info)
                time.sleep(0.25)
            # reads still go on beside the held writes; no decision got through
            assert _count(engine, decided) == 7
            assert all(w.poll() is None for w in workers)  # waiting, not failing
        # held: each worker had at most its batch in hand, the stream kept the rest
        assert all(s.num_ack_pending <= 2 * BATCH for s in samples), [
            (s.num_ack_pending, s.delivered.stream_seq) for s in samples
        ]
        # (by the last position handed out: consumer info's num_pending is an estimate for a
        # filtered consumer, and was seen to dip by a few while nothing was handed out)
        assert all(s.delivered.stream_seq <= total - later + 2 * BATCH for s in samples), [
            (s.num_ack_pending, s.delivered.stream_seq) for s in samples
        ]
        outputs = [w.communicate(timeout=600)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()
        engine.dispose()
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert all(", 0 dead-lettered" in o for o in outputs), outputs
    handled = sum(int(o.split(" orders handled")[0].split()[-1]) for o in outputs)
    assert handled >= total, outputs
    after = _consumer(on_stream.url, on_stream.name)
    assert after is not None and after.num_pending == 0 and after.num_ack_pending == 0
    assert _dead_count(on_stream.url, on_stream.name) == 0
    app = install.app()
    try:
        _check_consistent(app)  # actions logged == stored, the log verifies
        once = Counter(
            e.payload["order_id"] for e in app.audit.entries() if e.event == "order.detected"
        )
        assert set(once) == set(template_of) and set(once.values()) == {1}
    finally:
        app.close()


def _count(engine: Engine, query: TextClause) -> int:
    with contextlib.suppress(OperationalError, ProgrammingError), engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
    return 0
