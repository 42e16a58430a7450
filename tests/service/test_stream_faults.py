"""The fault test of the stream workers: ten SIGKILLs at random points of a run, and NATS
restarted once in the middle of it; the orders come in ten waves, one before each kill, so
that every kill falls inside the run on a machine of any speed. Every order is decided
exactly once, every executed action ran once, no message went out twice, the audit log
verifies and replays every decision. The events relay runs beside the workers, to the same
NATS, and is SIGKILLed twice: every event of the outbox is on the events stream at least
once, and de-duplicates to once by its id.

NATS here is a server of the test's own (``nats-server -js`` on a free port of 127.0.0.1, with
a store dir in the test's folder), so that restarting it touches nothing else; the test is
skipped, saying so, where no ``nats-server`` is installed. On PostgreSQL when
EXDESK_TEST_DATABASE_URL is set (the database several machines share), else on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, make_engine, scratch_schema
from tests.conftest import PG_ENV
from tests.service.stream_support import base_env, reachable, stream_env
from tests.service.test_processes import MESSAGES, Install, _check_consistent, _crash_scenario

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None
)


class OwnNats:
    """A nats-server with JetStream for one test, which it may stop and start again."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert NATS_SERVER is not None
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not reachable(self.url):
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    if NATS_SERVER is None:
        pytest.skip("no nats-server installed: the fault test restarts a NATS of its own")
    server = OwnNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test starts; any still running when it ends (a failed assertion) is
    killed, so that none goes on taking events from the stream."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_workers_killed_ten_times_and_nats_restarted_do_everything_once(
    own_nats: OwnNats, tmp_path: Path, reaper: list[subprocess.Popen[str]]
) -> None:
    _name, extra = stream_env(own_nats.url)
    env = {**base_env(), **extra, "EXDESK_STREAM_ACK_WAIT_S": "2", **_relay_env(own_nats.url)}
    base = os.environ.get(PG_ENV)
    with scratch_schema(base, "exdesk_faults") if base else contextlib.nullcontext() as schema:
        if schema:
            env["EXDESK_DATABASE_URL"] = in_schema(str(base), schema)
        install = Install(tmp_path / "desk", env)
        world, orders, template_of = _crash_scenario(tmp_path, per_template=20)  # 140 orders
        waves = _waves(orders, 10, tmp_path)
        code, output = install.call("audit", "checkpoint")  # migrate and make the key first
        assert code == 0, output
        database = Settings(
            data_dir=install.data_dir, database_url=env.get("EXDESK_DATABASE_URL")
        ).database()
        engine = make_engine(database)

        def spawn(*args: str) -> subprocess.Popen[str]:
            reaper.append(install.run(*args))
            return reaper[-1]

        def worker() -> subprocess.Popen[str]:
            return spawn("worker", "--stream", own_nats.url, "--batch", "8")

        # The orders come in ten waves, one before each kill, and each kill waits until the
        # workers are in the new wave's orders: however fast the machine, every kill falls
        # inside the run, with orders published and not yet decided.
        rng = random.Random(16)
        workers = [worker(), worker()]
        relay = spawn("events", "relay")
        published = kills = inside = 0
        for round_ in range(10):
            before = _decided_count(engine)
            first = ("--world", str(world)) if round_ == 0 else ()
            code, output = install.call(
                "publish", str(waves[round_]), *first, "--stream", own_nats.url
            )
            assert code == 0 and f"{_lines(waves[round_])} events published" in output, output
            published += _lines(waves[round_])
            deadline = time.monotonic() + 60
            while _decided_count(engine) == before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.03))  # a wave of L1 orders can end within 0.1 s
            victim = rng.randrange(2)
            if workers[victim].poll() is None:
                inside += _decided_count(engine) < published
                workers[victim].send_signal(signal.SIGKILL)
                kills += 1
            workers[victim].communicate(timeout=60)
            if round_ == 4:
                own_nats.stop()  # NATS restarts while the other worker is in its orders
                time.sleep(rng.uniform(0.5, 1.5))
                own_nats.start()
            workers[victim] = worker()
            if round_ in (2, 7):  # the relay too, wherever it is (between publish and mark)
                relay.send_signal(signal.SIGKILL)
                relay.communicate(timeout=60)
                relay = spawn("events", "relay")
        engine.dispose()
        assert kills == 10
        assert inside >= 5, f"only {inside} of 10 kills fell with orders still to decide"
        started = [time.monotonic()] * 2
        finishers = [*workers]
        time.sleep(max(0.0, max(started) + 4.0 - time.monotonic()))  # past their start-up
        for proc in finishers:
            proc.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=120)[0] for p in finishers]
        # stopped cleanly, or by SIGTERM itself while still starting up (nothing in hand)
        assert {p.returncode for p in finishers} <= {0, -signal.SIGTERM}, outputs
        last = spawn("worker", "--stream", own_nats.url, "--until-idle", "4")
        output = last.communicate(timeout=600)[0]
        assert last.returncode == 0, output
        _relayed(install, relay)

        app = install.app()
        try:
            entries = _check_consistent(app)  # actions logged == stored, log verifies
            decided = _decided(app)
            assert set(decided) == set(template_of) and set(decided.values()) == {1}
            sent = Counter(
                (m["order_id"], m["channel"], m.get("template"))
                for m in app.backend("default").outbox()
            )
            assert set(sent.values()) == {1}  # no message twice
            for order_id, name in template_of.items():
                if name in MESSAGES:
                    assert (order_id, MESSAGES[name]) in {(o, c) for (o, c, _t) in sent}
            executed = Counter(e.payload["key"] for e in entries if e.event == "tool.called")
            assert set(executed.values()) == {1}
            held = {
                (r["warehouse_id"], r["sku"]): r["held"] for r in app.worlds.stock_rows("default")
            }
            reallocations = sum(1 for n in template_of.values() if n == "EX-inject-stock-012")
            assert held[("WH-SZX", "HDP-BT-200")] == 3 * reallocations
            # events out: every one on the stream at least once, once by its id
            published = _events_on_stream(own_nats.url)
            assert [json.loads(body)["id"] for _, body in published] == [
                msg_id for msg_id, _ in published
            ]
            by_id = {msg_id: body for msg_id, body in published}
            rows = app.outbox.list()
            assert rows and set(by_id) == {r.event_id for r in rows}
            assert all(json.loads(by_id[r.event_id]) == json.loads(r.body) for r in rows)
        finally:
            app.close()
        code, output = install.call("audit", "verify")
        assert code == 0 and output.startswith("ok: "), output
        code, output = install.call("audit", "replay")
        assert code == 0, output
        count = output.split(" of ")[0].strip()
        assert f"{count} of {count} decisions reproduced" in output and int(count) > 0, output


DECIDED = "order.detected"  # one a decision: a screened order's, or the graph's detect step


def _relay_env(url: str) -> dict[str, str]:
    """The relay to this test's NATS, quick to take over a killed relay's claims and to try
    again after NATS is back."""
    return {
        "EXDESK_EVENTS_NATS_URL": url,
        "EXDESK_EVENTS_LEASE_S": "2",
        "EXDESK_EVENTS_BACKOFF_S": "0.1",
        "EXDESK_EVENTS_BACKOFF_MAX_S": "1",
        "EXDESK_EVENTS_POLL_S": "0.2",
    }


def _relayed(install: Install, relay: subprocess.Popen[str]) -> None:
    """Wait until the running relay has sent every event of the outbox, then stop it."""
    app = install.app()
    try:
        deadline = time.monotonic() + 120
        while (counts := app.outbox.counts())["pending"] or counts["failing"]:
            assert relay.poll() is None, relay.communicate()[0]
            assert time.monotonic() < deadline, counts
            time.sleep(0.2)
    finally:
        app.close()
    relay.send_signal(signal.SIGTERM)
    output = relay.communicate(timeout=60)[0]
    assert relay.returncode == 0, output


def _events_on_stream(url: str) -> list[tuple[str, bytes]]:
    """(Nats-Msg-Id, body) of every message on the events stream, in its order."""

    async def read() -> list[tuple[str, bytes]]:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            info = await js.stream_info(Settings.model_fields["events_stream"].default)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(info.config.name, seq)
                out.append(((msg.headers or {}).get("Nats-Msg-Id", ""), msg.data or b""))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def _decided(app: Exdesk) -> Counter[str]:
    return Counter(e.payload["order_id"] for e in app.audit.entries() if e.event == DECIDED)


def _decided_count(engine: Engine) -> int:
    """How many decisions the log holds, read straight from its table (no desk opened)."""
    query = text("SELECT count(*) FROM audit_log WHERE event = :event")
    with contextlib.suppress(OperationalError, ProgrammingError), engine.connect() as conn:
        return int(conn.execute(query, {"event": DECIDED}).scalar_one())
    return 0


def _waves(orders: Path, count: int, folder: Path) -> list[Path]:
    """The orders file cut into ``count`` files of about the same size, in its order."""
    lines = orders.read_text(encoding="utf-8").splitlines(keepends=True)
    size = -(-len(lines) // count)
    waves = []
    for n in range(count):
        wave = folder / f"wave-{n}.jsonl"
        wave.write_text("".join(lines[n * size : (n + 1) * size]), encoding="utf-8")
        waves.append(wave)
    return waves


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())
