"""Benchmark: stream workers on PostgreSQL (issue 16). Orders at a peak (``evals.peak``: one
world, 5% exceptions) are published to NATS JetStream on 127.0.0.1 and handled by 1, then 2,
worker processes sharing one database, the way ``exdesk worker`` runs.

    python -m evals.bench_workers [--orders 50000] [--runs 1]

Three phases per run, each on a stream and a PostgreSQL schema of its own (made for it and
dropped after, so runs never collide):

1. **Peak, 1 worker.** Every order is on the stream before the worker starts; the clock runs
   from the start signal to the last ack (which comes after the decision and its audit entries
   commit). ``workers.orders_per_s_1``, ``workers.exception_decisions_per_s_1`` (orders with an
   exception decided, per second).
2. **Peak, 2 workers**, the same: ``workers.orders_per_s_2``, ``..._2``.
3. **80% of the 2-worker peak**: the orders are published at that rate while the 2 workers
   take them; ``workers.p50_ms_at_80pct`` and ``workers.p99_ms_at_80pct`` are the times from
   an order's publication (the stream's timestamp) to its ack.

Each worker is a process of its own (spawned, the real ``service.worker.Worker`` over the real
``NatsStream``), started, its case memory and embedding model warmed up, before the clock
starts: what is measured is a running pool, not start-up. The workers run the shipped
defaults (the multilingual embedding model, simulated tools, the events outbox on).

Where: ``EXDESK_BENCH_NATS_URL`` (default ``nats://127.0.0.1:4222``) and
``EXDESK_BENCH_DATABASE_URL``, else ``EXDESK_TEST_DATABASE_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; ``EXDESK_BENCH_WORKERS_ORDERS`` and
``EXDESK_BENCH_WORKERS_RUNS`` override the sizes (the JSON says which were run). Figures are
medians over the runs. Bounded: a phase that has not finished within ``60 s + 1 s`` per order
fails the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import queue
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from domain.models import Kind, Order, World
from evals import embedded, peak
from service.settings import Settings
from service.streams import Delivery, OrderEvent, Outgoing, Published, Stream, event_body
from store.db import in_schema, scratch_schema

WORLD_ID = "peak"
DEFAULT_NATS = "nats://127.0.0.1:4222"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PACED_SHARE = 0.8
TICK_S = 0.02  # the paced publisher's step


def sizes(quick: bool) -> dict[str, int]:
    orders = int(os.environ.get("EXDESK_BENCH_WORKERS_ORDERS", 0)) or (40 if quick else 50_000)
    runs = int(os.environ.get("EXDESK_BENCH_WORKERS_RUNS", 0)) or 1
    return {"orders": orders, "exception_share_pct": 5, "runs": runs, "max_workers": 2}


def where() -> tuple[str, str]:
    """(NATS URL, PostgreSQL URL) the benchmark runs on."""
    nats_url = os.environ.get("EXDESK_BENCH_NATS_URL") or DEFAULT_NATS
    database = (
        os.environ.get("EXDESK_BENCH_DATABASE_URL")
        or os.environ.get("EXDESK_TEST_DATABASE_URL")
        or DEFAULT_DATABASE
    )
    return nats_url, database


def _reachable(url: str, port: int) -> bool:
    parts = urlsplit(url.split(",")[0])
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or port), 2):
            return True
    except OSError:
        return False


# --- one phase's place: a stream and a schema of its own ------------------------------------


@dataclass(frozen=True)
class Place:
    nats_url: str
    database_url: str
    folder: Path
    stream: str

    def settings(self) -> Settings:
        """The workers' settings: the embedded defaults but for the database and stream."""
        return embedded.settings(
            self.folder / "desk",
            database_url=self.database_url,
            signing_key=self.folder / "signing-key.pem",
            stream_url=self.nats_url,
            stream_name=self.stream,
            stream_subject=f"bench.{self.stream.lower()}",
            stream_ack_wait_s=30.0,
        )


@contextlib.contextmanager
def place(nats_url: str, database: str, folder: Path) -> Iterator[Place]:
    name = f"BENCHW{uuid.uuid4().hex[:10].upper()}"
    with scratch_schema(database, "exdesk_bench_workers") as schema:
        try:
            yield Place(nats_url, in_schema(database, schema), folder, name)
        finally:
            _drop_streams(nats_url, [name, f"{name}_DEAD"])


def _drop_streams(url: str, names: list[str]) -> None:
    import nats
    import nats.js.errors

    async def drop() -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            for name in names:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)
        finally:
            await nc.close()

    with contextlib.suppress(Exception):  # cleaning up: a stream left behind is harmless
        asyncio.run(drop())


# --- the workers ----------------------------------------------------------------------------


class _Counted:
    """The stream as the worker sees it, counting acks into a number the parent reads and
    keeping the time of the last one."""

    def __init__(self, inner: Stream, acked: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.acked = acked
        self.last_ack = 0.0

    def publish(self, events: Sequence[Outgoing]) -> list[Published]:
        return self.inner.publish(events)

    def fetch(self, n: int, timeout: float) -> list[Delivery]:
        return self.inner.fetch(n, timeout)

    def ack(self, delivery: Delivery) -> bool:
        done = self.inner.ack(delivery)
        self.last_ack = time.time()
        with self.acked.get_lock():
            self.acked.value += 1
        return done

    def retry(self, delivery: Delivery, delay: float) -> None:
        self.inner.retry(delivery, delay)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.inner.dead_letter(delivery, reason)

    def dead_letters(self, limit: int) -> list[tuple[int, str, bytes]]:
        return self.inner.dead_letters(limit)

    def close(self) -> None:
        self.inner.close()


def _warm_up(app: Any) -> None:
    """What ``exdesk worker`` does before it takes events (``Exdesk.warm_up``), and a search,
    as a worker that has run a while has done."""
    from agent.rank import ranked_strategies

    app.warm_up()
    app.case_memory.evidence(
        "warm-up: a parcel that cannot ship",
        Kind.STOCKOUT,
        ranked_strategies(app.policy, Kind.STOCKOUT),
    )


def _worker_main(
    place_: Place, acked: Any, ready: MpEvent, go: MpEvent, stop: MpEvent, results: Any
) -> None:
    """One worker process: set up, say ready, work from ``go`` until ``stop``, report."""
    from service.streams import open_stream
    from service.wiring import Exdesk
    from service.worker import Worker

    settings = place_.settings()
    app = Exdesk(settings)
    try:
        app.host_case_memory()
        _warm_up(app)
        stream = _Counted(open_stream(place_.nats_url, settings), acked)
        try:
            worker = Worker(
                app,
                stream,
                batch=settings.stream_batch,
                max_attempts=settings.stream_max_attempts,
                say=lambda line: None,
            )
            halt = threading.Event()

            def relay_stop() -> None:
                stop.wait()
                halt.set()

            threading.Thread(target=relay_stop, daemon=True).start()
            ready.set()
            go.wait()
            tally = worker.run(halt)
        finally:
            stream.close()
    finally:
        app.close()
    results.put(
        {
            "handled": tally.handled,
            "exceptions": tally.exceptions,
            "retried": tally.retried,
            "dead": tally.dead,
            "latencies_ms": list(tally.latencies_ms),
            "last_ack": stream.last_ack,
        }
    )


@dataclass
class Pool:
    ctx: SpawnContext
    procs: list[SpawnProcess]
    acked: Any
    go: MpEvent
    stop: MpEvent
    results: Any

    def reports(self, timeout: float) -> list[dict[str, Any]]:
        self.stop.set()
        out = []
        deadline = time.monotonic() + timeout
        for _ in self.procs:
            try:
                out.append(self.results.get(timeout=max(1.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        for proc in self.procs:
            proc.join(timeout=max(1.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        if len(out) != len(self.procs):
            codes = [p.exitcode for p in self.procs]
            raise RuntimeError(f"a worker process did not report (exit codes {codes})")
        return out


def _start_pool(place_: Place, workers: int) -> Pool:
    ctx = multiprocessing.get_context("spawn")
    acked = ctx.Value("q", 0)
    go, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(place_, acked, ready, go, stop, results),
            name=f"bench-worker-{n}",
            daemon=True,
        )
        for n, ready in enumerate(readies)
    ]
    for proc in procs:
        proc.start()
    pool = Pool(ctx, procs, acked, go, stop, results)
    deadline = time.monotonic() + 300
    for ready, proc in zip(readies, procs, strict=True):
        while not ready.wait(0.2):
            if not proc.is_alive() or time.monotonic() > deadline:
                stop.set()
                for p in procs:
                    p.kill()
                raise RuntimeError(
                    f"worker process {proc.name} did not start (exit code {proc.exitcode})"
                )
    return pool


# --- the orders -----------------------------------------------------------------------------


def _events(count: int) -> tuple[World, list[Outgoing], int]:
    """The world, every order's event, and how many of the orders are exceptions."""
    world = World.model_validate(peak.world())
    events, exceptions = [], 0
    for kind, raw in peak.orders(count, 0.05, seed=13):
        exceptions += kind is not None
        order = Order.model_validate(raw)
        body = event_body(OrderEvent(world_id=WORLD_ID, order=order))
        events.append(Outgoing(world_id=WORLD_ID, order_id=order.order_id, body=body))
    return world, events, exceptions


def _load_world(place_: Place, world: World) -> None:
    from service import usecases
    from service.wiring import Exdesk

    app = Exdesk(place_.settings())
    try:
        usecases.load_world(app, WORLD_ID, world)
    finally:
        app.close()


def _publisher(place_: Place) -> Stream:
    from service.streams import open_stream

    return open_stream(place_.nats_url, place_.settings())


def _wait_acked(pool: Pool, count: int, deadline: float) -> None:
    while pool.acked.value < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {pool.acked.value} of {count} orders acked in time")
        if not all(p.is_alive() for p in pool.procs):
            raise RuntimeError("a worker process died during the benchmark")
        time.sleep(0.01)


@dataclass(frozen=True)
class Phase:
    orders: int
    seconds: float  # start signal to last ack
    exceptions: int  # orders with an exception decided
    latencies_ms: list[float]

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.seconds

    @property
    def exceptions_per_s(self) -> float:
        return self.exceptions / self.seconds


def _summed(reports: list[dict[str, Any]], began: float, count: int) -> Phase:
    handled = sum(r["handled"] for r in reports)
    if handled != count or any(r["dead"] for r in reports):
        raise RuntimeError(f"{handled} of {count} orders handled, reports: {reports}")
    last = max(r["last_ack"] for r in reports)
    return Phase(
        orders=count,
        seconds=max(last - began, 1e-6),
        exceptions=sum(r["exceptions"] for r in reports),
        latencies_ms=[x for r in reports for x in r["latencies_ms"]],
    )


def peak_phase(place_: Place, world: World, events: list[Outgoing], workers: int) -> Phase:
    """Every event on the stream first, then ``workers`` workers from a start signal."""
    _load_world(place_, world)
    publisher = _publisher(place_)
    try:
        publisher.publish(events)
    finally:
        publisher.close()
    pool = _start_pool(place_, workers)
    began = time.time()
    pool.go.set()
    try:
        _wait_acked(pool, len(events), time.monotonic() + 60 + len(events))
    finally:
        reports = pool.reports(120)
    return _summed(reports, began, len(events))


def paced_phase(
    place_: Place, world: World, events: list[Outgoing], workers: int, rate: float
) -> Phase:
    """``workers`` workers running, the events published at ``rate`` per second."""
    _load_world(place_, world)
    publisher = _publisher(place_)
    pool = _start_pool(place_, workers)
    try:
        pool.go.set()
        began = time.time()
        start, sent = time.monotonic(), 0
        while sent < len(events):
            due = min(len(events), int((time.monotonic() - start) * rate) + 1)
            if due > sent:
                publisher.publish(events[sent:due])
                sent = due
            time.sleep(TICK_S)
        _wait_acked(pool, len(events), time.monotonic() + 60 + len(events))
    finally:
        publisher.close()
        reports = pool.reports(120)
    return _summed(reports, began, len(events))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def one_run(nats_url: str, database: str, orders: int) -> dict[str, float]:
    world, events, _ = _events(orders)
    with tempfile.TemporaryDirectory(prefix="exdesk-bench-workers-") as tmp:
        found: dict[str, float] = {}
        for workers in (1, 2):
            folder = Path(tmp) / f"peak-{workers}"
            with place(nats_url, database, folder) as where_:
                phase = peak_phase(where_, world, events, workers)
            found[f"workers.orders_per_s_{workers}"] = phase.orders_per_s
            found[f"workers.exception_decisions_per_s_{workers}"] = phase.exceptions_per_s
        rate = PACED_SHARE * found["workers.orders_per_s_2"]
        with place(nats_url, database, Path(tmp) / "paced") as where_:
            paced = paced_phase(where_, world, events, 2, rate)
    found["workers.paced_rate_per_s"] = rate
    found["workers.p50_ms_at_80pct"] = statistics.median(paced.latencies_ms)
    found["workers.p99_ms_at_80pct"] = _percentile(paced.latencies_ms, 0.99)
    return found


def measure(orders: int, runs: int) -> dict[str, float]:
    """The figures, medians over ``runs`` runs of ``orders`` orders."""
    nats_url, database = where()
    if not _reachable(nats_url, 4222):
        raise RuntimeError(
            f"no NATS at {nats_url}: start nats-server -js (or set EXDESK_BENCH_NATS_URL)"
        )
    if not _reachable(database, 5432):
        raise RuntimeError(f"no PostgreSQL at {database}: set EXDESK_BENCH_DATABASE_URL")
    rounds = [one_run(nats_url, database, orders) for _ in range(max(1, runs))]
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def figures(quick: bool) -> dict[str, float]:
    size = sizes(quick)
    return measure(size["orders"], size["runs"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_workers", description=__doc__)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    nats_url, database = where()
    print(f"{args.orders} orders (5% exceptions), {args.runs} run(s), on {nats_url} and {database}")
    for key, value in measure(args.orders, args.runs).items():
        print(f"  {key:<42}{value:>12.2f}")


if __name__ == "__main__":
    main()
