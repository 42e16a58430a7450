"""The `exdesk` command.

Each group of commands has a module of its own (``cli_audit``, ``cli_knowledge``,
``cli_review``). Commands of other packages join through the ``exdesk.commands`` entry point
group (``exdesk eval`` comes from ``evals``), so this module never imports them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer

from domain.errors import ExdeskError
from domain.models import MAX_ID, Order, World
from service import usecases
from service.batch import Batches, batched
from service.cli_audit import audit_app
from service.cli_common import (
    TABLE_LIMIT,
    DataDir,
    PolicyFile,
    err,
    fail,
    opened,
    out,
    print_problems,
    progress,
)
from service.cli_events import events_app
from service.cli_knowledge import knowledge_app
from service.cli_policy import policy_app
from service.cli_reply import reply_command
from service.cli_review import review_app
from service.cli_stream import dead_letters_command, publish_command, worker_command
from service.cli_users import serve, users_app
from service.inputs import Parsed, count_lines, first_of_each, read_json, read_jsonl
from service.render import cases_table, safe
from service.reports import ReportFile, case_report, error_report

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="exdesk: an exception desk for orders.",
)
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(users_app, name="users")
app.add_typer(events_app, name="events")
app.add_typer(policy_app, name="policy")
app.command("serve")(serve)
app.command("reply")(reply_command)
app.command("publish")(publish_command)
app.command("worker")(worker_command)
app.command("dead-letters")(dead_letters_command)


@app.command("run")
def run_command(
    orders: Annotated[Path, typer.Argument(help="Orders, JSON Lines (contract §1).")],
    world: Annotated[
        Path | None,
        typer.Option("--world", help="The world (contract §2), JSON. Loaded into the store."),
    ] = None,
    world_id: Annotated[
        str, typer.Option("--world-id", help="Name of the world in the store.")
    ] = "default",
    results: Annotated[
        Path | None, typer.Option("--out", help="Write each order's result here (JSON Lines).")
    ] = None,
    data_dir: DataDir = None,
    policy: PolicyFile = None,
) -> None:
    """Handle real order files: detect, plan, act, queue for approval.

    The file is read as it goes, a batch at a time: clean orders are decided together, the
    others go through the agent one by one (``service.batch``)."""
    if not 0 < len(world_id) <= MAX_ID:
        raise fail(f"--world-id must be 1 to {MAX_ID} characters")
    with opened(data_dir, policy) as desk:
        if world is not None:
            usecases.load_world(desk, world_id, read_json(world, World))
        errors: list[str] = []
        notices: list[str] = []

        def noted(items: Iterator[Parsed[Order]]) -> Iterator[Parsed[Order]]:
            for item in items:
                if item.notice:
                    notices.append(item.notice)
                yield item

        lines = first_of_each(
            noted(read_jsonl(orders, Order)),
            lambda o: o.order_id,
            orders,
            "order_id",
            errors,
            what="order",
        )
        shown: list[dict[str, Any]] = []
        handled = 0
        batches = Batches(desk, world_id)
        with ReportFile(results) as report, progress(count_lines(orders)) as bar:
            task = bar.add_task("orders", total=count_lines(orders))
            for chunk in batched(lines):
                outcomes = batches.run([item.value for item in chunk])
                for item, outcome in zip(chunk, outcomes, strict=True):
                    label = f"line {item.line}"
                    if isinstance(outcome, ExdeskError):
                        line = error_report(label, item.value, outcome)
                        errors.append(f"{orders} {label}: {outcome}")
                    else:
                        line = case_report(label, outcome)
                        handled += 1
                    report.write(line)
                    if len(shown) < TABLE_LIMIT:
                        shown.append(line)
                bar.update(task, completed=chunk[-1].line)
        desk.checkpoint()
        if shown:
            out.print(cases_table(shown, f"exdesk run · {orders.name}"))
        out.print(f"{handled} orders handled, {len(errors)} lines skipped")
        print_problems(errors, notices)
        if errors:
            raise typer.Exit(1)


def _load_plugins() -> None:
    for entry in entry_points(group="exdesk.commands"):
        entry.load()(app)


_load_plugins()


def main() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or an outage, not bad input: say so, briefly
        if os.environ.get("EXDESK_DEBUG"):
            raise
        err.print(
            f"[red]exdesk failed:[/] {safe(type(exc).__name__)}: {safe(exc)}\n"
            "Nothing was left half-done: run the same command again to go on. "
            "Set EXDESK_DEBUG=1 to see the traceback, and report it if it persists."
        )
        sys.exit(3)
