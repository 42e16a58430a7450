"""`exdesk users` (who works at the desk) and `exdesk serve` (the review desk over HTTP)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from domain.models import User
from service.cli_common import (
    DatabaseUrl,
    DataDir,
    PolicyFile,
    err,
    fail,
    opened,
    out,
    settings_for,
)
from service.cli_review import Token
from service.people import add_user, authenticate, revoke_user, set_role
from service.render import safe
from service.wiring import Exdesk

users_app = typer.Typer(
    no_args_is_help=True,
    help="People who work at the desk, and tokens. Adding, changing and revoking people "
    "needs a supervisor's token; only the first supervisor is added without one.",
)
Role = Annotated[str, typer.Option("--role", help="operator, approver, supervisor or auditor.")]


def _supervisor(desk: Exdesk, token: str | None) -> User | None:
    """Who is asking, by their token (--token or $EXDESK_TOKEN); None without one."""
    token = token or desk.settings.token
    return authenticate(desk, token) if token else None


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Their name, as others know them.")],
    role: Role,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Add a person with one role, with a supervisor's token (the desk's first supervisor is
    added without one). Prints their API token once, alone on the last line: give it to
    them; only a hash of it is kept."""
    with opened(data_dir) as desk:
        user, secret = add_user(desk, name, role, by=_supervisor(desk, token))
        if user.added_by is None:
            out.print(
                f"{safe(user.name)} added as the desk's first supervisor, without a token "
                "(recorded in the audit log as the bootstrap). From now on adding, changing "
                "or revoking people needs a supervisor's token."
            )
        else:
            out.print(f"{safe(user.name)} added as {user.role} by {safe(user.added_by)}.")
        out.print("Their token (shown only now):")
    sys.stdout.write(secret + "\n")


@users_app.command("list")
def users_list(data_dir: DataDir = None) -> None:
    """Everyone who was added, who gave them their role, and whether their token works."""
    with opened(data_dir) as desk:
        people = desk.users.list()
        for user in people:
            state = f"revoked {user.revoked_at:%Y-%m-%d}" if user.revoked_at else "active"
            when = user.added_at or user.created_at
            by = f"by {user.added_by}" if user.added_by else "without a token"
            added = f"added {when:%Y-%m-%d %H:%M} {by}"
            out.print(f"{safe(user.name):<30} {user.role:<11} {state:<19} {safe(added)}")
        out.print(f"{len(people)} user(s)")


@users_app.command("role")
def users_role(
    name: Annotated[str, typer.Argument(help="Whose role changes.")],
    role: Role,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Give a person another role (with a supervisor's token); their token stays."""
    with opened(data_dir) as desk:
        user = set_role(desk, name, role, by=_supervisor(desk, token))
        out.print(f"{safe(user.name)} is now {user.role} (given by {safe(user.added_by)})")


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="Whose token stops working.")],
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke a person's token at once (with a supervisor's token); `users add` gives them a
    new one."""
    with opened(data_dir) as desk:
        user = revoke_user(desk, name, by=_supervisor(desk, token))
        out.print(f"{safe(user.name)}'s token is revoked")


def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    policy: PolicyFile = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Start the review desk: the API and the pages, on the same store as the CLI."""
    import uvicorn

    from service.http import create_app
    from service.relay import sinks_for
    from tools.event_sinks import SinkError

    settings = settings_for(data_dir, policy, database_url)
    if settings.events_sinks:  # a sink misconfigured is said now, not in a log later
        try:
            for sink in sinks_for(settings):
                sink.close()
        except SinkError as exc:
            raise fail(str(exc)) from exc
    app = create_app(settings)
    err.print(
        f"exdesk review desk on http://{host}:{port}/ui (API docs at /docs); "
        f"data dir {safe(Path(settings.data_dir).resolve())}"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
