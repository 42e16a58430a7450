"""`exdesk publish`, `exdesk worker` and `exdesk dead-letters`: orders from a stream."""

from __future__ import annotations

import signal
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import ExdeskError
from domain.models import MAX_ID, Order, World
from service import usecases
from service.cli_common import (
    DatabaseUrl,
    DataDir,
    PolicyFile,
    err,
    fail,
    out,
    print_problems,
    settings_for,
)
from service.inputs import Parsed, read_json, read_jsonl, unique_by
from service.render import safe
from service.settings import Settings
from service.streams import (
    CaseEvent,
    Event,
    OrderEvent,
    Outgoing,
    Stream,
    event_body,
    open_stream,
)
from service.wiring import Exdesk
from service.worker import Worker

StreamUrl = Annotated[
    str | None,
    typer.Option(
        "--stream", help="The stream, e.g. nats://127.0.0.1:4222 (default: $EXDESK_STREAM_URL)."
    ),
]


@contextmanager
def _stream(url: str | None, settings: Settings) -> Iterator[Stream]:
    url = url or settings.stream_url
    if not url:
        raise fail("say which stream: --stream nats://HOST:4222 (or set EXDESK_STREAM_URL)")
    try:
        stream = open_stream(url, settings)
    except ExdeskError as exc:
        raise fail(str(exc), code=3) from exc
    try:
        yield stream
    finally:
        stream.close()


def _read_events(
    path: Path, cases: bool, world_id: str
) -> tuple[list[Event], list[str], list[str]]:
    """Every event of the file, or the errors that keep it from being published."""
    events: list[Event] = []
    if cases:
        parsed_cases = list(read_jsonl(path, CaseEvent))
        good_cases, errors = unique_by(parsed_cases, lambda c: c.id, path, "id", what="case")
        events += [item.value for item in good_cases if item.value is not None]
        notices = [p.notice for p in parsed_cases if p.notice]
    else:
        parsed: list[Parsed[Order]] = list(read_jsonl(path, Order))
        good, errors = unique_by(parsed, lambda o: o.order_id, path, "order_id", what="order")
        events += [
            OrderEvent(world_id=world_id, order=item.value)
            for item in good
            if item.value is not None
        ]
        notices = [p.notice for p in parsed if p.notice]
    return events, errors, notices


def publish_command(
    file: Annotated[
        Path, typer.Argument(help="Orders (contract §1) or, with --cases, eval cases.")
    ],
    stream: StreamUrl = None,
    cases: Annotated[
        bool,
        typer.Option("--cases", help="The file holds eval cases {id, order, world} (contract §6)."),
    ] = False,
    world: Annotated[
        Path | None,
        typer.Option("--world", help="Load this world (contract §2) into the store first."),
    ] = None,
    world_id: Annotated[
        str, typer.Option("--world-id", help="The orders' world in the store.")
    ] = "default",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a file of order events on the stream, for `exdesk worker` to handle.

    The whole file is read first: if any line is bad, every bad line is named and nothing is
    published. Publishing the same file again within two minutes adds nothing (the stream
    keeps one copy of each event); later, workers replay the orders that did not change."""
    if not 0 < len(world_id) <= MAX_ID:
        raise fail(f"--world-id must be 1 to {MAX_ID} characters")
    if cases and world is not None:
        raise fail("--cases brings each case's world; leave out --world")
    settings = settings_for(data_dir, database_url=database_url)
    try:
        events, errors, notices = _read_events(file, cases, world_id)
    except ExdeskError as exc:
        raise fail(str(exc)) from exc
    if errors:
        print_problems(errors, notices)
        raise fail(
            f"{file}: {len(errors)} bad line(s); nothing was published: fix them and run again", 1
        )
    if world is not None:
        try:
            loaded = read_json(world, World)
            desk = Exdesk(settings)
        except ExdeskError as exc:
            raise fail(str(exc)) from exc
        try:
            usecases.load_world(desk, world_id, loaded)
        finally:
            desk.close()
    outgoing = [
        Outgoing(world_id=e.world_id, order_id=e.order.order_id, body=event_body(e)) for e in events
    ]
    with _stream(stream, settings) as target:
        try:
            published = target.publish(outgoing)
        except ExdeskError as exc:
            raise fail(
                f"{exc}; some events may be on the stream: run the same command again, which "
                "adds only what is missing (within two minutes; later, workers replay orders "
                "that did not change)",
                code=3,
            ) from exc
    again = sum(1 for p in published if p.duplicate)
    print_problems([], notices)
    out.print(
        f"{len(published) - again} events published to {safe(target.name)}"
        + (f", {again} already there" if again else "")
    )


def worker_command(
    stream: StreamUrl = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    policy: PolicyFile = None,
    batch: Annotated[
        int | None,
        typer.Option("--batch", help="Events taken at once (default: $EXDESK_STREAM_BATCH, 32)."),
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", help="Exit once no event came for this many seconds."),
    ] = None,
) -> None:
    """Handle order events from the stream, beside any number of other workers.

    Stops cleanly on SIGTERM or Ctrl-C: the order in hand is finished, the rest of the batch
    handed back to the stream."""
    settings = settings_for(data_dir, policy, database_url)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        app = Exdesk(settings)
    except ExdeskError as exc:
        raise fail(str(exc)) from exc
    try:
        app.host_case_memory()
        try:
            app.warm_up()
        except ExdeskError as exc:
            raise fail(str(exc)) from exc
        with _stream(stream, settings) as source:
            worker = Worker(
                app,
                source,
                batch=batch or settings.stream_batch,
                max_attempts=settings.stream_max_attempts,
                say=lambda line: err.print(f"exdesk worker: {line}"),
            )
            err.print(
                f"exdesk worker: taking events from {safe(source.name)} "
                f"(consumer {safe(settings.stream_consumer)})"
            )
            tally = worker.run(stop, until_idle_s=until_idle)
    finally:
        app.close()
    p50 = (
        f", publish to ack p50 {statistics.median(tally.latencies_ms):.0f} ms"
        if tally.latencies_ms
        else ""
    )
    out.print(
        f"{tally.handled} orders handled ({tally.exceptions} with exceptions), "
        f"{tally.superseded} superseded, {tally.dead} dead-lettered, "
        f"{tally.retried} handed back, {tally.resumed} approved proposals resumed{p50}"
        + ("; stopped" if stop.is_set() else "")
    )


def dead_letters_command(
    stream: StreamUrl = None,
    data_dir: DataDir = None,
    limit: Annotated[int, typer.Option("--limit", help="How many to show.")] = 50,
) -> None:
    """List the events the workers gave up on, with the reason."""
    settings = settings_for(data_dir)
    with _stream(stream, settings) as source:
        try:
            dead = source.dead_letters(limit)
        except ExdeskError as exc:
            raise fail(str(exc), code=3) from exc
    for seq, reason, data in dead:
        shown = data[:120].decode("utf-8", "replace")
        out.print(f"{seq}\t{safe(reason)}\t{safe(shown)}")
    out.print(f"{len(dead)} dead letter(s)")
