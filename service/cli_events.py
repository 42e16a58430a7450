"""`exdesk events`: what the outbox holds, and the relay that publishes it (docs/events.md)."""

from __future__ import annotations

import signal
import sys
from typing import Annotated, Any

import typer

from service.cli_common import DatabaseUrl, DataDir, err, fail, opened, out
from service.events import EVENT_TYPES
from service.relay import Relay, sinks_for
from service.render import safe
from tools.event_sinks import SinkError

events_app = typer.Typer(
    no_args_is_help=True, help="Events out: the outbox, and the relay to NATS or a webhook."
)


@events_app.command("list")
def events_list(
    pending: Annotated[bool, typer.Option("--pending", help="Only events not sent yet.")] = False,
    type: Annotated[str | None, typer.Option("--type", help="Only events of this type.")] = None,
    order: Annotated[str | None, typer.Option("--order", help="Only this order's events.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="The CloudEvents themselves, one a line.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """The outbox, oldest first: each event's sequence, type, order and whether it was sent."""
    if type is not None and type not in EVENT_TYPES:
        raise fail(f"--type {type!r} is not an event type; use one of {', '.join(EVENT_TYPES)}")
    with opened(data_dir) as desk:
        rows = desk.outbox.list(pending=pending, type=type, subject=order, limit=limit)
        if as_json:
            sys.stdout.write("".join(r.body + "\n" for r in rows))
            return
        for r in rows:
            when = f"sent {r.sent_at:%Y-%m-%d %H:%M:%S}" if r.sent_at else r.state
            line = f"{r.seq:>8} {r.type:<19} {safe(r.subject):<24} {when}"
            if r.sent_at is None and r.attempts:
                line += f", {r.attempts} tries: {safe(r.last_error or '')}"
            out.print(line)
        counts = desk.outbox.counts()
        out.print(
            f"{len(rows)} shown; {counts['sent']} sent, {counts['pending']} pending, "
            f"{counts['failing']} failing"
        )


@events_app.command("relay")
def events_relay(
    once: Annotated[
        bool, typer.Option("--once", help="Publish what is due now, then stop.")
    ] = False,
    nats_url: Annotated[
        str | None, typer.Option("--nats", help="NATS URL (default $EXDESK_EVENTS_NATS_URL).")
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option("--webhook", help="Webhook URL (default $EXDESK_EVENTS_WEBHOOK_URL)."),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Publish the outbox to NATS JetStream and/or a webhook, at least once, until stopped
    (SIGTERM or Ctrl-C finish the event in hand). Several relays may run at once."""
    with opened(data_dir, database_url=database_url) as desk:
        settings = desk.settings
        try:
            relay = Relay.from_settings(
                desk.outbox,
                settings,
                sinks_for(settings, nats_url=nats_url, webhook_url=webhook_url),
            )
        except SinkError as exc:
            raise fail(str(exc)) from exc

        def stop(signum: int, _frame: Any) -> None:
            relay.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            totals = relay.drain() if once else relay.run(settings.events_poll_s)
        finally:
            relay.close()
        counts = desk.outbox.counts()
        err.print(
            f"{totals.sent} events sent; {counts['pending']} pending, {counts['failing']} failing"
        )
        for error in totals.errors or []:
            err.print(f"[red]not sent:[/] {safe(error)}")
        if once and totals.failed:
            raise typer.Exit(1)
