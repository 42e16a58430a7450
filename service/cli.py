"""The `exdesk` command.

Commands of other packages join through the ``exdesk.commands`` entry point group (``exdesk
eval`` comes from ``evals``), so this module never imports them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agent.runner import RunResult
from audit.keys import load_public_key, public_key_path, public_key_pem
from audit.log import VerifyResult, verify_export
from domain.errors import ExdeskError
from domain.models import MAX_ID, Order, ProposalStatus, World
from service import usecases
from service.inputs import read_json, read_jsonl, read_past_cases, unique_by
from service.render import cases_table, proposal_view, safe
from service.reports import case_report, error_report
from service.settings import Settings
from service.wiring import Exdesk, memory_for

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="exdesk: an exception desk for orders.",
)
audit_app = typer.Typer(no_args_is_help=True, help="Verify and export the audit log.")
review_app = typer.Typer(
    no_args_is_help=True, help="The review queue: L2/L3 plans waiting for people."
)
knowledge_app = typer.Typer(no_args_is_help=True, help="The case memory: past cases and outcomes.")
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")
app.add_typer(knowledge_app, name="knowledge")

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
TABLE_LIMIT = 40


def settings_for(data_dir: Path | None, policy: Path | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if policy is not None:
        overrides["policy_file"] = policy
    return Settings(**overrides)


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {safe(message)}")
    return typer.Exit(code)


@contextmanager
def opened(
    data_dir: Path | None, policy: Path | None = None, *, fresh_memory: bool = False
) -> Iterator[Exdesk]:
    """exdesk for one command; ``fresh_memory``: an empty case memory, not the data dir's."""
    try:
        settings = settings_for(data_dir, policy)
        memory = memory_for(settings, persistent=False) if fresh_memory else None
        desk = Exdesk(settings, memory=memory)
    except ExdeskError as exc:
        raise fail(str(exc)) from exc
    try:
        yield desk
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
    if not 0 < len(world_id) <= MAX_ID:
        raise fail(f"--world-id must be 1 to {MAX_ID} characters")
    with opened(data_dir, policy) as desk:
        if world is not None:
            usecases.load_world(desk, world_id, read_json(world, World))
        parsed = list(read_jsonl(orders, Order))
        good, errors = unique_by(parsed, lambda o: o.order_id, orders, "order_id", what="order")
        notices = [p.notice for p in parsed if p.notice]
        reports: list[dict[str, Any]] = []
        with progress(len(good)) as bar:
            task = bar.add_task("orders", total=len(good))
            for item in good:
                assert item.value is not None
                label = f"line {item.line}"
                try:
                    result = usecases.handle(desk, world_id, item.value)
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
            out.print(cases_table(reports[:TABLE_LIMIT], f"exdesk run · {orders.name}"))
        errors += [f"{orders} {r['id']}: {r['error']}" for r in reports if "error" in r]
        handled = sum(1 for r in reports if "error" not in r)
        out.print(f"{handled} orders handled, {len(errors)} lines skipped")
        print_problems(errors, notices)
        if errors:
            raise typer.Exit(1)


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


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None) -> None:
    """Walk the hash chain; say `ok` or the first entry that does not verify."""
    with opened(data_dir) as desk:
        report_verify(desk.audit.verify(desk.public_key()))


def report_verify(result: VerifyResult) -> None:
    if not result.ok:
        out.print(f"[red]FAILED[/] at entry {result.first_bad_seq}: {safe(result.problem)}")
        raise typer.Exit(1)
    out.print(f"ok: {result.count} entries, head {result.head}")
    signed = "signature checked" if result.signatures_checked else "signature not checked (no key)"
    out.print(f"signed checkpoints cover entries 1-{result.checkpointed_seq} ({signed})")


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = None) -> None:
    """Sign the log's current length and head (Ed25519), so truncation and rewrites show."""
    with opened(data_dir) as desk:
        cp = desk.checkpoint()
        out.print(f"checkpoint at entry {cp.seq}, head {cp.head}")
        out.print(f"public key for auditors: {safe(public_key_path(desk.signing_key_path))}")


@audit_app.command("pubkey")
def audit_pubkey(data_dir: DataDir = None) -> None:
    """Print the public key that verifies this installation's checkpoints (PEM), for
    `exdesk audit verify-export --public-key`."""
    with opened(data_dir) as desk:
        key = desk.public_key()
        if key is None:
            raise fail(
                f"no signing key yet at {desk.signing_key_path}; it is made by the first "
                "`exdesk run`, `exdesk eval` or `exdesk audit checkpoint`"
            )
        sys.stdout.write(public_key_pem(key).decode("ascii"))


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
    except (OSError, UnicodeDecodeError, ExdeskError) as exc:
        raise fail(str(exc)) from exc
    report_verify(result)


@audit_app.command("export")
def audit_export(
    path: Annotated[Path, typer.Option("--out", help="Where to write the log (JSON Lines).")],
    data_dir: DataDir = None,
) -> None:
    """Export every entry (and checkpoint) as JSON Lines, for auditors."""
    with opened(data_dir) as desk, path.open("w", encoding="utf-8") as fp:
        count = desk.audit.export(fp)
    out.print(f"{count} entries written to {safe(path)}")


@review_app.command("list")
def review_list(
    status: Annotated[
        str,
        typer.Option(
            help="pending, approved, executed, rejected, void, failed, superseded or all."
        ),
    ] = "pending",
    data_dir: DataDir = None,
    policy: PolicyFile = None,
) -> None:
    """Proposals in the review queue."""
    try:
        wanted = None if status == "all" else ProposalStatus(status)
    except ValueError as exc:
        known = ", ".join(s.value for s in ProposalStatus)
        raise fail(f"--status {status!r} is not one of: {known}, all") from exc
    with opened(data_dir, policy) as desk:
        items = desk.review.find(status=wanted)
        for p in items:
            needs = usecases.missing(desk, p)
            out.print(
                f"{p.proposal_id}  {p.tier.value}  {p.strategy.value:<30} "
                f"{safe(p.order_id):<16} {p.status.value}"
                + (f"  [dim]needs {safe(needs)}[/]" if needs else "")
            )
        out.print(f"{len(items)} proposal(s)")


@review_app.command("show")
def review_show(proposal_id: str, data_dir: DataDir = None, policy: PolicyFile = None) -> None:
    """Everything an approver needs to see: the plan, each action, the evidence, the votes."""
    with opened(data_dir, policy) as desk:
        proposal = desk.review.get(proposal_id)
        votes = desk.review.votes(proposal_id)
        out.print(proposal_view(proposal, votes, usecases.missing(desk, proposal)))


def _vote(
    proposal_id: str,
    by: str,
    role: str | None,
    decision: str,
    reason: str | None,
    digest: str | None,
    data_dir: Path | None,
    policy: Path | None,
) -> None:
    with opened(data_dir, policy) as desk:
        outcome = usecases.vote(
            desk,
            proposal_id,
            by=by,
            role=role,
            decision="approve" if decision == "approve" else "reject",
            reason=reason,
            digest=digest,
        )
        desk.checkpoint()
        if outcome.run is None:
            out.print(f"{proposal_id}: vote recorded; still needs {safe(outcome.missing)}")
            return
        report_run(proposal_id, outcome.proposal.kind, outcome.run)


def report_run(proposal_id: str, kind: Any, run: RunResult) -> None:
    decision = run.decisions.get(kind)
    status = decision.status.value if decision else "unknown"
    detail = (decision.detail or "") if decision else ""
    out.print(f"{proposal_id}: {status} {safe(detail)}".rstrip())
    out.print(f"order {safe(run.order_id)} is now {run.order_after.status}")
    if decision is not None and decision.status.value in ("failed", "rejected"):
        raise typer.Exit(1)


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
    policy: PolicyFile = None,
) -> None:
    """Approve a proposal. When it has the approvals its tier needs, it runs."""
    _vote(proposal_id, by, role, "approve", reason, digest, data_dir, policy)


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
    policy: PolicyFile = None,
) -> None:
    """Reject a proposal: it will not run, and the order stays held for a person."""
    _vote(proposal_id, by, role, "reject", reason, None, data_dir, policy)


@review_app.command("resume")
def review_resume(proposal_id: str, data_dir: DataDir = None, policy: PolicyFile = None) -> None:
    """Finish a proposal whose run was interrupted (a crash after its last approval)."""
    with opened(data_dir, policy) as desk:
        proposal = desk.review.get(proposal_id)
        run = usecases.resume(desk, proposal)
        desk.checkpoint()
        report_run(proposal_id, proposal.kind, run)


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
