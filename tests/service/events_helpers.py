"""Shared by the events-out tests: an app on SQLite or PostgreSQL, a scenario that makes every
event type, and what the outbox must hold for a log (written from the docs, not the code)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from tools.event_sinks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature

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


# --- a webhook receiver on 127.0.0.1 ----------------------------------------------------------


class Receiver:
    """A webhook server for one test: checks each request's signature, keeps what came, answers
    ``fail_first`` requests with 503 (or ``status``), and SIGKILLs ``kill_pid`` once it has
    answered ``kill_after`` requests (so the relay dies between a publish and its mark)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.fail_first = 0
        self.status = 200
        self.kill_pid: int | None = None
        self.kill_after: int | None = None
        self.delay_s = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        time.sleep(self.delay_s)
        with self._lock:
            n = len(self.received) + 1
            status = 503 if n <= self.fail_first else self.status
            event = json.loads(body)
            self.received.append(
                {
                    "id": event["id"],
                    "header_id": request.headers.get(EVENT_ID_HEADER),
                    "signed": verify_signature(
                        self.secret, body, request.headers.get(SIGNATURE_HEADER)
                    ),
                    "content_type": request.headers.get("Content-Type"),
                    "status": status,
                    "event": event,
                }
            )
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()
        request.wfile.flush()
        if self.kill_pid is not None and self.kill_after is not None and n == self.kill_after:
            os.kill(self.kill_pid, signal.SIGKILL)

    def taken(self) -> list[str]:
        """The ids the receiver answered 2xx to, in order (duplicates kept)."""
        return [r["id"] for r in self.received if 200 <= r["status"] < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
