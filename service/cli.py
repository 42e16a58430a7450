"""The `exdesk` command."""

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

from audit.keys import load_public_key, public_key_path
from audit.log import VerifyResult, verify_export
from domain.approvals import resolve_voter
from domain.errors import ExdeskError
from domain.models import Order, World
from evals.cases import EvalCase
from evals.harness import case_report, error_report, run_eval
from knowledge.cases import read_cases
from service.inputs import read_json, read_jsonl
from service.render import cases_table, print_summary, proposal_view
from service.settings import Settings
from service.wiring import Exdesk, memory_for

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="exdesk: an exception desk for orders."
)
audit_app = typer.Typer(no_args_is_help=True, help="Verify and export the audit log.")
review_app = typer.Typer(
    no_args_is_help=True, help="The review queue: L2/L3 plans waiting for people."
)
app.add_typer(audit_app, name="audit")
knowledge_app = typer.Typer(no_args_is_help=True, help="The case memory: past cases and outcomes.")
app.add_typer(review_app, name="review")
app.add_typer(knowledge_app, name="knowledge")

# Wide enough for the tables when the output goes to a file or a CI log.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

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
TABLE_LIMIT = 40


def _settings(data_dir: Path | None, policy: Path | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if policy is not None:
        overrides["policy_file"] = policy
    return Settings(**overrides)


@contextmanager
def _exdesk(
    data_dir: Path | None, policy: Path | None = None, *, fresh_memory: bool = False
) -> Iterator[Exdesk]:
    """exdesk for one command; ``fresh_memory``: an empty case memory, not the data dir's."""
    try:
        settings = _settings(data_dir, policy)
        memory = memory_for(settings, persistent=False) if fresh_memory else None
        desk = Exdesk(settings, memory=memory)
    except ExdeskError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    try:
        yield desk
    except ExdeskError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    finally:
        desk.close()


def _progress(total: int) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=total < 20 or not err.is_terminal,
    )


def _write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@app.command("eval")
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
    with _exdesk(data_dir, policy, fresh_memory=True) as desk:
        errors = _import_knowledge(desk, knowledge) if knowledge else []
        good, case_errors = _unique_cases(cases)
        errors += case_errors
        with _progress(len(good)) as bar:
            task = bar.add_task("cases", total=len(good))
            result = run_eval(desk, good, errors=errors, on_case=lambda _: bar.advance(task))
        _write_json(report, result)
        desk.checkpoint()
        if table if table is not None else len(good) <= TABLE_LIMIT:
            out.print(cases_table(result["cases"], f"exdesk eval · {cases.name}"))
        print_summary(out, result["summary"])
        out.print(f"report: {report}")
        if errors or result["summary"]["case_errors"]:
            raise typer.Exit(1)


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
    """Handle real order files: detect, plan, act, queue for approval."""
    with _exdesk(data_dir, policy) as desk:
        if world is not None:
            desk.store.put_world(world_id, read_json(world, World))
        parsed = list(read_jsonl(orders, Order))
        good = [p for p in parsed if p.value is not None]
        reports: list[dict[str, Any]] = []
        with _progress(len(good)) as bar:
            task = bar.add_task("orders", total=len(good))
            for item in good:
                assert item.value is not None
                label = f"line {item.line}"
                desk.store.upsert_order(world_id, item.value)
                try:
                    result = desk.runner.handle(desk.desk(world_id), item.value.order_id)
                    reports.append(case_report(label, result))
                except ExdeskError as exc:
                    reports.append(error_report(label, item.value, exc))
                bar.advance(task)
        desk.checkpoint()
        if results is not None:
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reports), encoding="utf-8"
            )
        if reports:
            out.print(
                cases_table(
                    reports[:TABLE_LIMIT] if len(reports) > TABLE_LIMIT else reports,
                    f"exdesk run · {orders.name}",
                )
            )
        errors = [p.error for p in parsed if p.error is not None]
        errors += [f"{orders} {r['id']}: {r['error']}" for r in reports if "error" in r]
        handled = sum(1 for r in reports if "error" not in r)
        out.print(f"{handled} orders handled, {len(errors)} lines skipped")
        for error in errors:
            err.print(f"[red]skipped[/] {error}")
        if errors:
            raise typer.Exit(1)


def _unique_cases(path: Path) -> tuple[list[EvalCase], list[str]]:
    """The cases of a file, each id once; errors for bad lines and repeated ids."""
    good: list[EvalCase] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for item in read_jsonl(path, EvalCase):
        if item.value is None:
            errors.append(str(item.error))
        elif item.value.id in first_line:
            errors.append(
                f"{path} line {item.line}: id {item.value.id!r} is already used on line "
                f"{first_line[item.value.id]}; give each case its own id"
            )
        else:
            first_line[item.value.id] = item.line
            good.append(item.value)
    return good, errors


def _import_knowledge(desk: Exdesk, path: Path) -> list[str]:
    cases, errors = read_cases(path)
    count = desk.case_memory.import_cases(cases)
    out.print(f"{count} past cases imported from {path}")
    return errors


@knowledge_app.command("import")
def knowledge_import(
    cases: Annotated[Path, typer.Argument(help="Past cases, JSON Lines (contract §5).")],
    data_dir: DataDir = None,
) -> None:
    """Add past cases (and how they ended) to the case memory."""
    with _exdesk(data_dir) as desk:
        errors = _import_knowledge(desk, cases)
        for error in errors:
            err.print(f"[red]skipped[/] {error}")
        if errors:
            raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None) -> None:
    """Walk the hash chain; say `ok` or the first entry that does not verify."""
    with _exdesk(data_dir) as desk:
        _report_verify(desk.audit.verify(desk.public_key()))


def _report_verify(result: VerifyResult) -> None:
    if not result.ok:
        out.print(f"[red]FAILED[/] at entry {result.first_bad_seq}: {result.problem}")
        raise typer.Exit(1)
    out.print(f"ok: {result.count} entries, head {result.head}")
    signed = "signature checked" if result.signatures_checked else "signature not checked (no key)"
    out.print(f"signed checkpoints cover entries 1-{result.checkpointed_seq} ({signed})")


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = None) -> None:
    """Sign the log's current length and head (Ed25519), so truncation and rewrites show."""
    with _exdesk(data_dir) as desk:
        cp = desk.checkpoint()
        out.print(f"checkpoint at entry {cp.seq}, head {cp.head}")
        out.print(f"public key for auditors: {public_key_path(desk.keys_dir)}")


@audit_app.command("verify-export")
def audit_verify_export(
    export: Annotated[Path, typer.Argument(help="A file written by `exdesk audit export`.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The desk's public key (PEM).")],
) -> None:
    """Verify an export with nothing but the file and the public key: no database needed."""
    try:
        key = load_public_key(public_key)
        with export.open(encoding="utf-8") as fp:
            result = verify_export(fp, key)
    except (OSError, ExdeskError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    _report_verify(result)


@audit_app.command("export")
def audit_export(
    path: Annotated[Path, typer.Option("--out", help="Where to write the log (JSON Lines).")],
    data_dir: DataDir = None,
) -> None:
    """Export every entry (and checkpoint) as JSON Lines, for auditors."""
    with _exdesk(data_dir) as desk, path.open("w", encoding="utf-8") as fp:
        count = desk.audit.export(fp)
    out.print(f"{count} entries written to {path}")


@review_app.command("list")
def review_list(
    status: Annotated[
        str, typer.Option(help="pending, approved, executed, rejected, void, failed or all.")
    ] = "pending",
    data_dir: DataDir = None,
) -> None:
    """Proposals in the review queue."""
    with _exdesk(data_dir) as desk:
        items = desk.review.find(status=None if status == "all" else status)
        for p in items:
            missing = desk.review.missing(p, desk.policy) if p.status == "pending" else None
            out.print(
                f"{p.proposal_id}  {p.tier.value}  {p.strategy:<30} {p.order_id:<16} {p.status}"
                + (f"  [dim]needs {missing}[/]" if missing else "")
            )
        out.print(f"{len(items)} proposal(s)")


@review_app.command("show")
def review_show(proposal_id: str, data_dir: DataDir = None) -> None:
    """Everything an approver needs to see: the plan, each action, the evidence, the votes."""
    with _exdesk(data_dir) as desk:
        proposal = desk.review.get(proposal_id)
        out.print(
            proposal_view(desk.review.summary(proposal), desk.review.missing(proposal, desk.policy))
        )


def _vote(
    proposal_id: str,
    by: str,
    role: str | None,
    decision: str,
    reason: str | None,
    digest: str | None,
    data_dir: Path | None,
) -> None:
    with _exdesk(data_dir) as desk:
        by, role = resolve_voter(by, role, desk.policy)
        proposal = desk.review.vote(
            proposal_id,
            by=by,
            role=role,
            decision=decision,
            reason=reason,
            plan_digest=digest,
            policy=desk.policy,
        )
        desk.audit.append(
            f"person:{by}",
            "proposal.approved" if decision == "approve" else "proposal.rejected",
            {
                "proposal_id": proposal_id,
                "role": role,
                "reason": reason,
                "plan_digest": proposal.plan_digest,
            },
        )
        missing = desk.review.missing(proposal, desk.policy)
        if proposal.status == "pending":
            out.print(f"{proposal_id}: vote recorded; still needs {missing}")
            return
        result = desk.runner.resume(desk.desk(proposal.world_id), proposal.thread_id)
        decision_now = result.decisions.get(proposal.kind, {})
        detail = decision_now.get("detail") or ""
        out.print(f"{proposal_id}: {decision_now.get('status')} {detail}".rstrip())
        out.print(f"order {result.order_id} is now {result.order_after.status}")


@review_app.command("approve")
def review_approve(
    proposal_id: str,
    by: Annotated[str, typer.Option("--by", help="Your name.")],
    role: Annotated[
        str | None,
        typer.Option(
            "--role", help="approver (default) or supervisor; [people] in the policy rule."
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required of the supervisor for L3).")
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option("--digest", help="The plan digest you reviewed (from `review show`)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Approve a proposal. When it has the approvals its tier needs, it runs."""
    _vote(proposal_id, by, role, "approve", reason, digest, data_dir)


@review_app.command("reject")
def review_reject(
    proposal_id: str,
    by: Annotated[str, typer.Option("--by", help="Your name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the plan must not run.")],
    role: Annotated[
        str | None,
        typer.Option(
            "--role", help="approver (default) or supervisor; [people] in the policy rule."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Reject a proposal: it will not run, and the order stays held for a person."""
    _vote(proposal_id, by, role, "reject", reason, None, data_dir)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
