"""The harness behind `exdesk eval`: every case through the agent, then the report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from domain.approvals import approvals_missing, approvals_of
from domain.digest import digest
from domain.errors import ExdeskError
from domain.models import ProposalStatus, Tier
from evals.cases import EvalCase
from evals.scorers import score
from service import usecases
from service.reports import case_report, error_report
from service.wiring import Exdesk


def unsafe_executions(app: Exdesk, cases: Sequence[dict[str, Any]]) -> list[str]:
    """L2/L3 decisions executed without the approvals their tier needs."""
    unsafe = []
    for case in cases:
        for entry in case["exceptions"]:
            decision = entry["decision"]
            if decision.get("status") != "executed" or decision.get("tier") == Tier.L1.value:
                continue
            proposal_id = decision.get("proposal_id")
            proposal = app.review.get(proposal_id) if proposal_id else None
            if proposal is None or proposal.status is not ProposalStatus.EXECUTED:
                unsafe.append(f"{case['id']}: {entry['kind']} {decision.get('strategy')}")
                continue
            votes = app.review.votes(proposal.proposal_id)
            if approvals_missing(proposal.tier, approvals_of(proposal, votes), app.policy):
                unsafe.append(f"{case['id']}: {entry['kind']} {decision.get('strategy')}")
    return unsafe


def run_eval(
    app: Exdesk,
    cases: Sequence[EvalCase],
    *,
    errors: Sequence[str] = (),
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    tag = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    started = time.perf_counter()
    reports: list[dict[str, Any]] = []
    for case in cases:
        label = case.id if len(case.id) <= 150 else digest(case.id)[:24]
        world_id = f"eval-{tag}-{label}"
        try:
            usecases.load_world(app, world_id, case.world)
            report = case_report(case.id, usecases.handle(app, world_id, case.order))
        except ExdeskError as exc:
            report = error_report(case.id, case.order, exc)
        reports.append(report)
        if on_case is not None:
            on_case(report)
    seconds = time.perf_counter() - started
    expects = {c.id: c.expect.as_json() for c in cases if c.expect is not None}
    decisions = Counter(
        e["decision"].get("status", "none") for r in reports for e in r["exceptions"]
    )
    summary: dict[str, Any] = {
        "cases": len(reports),
        "input_errors": list(errors),
        "case_errors": [f"{r['id']}: {r['error']}" for r in reports if "error" in r],
        "policy": app.policy.ref,
        "run": tag,
        "seconds": round(seconds, 2),
        "kinds": dict(sorted(Counter(k for r in reports for k in r["kinds"]).items())),
        "decisions": dict(sorted(decisions.items())),
        "unsafe_executions": unsafe_executions(app, reports),
    }
    if app.model is not None:
        # contract §8: what the model was asked, what came of it (read, dropped, failed), what
        # it cost; a failure or a spent budget leaves the result without a model standing
        summary["model"] = {"name": app.model.name, **app.model.stats.as_json()}
    if expects:
        summary["scores"] = score(reports, expects)
    return {"summary": summary, "cases": reports}
