"""`exdesk eval`, joined to the `exdesk` command through the ``exdesk.commands`` entry point
(``evals`` may import ``service``; ``service`` never imports ``evals``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evals.cases import EvalCase
from evals.harness import run_eval
from service.cli_common import (
    TABLE_LIMIT,
    DataDir,
    PolicyFile,
    opened,
    out,
    print_problems,
    progress,
    write_json,
)
from service.cli_knowledge import import_knowledge
from service.inputs import read_jsonl, unique_by
from service.render import cases_table, print_summary


def eval_command(
    cases: Annotated[Path, typer.Argument(help="Eval cases, JSON Lines (contract §6).")],
    report: Annotated[Path, typer.Option("--out", help="Where to write the report (JSON).")],
    data_dir: DataDir = None,
    policy: PolicyFile = None,
    knowledge: Annotated[
        Path | None,
        typer.Option("--knowledge", help="Past cases (contract §5) to import first."),
    ] = None,
    table: Annotated[
        bool | None, typer.Option("--table/--no-table", help="Print a row per order.")
    ] = None,
) -> None:
    """Run every case through the agent and write the report.

    The run starts from an empty case memory (plus --knowledge), so results never depend
    on what the data dir remembers.
    """
    with opened(data_dir, policy, fresh_memory=True) as desk:
        errors = import_knowledge(desk, knowledge) if knowledge else []
        parsed = list(read_jsonl(cases, EvalCase))
        good, case_errors = unique_by(parsed, lambda c: c.id, cases, "id", what="case")
        errors += case_errors
        with progress(len(good)) as bar:
            task = bar.add_task("cases", total=len(good))
            result = run_eval(
                desk,
                [p.value for p in good if p.value is not None],
                errors=errors,
                on_case=lambda _: bar.advance(task),
            )
        write_json(report, result)
        desk.checkpoint()
        if table if table is not None else len(good) <= TABLE_LIMIT:
            out.print(cases_table(result["cases"], f"exdesk eval · {cases.name}"))
        print_summary(out, result["summary"])
        out.print(f"report: {report}")
        print_problems([], [p.notice for p in parsed if p.notice])
        if errors or result["summary"]["case_errors"]:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
