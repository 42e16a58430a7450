"""`exdesk knowledge`: the case memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli_common import DataDir, opened, out, print_problems
from service.inputs import read_past_cases
from service.render import safe
from service.wiring import Exdesk

knowledge_app = typer.Typer(no_args_is_help=True, help="The case memory: past cases and outcomes.")


@knowledge_app.command("import")
def knowledge_import(
    cases: Annotated[Path, typer.Argument(help="Past cases, JSON Lines (contract §5).")],
    data_dir: DataDir = None,
) -> None:
    """Add past cases (and how they ended) to the case memory."""
    with opened(data_dir) as desk:
        if import_knowledge(desk, cases):
            raise typer.Exit(1)


def import_knowledge(desk: Exdesk, path: Path) -> list[str]:
    """Import the past cases of ``path``; print and return the errors of its bad lines."""
    cases, errors = read_past_cases(path)
    count = desk.case_memory.import_cases(cases)
    out.print(f"{count} past cases imported from {safe(path)}")
    print_problems(errors, [])
    return errors
