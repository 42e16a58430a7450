"""What every `exdesk` command shares: the consoles, the options, opening exdesk for one
command, progress bars, atomic JSON output, printing a file's problems."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from audit.errors import AuditError
from domain.errors import ExdeskError
from service.render import safe
from service.settings import Settings
from service.wiring import Exdesk, memory_for

# Wide enough for the tables when the output goes to a file or a CI log.
# Markup is exdesk's own; untrusted text goes through render.safe. No emoji codes, no guessing.
out = Console(
    soft_wrap=True, width=None if sys.stdout.isatty() else 160, emoji=False, highlight=False
)
err = Console(stderr=True, soft_wrap=True, emoji=False, highlight=False)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Store, audit log and checkpoints (default: $EXDESK_DATA_DIR or ./.exdesk).",
    ),
]
PolicyFile = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy file (default: $EXDESK_POLICY_FILE or the shipped one)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The shared database, e.g. postgresql+psycopg://... (default: "
        "$EXDESK_DATABASE_URL, else SQLite in the data dir).",
    ),
]
TABLE_LIMIT = 40


def settings_for(
    data_dir: Path | None, policy: Path | None = None, database_url: str | None = None
) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if policy is not None:
        overrides["policy_file"] = policy
    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings(**overrides)


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {safe(message)}")
    return typer.Exit(code)


@contextmanager
def opened(
    data_dir: Path | None,
    policy: Path | None = None,
    *,
    fresh_memory: bool = False,
    database_url: str | None = None,
) -> Iterator[Exdesk]:
    """exdesk for one command; ``fresh_memory``: an empty case memory, not the data dir's."""
    try:
        settings = settings_for(data_dir, policy, database_url)
        memory = memory_for(settings, persistent=False) if fresh_memory else None
        desk = Exdesk(settings, memory=memory)
    except ExdeskError as exc:
        raise fail(str(exc)) from exc
    try:
        yield desk
    except AuditError as exc:  # the log refused the write: nothing of it was kept
        raise fail(str(exc), 1) from exc
    except ExdeskError as exc:
        raise fail(str(exc)) from exc
    finally:
        desk.close()


def progress(total: int) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=total < 20 or not err.is_terminal,
    )


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def print_problems(errors: list[str], notices: list[str]) -> None:
    for notice in notices:
        err.print(f"[yellow]note[/] {safe(notice)}")
    for error in errors:
        err.print(f"[red]skipped[/] {safe(error)}")
