"""Shared by the events-out tests: an app on SQLite or PostgreSQL, a scenario that makes every
event type, and what the outbox must hold for a log (written from the docs, not the code)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEntry
from service import review
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV
from tests.factories import example, start, vote

ALL_TYPES = {
    "exception.detected",
    "plan.proposed",
    "plan.approved",
    "plan.rejected",
    "plan.expired",
    "plan.executed",
    "plan.failed",
    "action.executed",
    "action.failed",
    "order.released",
}
FAULTS = "payment.request_new_method=fail"


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str | None]:
    """None for SQLite under the data dir; a scratch PostgreSQL schema's URL."""
    if kind == "sqlite":
        yield None
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
    with scratch_schema(base, "exdesk_events") as schema:
        yield in_schema(base, schema)


def settings(tmp_path: Path, url: str | None, **more: Any) -> Settings:
    return Settings(data_dir=tmp_path, database_url=url, simulated_faults=FAULTS, **more)


def every_kind_of_event(app: Exdesk) -> None:
    """Orders whose handling makes each event type at least once."""
    start(app, example("EX-addr-fix-002"), world_id="fix")  # L1 executed
    start(app, example("EX-payment-008"), world_id="pay")  # an action fails (FAULTS)
    approved = start(app, example("EX-customs-bad_hs-005"), world_id="hs")  # L2, approved
    (pid,) = [d.proposal_id for d in approved.decisions.values()]
    assert pid is not None
    vote(app, pid, "alice")
    vote(app, pid, "bob")
    rejected = start(app, example("EX-stock-late-006"), world_id="late")
    (pid,) = [d.proposal_id for d in rejected.decisions.values()]
    assert pid is not None
    vote(app, pid, "carol", reason="ship what we have", decision="reject")
    start(app, example("EX-stock-substitute-007"), world_id="sub")  # expires
    review.sweep(app, now=datetime.now(UTC) + timedelta(days=400))


def expected_types(entry: AuditEntry) -> list[str]:
    """The events an audit entry stands for, as docs/events.md lists them."""
    event, p = entry.event, entry.payload
    if event == "order.detected":
        return ["exception.detected"] if p["kinds"] else []
    if event == "proposal.created":
        return ["plan.proposed"]
    if event == "proposal.approved":
        return ["plan.approved"] if p["status_after"] == "approved" else []
    if event == "proposal.rejected":
        return ["plan.rejected"] if p["status_after"] == "rejected" else []
    if event == "proposal.expired":
        return ["plan.expired"]
    if event == "plan.finished":
        return ["plan.executed" if p["ok"] else "plan.failed"]
    if event == "tool.failed":
        return ["action.failed"]
    if event == "tool.called":
        lifted = (p["tool"], p["op"]) == ("orders", "release_hold") and p["result"]["released"]
        return ["action.executed", *(["order.released"] if lifted else [])]
    return []


def order_of(entry: AuditEntry) -> str:
    return str(entry.payload.get("order_id") or entry.payload["args"]["order_id"])
