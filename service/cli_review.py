"""`exdesk review`: the review queue, as approvers use it from a terminal."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.runner import RunResult
from domain.models import ProposalStatus
from service import explain, review, usecases
from service.cli_common import DataDir, PolicyFile, err, fail, opened, out
from service.people import authenticate
from service.render import proposal_view, safe

review_app = typer.Typer(
    no_args_is_help=True, help="The review queue: L2/L3 plans waiting for people."
)


def _by(by: str) -> str:
    return (
        f"written by a model, {safe(by[6:])}; it decides nothing"
        if by.startswith("model:")
        else "template"
    )


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
            said = f"needs {needs}" if needs else p.detail if not p.status.is_open else None
            out.print(
                f"{p.proposal_id}  {p.tier.value}  {p.strategy.value:<30} "
                f"{safe(p.order_id):<16} {p.status.value}"
                + (f"  [dim]{safe(said)}[/]" if said else "")
            )
        out.print(f"{len(items)} proposal(s)")


@review_app.command("show")
def review_show(
    proposal_id: str,
    data_dir: DataDir = None,
    policy: PolicyFile = None,
    explain_it: Annotated[
        bool,
        typer.Option(
            "--explain", help="The plan in plain words (a model's, marked, if one is set)."
        ),
    ] = False,
    lang: Annotated[str, typer.Option("--lang", help="Your language: en or zh.")] = "en",
) -> None:
    """Everything an approver needs to see: the plan, each action, the evidence, the votes."""
    with opened(data_dir, policy) as desk:
        proposal = desk.review.get(proposal_id)
        lang = explain.language(lang)
        said = explain.summary(desk, proposal, lang)
        if said is not None:
            out.print(
                f"[bold]summary and a next step[/] ({_by(said.by)}):\n{safe(said.text, True)}"
            )
        if explain_it:
            said = explain.explanation(desk, proposal, lang)
            out.print(f"[bold]in plain words[/] ({_by(said.by)}):\n{safe(said.text, True)}")
        votes = desk.review.votes(proposal_id)
        # what to approve with: only while the proposal takes votes
        pending = proposal.status is ProposalStatus.PENDING
        digest = usecases.current_digest(desk, proposal) if pending else None
        found = review.cited(desk, proposal.plan.similar_cases)
        if found["cited_cases_problem"]:
            err.print(f"past cases not shown: {safe(found['cited_cases_problem'])}")
        out.print(
            proposal_view(
                proposal,
                votes,
                usecases.missing(desk, proposal),
                digest,
                found["cited_cases"],
            )
        )


Token = Annotated[
    str | None,
    typer.Option(
        "--token", help="Your API token (default: $EXDESK_TOKEN); needed once the desk has users."
    ),
]


def _vote(
    proposal_id: str,
    by: str | None,
    role: str | None,
    decision: str,
    reason: str | None,
    digest: str | None,
    data_dir: Path | None,
    policy: Path | None,
    token: str | None,
) -> None:
    with opened(data_dir, policy) as desk:
        token = token or desk.settings.token
        outcome = usecases.vote(
            desk,
            proposal_id,
            by=by,
            role=role,
            decision="approve" if decision == "approve" else "reject",
            reason=reason,
            digest=digest,
            user=authenticate(desk, token) if token else None,
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
    by: Annotated[
        str | None, typer.Option("--by", help="Your name (with a token: optional, must match).")
    ] = None,
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
        typer.Option("--digest", help="The digest you reviewed (from `review show`)."),
    ] = None,
    token: Token = None,
    data_dir: DataDir = None,
    policy: PolicyFile = None,
) -> None:
    """Approve a proposal. When it has the approvals its tier needs, it runs."""
    _vote(proposal_id, by, role, "approve", reason, digest, data_dir, policy, token)


@review_app.command("reject")
def review_reject(
    proposal_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the plan must not run.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Your name (with a token: optional, must match).")
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            "--role", help="approver (default) or supervisor; [people] in the policy rule."
        ),
    ] = None,
    token: Token = None,
    data_dir: DataDir = None,
    policy: PolicyFile = None,
) -> None:
    """Reject a proposal: it will not run, and the order stays held for a person."""
    _vote(proposal_id, by, role, "reject", reason, None, data_dir, policy, token)


@review_app.command("resume")
def review_resume(proposal_id: str, data_dir: DataDir = None, policy: PolicyFile = None) -> None:
    """Finish a proposal whose run was interrupted (a crash after its last approval)."""
    with opened(data_dir, policy) as desk:
        proposal = desk.review.get(proposal_id)
        run = usecases.resume(desk, proposal)
        desk.checkpoint()
        report_run(proposal_id, proposal.kind, run)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(
            f"--now {text!r} is not an RFC 3339 time (e.g. 2026-12-20T00:00:00+08:00)"
        ) from exc
    if moment.tzinfo is None:
        raise fail(f"--now {text!r} has no offset; add one (e.g. +08:00 or Z)")
    return moment


@review_app.command("sweep")
def review_sweep(
    data_dir: DataDir = None,
    policy: PolicyFile = None,
    now: Annotated[
        str | None,
        typer.Option(help="sweep as of this moment (RFC 3339 with an offset), for drills"),
    ] = None,
) -> None:
    """Escalate proposals past their deadline, expire those past their expiry, and release
    holds whose date has come (the service does this every minute by itself)."""
    at = _moment(now)
    with opened(data_dir, policy) as desk:
        done = review.sweep(desk, at)
        if done:
            desk.checkpoint()
        for subject, what in done:
            out.print(f"{safe(subject)}: {safe(what)}")
        out.print(f"{len(done)} proposal(s) escalated or expired, or hold(s) released")
