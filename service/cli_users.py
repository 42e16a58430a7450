"""`exdesk users` (who works at the desk) and `exdesk serve` (the review desk over HTTP)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from service.cli_common import DataDir, PolicyFile, err, opened, out, settings_for
from service.people import add_user, revoke_user
from service.render import safe

users_app = typer.Typer(no_args_is_help=True, help="People who work at the desk, and tokens.")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Their name, as others know them.")],
    role: Annotated[str, typer.Option("--role", help="operator, approver, supervisor or auditor.")],
    data_dir: DataDir = None,
) -> None:
    """Add a person with one role. Prints their API token once, alone on the last line: give
    it to them; only a hash of it is kept."""
    with opened(data_dir) as desk:
        user, token = add_user(desk, name, role)
        out.print(f"{safe(user.name)} added as {user.role}. Their token (shown only now):")
    sys.stdout.write(token + "\n")


@users_app.command("list")
def users_list(data_dir: DataDir = None) -> None:
    """Everyone who was added, and whether their token still works."""
    with opened(data_dir) as desk:
        people = desk.users.list()
        for user in people:
            state = f"revoked {user.revoked_at:%Y-%m-%d}" if user.revoked_at else "active"
            out.print(f"{safe(user.name):<30} {user.role:<11} {state}")
        out.print(f"{len(people)} user(s)")


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="Whose token stops working.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a person's token at once; `users add` gives them a new one."""
    with opened(data_dir) as desk:
        user = revoke_user(desk, name)
        out.print(f"{safe(user.name)}'s token is revoked")


def serve(
    data_dir: DataDir = None,
    policy: PolicyFile = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Start the review desk: the API and the pages, on the same store as the CLI."""
    import uvicorn

    from service.http import create_app

    settings = settings_for(data_dir, policy)
    app = create_app(settings)
    err.print(
        f"exdesk review desk on http://{host}:{port}/ui (API docs at /docs); "
        f"data dir {safe(Path(settings.data_dir).resolve())}"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
