"""Every change and its audit entry commit together or not at all (issue 17). Each use-case is
run with an append that fails (a signing key that is not the log's, or a failure injected at
one entry) and shown to leave nothing behind; where the change is an outside system's (a tool
call, bracketed in the log), the next run finishes it once. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from audit.errors import AuditError
from domain.models import Kind, Order, ProposalStatus, World
from service import explain, replies, review, usecases
from service.people import add_user
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from store.schema import tool_calls
from tests.conftest import PG_ENV
from tests.factories import clean_case, example, start
from tests.snapshot import changed, snapshot
from tools.fake_model import ScriptedModel

WRONG_KEY = "the log is signed by key"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with ExitStack() as stack:
        database = None
        if request.param == "postgresql":
            base = os.environ.get(PG_ENV)
            if not base:
                pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
            database = in_schema(base, stack.enter_context(scratch_schema(base, "exdesk_tx")))
        yield Settings(data_dir=tmp_path / "d", database_url=database, llm_backoff_s=0)


@contextmanager
def opened(settings: Settings, **kwargs: Any) -> Iterator[Exdesk]:
    app = Exdesk(settings, **kwargs)
    try:
        yield app
    finally:
        app.close()


def wrong_key(settings: Settings) -> Settings:
    """The same database, its appends signed by a key that is not the log's."""
    return settings.model_copy(
        update={"signing_key": Path(settings.data_dir).parent / "not-the-logs-key.pem"}
    )


@contextmanager
def failing_at(app: Exdesk, event: str) -> Iterator[None]:
    """Every append that holds an entry of ``event`` fails, as a lost database would."""
    real = app.audit.append_many

    def append_many(items: Any, **kwargs: Any) -> Any:
        if any(item[1] == event for item in items):
            raise AuditError(f"injected: the {event} entry cannot be written")
        return real(items, **kwargs)

    app.audit.append_many = append_many  # type: ignore[method-assign]
    try:
        yield
    finally:
        del app.audit.append_many


def far_future(case: dict[str, Any]) -> dict[str, Any]:
    case["order"]["fulfillment"]["promised_by"] = (
        datetime.now(UTC) + timedelta(days=365)
    ).isoformat()
    return case


def staffed(app: Exdesk) -> dict[str, Any]:
    sam, _ = add_user(app, "sam", "supervisor")
    people = {"sam": sam}
    for name, role in (("alice", "approver"), ("bob", "approver"), ("olive", "operator")):
        people[name] = add_user(app, name, role, by=sam)[0]
    return people


def l2(app: Exdesk) -> str:
    result = start(app, far_future(example("EX-customs-bad_hs-005")), world_id="default")
    (pid,) = [d.proposal_id for d in result.decisions.values() if d.proposal_id]
    return str(pid)


def nothing_left(settings: Settings, change: Callable[[Exdesk], object]) -> None:
    """``change``, made by a process whose key is not the log's, fails and changes nothing."""
    with opened(settings) as app:
        before = snapshot(app.engine)
    with opened(wrong_key(settings)) as other:
        with pytest.raises(AuditError, match=WRONG_KEY):
            change(other)
        assert changed(before, snapshot(other.engine)) == {}


def test_loading_a_world_and_submitting_an_order(settings: Settings) -> None:
    case = clean_case()
    with opened(settings) as app:
        staffed(app)  # (the log has a key)
    nothing_left(
        settings, lambda a: usecases.load_world(a, "w", World.model_validate(case["world"]))
    )
    with opened(settings) as app:
        usecases.load_world(app, "w", World.model_validate(case["world"]))
    order = Order.model_validate(case["order"])
    nothing_left(settings, lambda a: usecases.submit(a, "w", order))
    nothing_left(settings, lambda a: usecases.handle(a, "w", order))
    with opened(settings) as app:
        usecases.submit(app, "w", order, actor="person:olive", role="operator")
        usecases.submit(app, "w", order)  # the same again: nothing stored, nothing recorded
        entries = [e for e in app.audit.entries() if e.event == "order.submitted"]
        assert [(e.actor, e.payload["version"]) for e in entries] == [("person:olive", 1)]


def test_votes_rejections_and_edits(settings: Settings) -> None:
    with opened(settings) as app:
        people = staffed(app)
        pid = l2(app)
        usecases.vote(app, pid, by=None, role=None, decision="approve", user=people["alice"])
        proposal = app.review.get(pid)
        seen = usecases.current_digest(app, proposal)

    def approve(a: Exdesk) -> object:
        return usecases.vote(a, pid, by=None, role=None, decision="approve", user=people["bob"])

    def reject(a: Exdesk) -> object:
        return usecases.vote(
            a, pid, by=None, role=None, decision="reject", reason="no", user=people["bob"]
        )

    def edit(a: Exdesk) -> object:
        hs = proposal.plan.actions[0].args
        change = review.ActionEdit(0, {k: v for k, v in hs.items() if k != "order_id"})
        return review.edit(a, pid, user=people["bob"], changes=[change], digest=seen)

    for change in (approve, reject, edit):
        nothing_left(settings, change)
    with opened(settings) as app:
        assert app.review.get(pid).status is ProposalStatus.PENDING
        assert len(app.review.votes(pid)) == 1


def test_sweeps_escalate_and_expire_once_or_not_at_all(settings: Settings) -> None:
    with opened(settings) as app:
        staffed(app)
        pid = l2(app)
        deadline = app.review.get(pid).deadline
    assert deadline is not None
    late = deadline + timedelta(hours=1)
    nothing_left(settings, lambda a: review.sweep(a, late))
    expired = deadline + timedelta(days=30)
    nothing_left(settings, lambda a: review.sweep(a, expired))
    with opened(settings) as app:
        assert app.review.get(pid).escalated_at is None
        assert review.sweep(app, late) == [(pid, "escalated")]


def test_a_hold_lifted_by_a_person(settings: Settings) -> None:
    with opened(settings) as app:
        people = staffed(app)
        start(app, far_future(example("EX-addr-confirm-003")), world_id="default")

    def resolve(a: Exdesk) -> Order:
        return usecases.resolve_hold(
            a, "default", "EX-0003", Kind.BAD_ADDRESS, people["olive"], "confirmed by phone"
        )

    nothing_left(settings, resolve)  # the request's entry fails: no call is made
    with opened(settings) as app:
        with failing_at(app, "hold.resolved"), pytest.raises(AuditError, match="injected"):
            resolve(app)
        # the hold is lifted (the orders port's business), and the log says so already: the
        # request names the person and the reason, the outcome follows
        assert not app.desk("default").order("EX-0003").holds
        events = [e.event for e in app.audit.entries()]
        assert events[-2:] == ["tool.requested", "tool.called"]
        with app.engine.connect() as conn:
            calls = conn.execute(select(func.count()).select_from(tool_calls)).scalar()
        # a resolve by someone else finishes the first one, once: no call twice
        other = people["sam"].model_copy(update={"role": "operator"})
        done = usecases.resolve_hold(app, "default", "EX-0003", Kind.BAD_ADDRESS, other, "x")
        assert done.status == "open"
        with app.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(tool_calls)).scalar() == calls
        resolved = [e for e in app.audit.entries() if e.event == "hold.resolved"]
        assert [(e.actor, e.payload["reason"]) for e in resolved] == [
            ("person:olive", "confirmed by phone")
        ]
        with pytest.raises(Exception, match="no bad_address hold"):
            resolve(app)
        assert app.audit.verify().ok


def reading(intent: str, quote: str, **fields: Any) -> dict[str, Any]:
    return {"intent": intent, "new_address": None, "hold_until": None, "quote": quote, **fields}


NEW = {
    "street_address": "Keizersgracht 100",
    "city": "Amsterdam",
    "postal_code": "1015 CX",
    "country_code": "NL",
}


def scripted() -> ScriptedModel:
    def answer(request: Any) -> Any:
        if request.purpose == "notes":
            notes = json.loads(request.messages[-1]["content"])["untrusted_text"]
            if "away" in notes:
                return reading(
                    "hold_until", "do not ship before 2026-12-05", hold_until="2026-12-05"
                )
            return reading("change_address", "send it to Keizersgracht 100", new_address=NEW)
        if request.purpose == "reply":
            return reading("confirm", "yes")
        return "Please confirm the address."

    return ScriptedModel(answer)


def test_a_hold_released_on_its_date(settings: Settings) -> None:
    case = clean_case()
    case["order"]["notes"] = "I'm away: please do not ship before 2026-12-05."
    with opened(settings, model=scripted()) as app:
        result = start(app, case)
        assert result.order_after.holds[0].until == "2026-12-05"
    due = datetime.fromisoformat("2026-12-05T00:00:00+08:00")
    nothing_left(settings, lambda a: review.sweep(a, due))
    with opened(settings) as app:
        with failing_at(app, "hold.released"), pytest.raises(AuditError, match="injected"):
            review.sweep(app, due)
        assert not app.desk("w").order("EX-0001").holds  # lifted, the call in the log
        assert review.sweep(app, due) == [("EX-0001", "held until 2026-12-05: released")]
        assert review.sweep(app, due) == []
        events = [e.event for e in app.audit.entries()]
        assert events.count("hold.released") == 1 and app.audit.verify().ok


def test_a_customer_reply(settings: Settings) -> None:
    case = clean_case()
    case["order"]["notes"] = "I moved. Please send it to Keizersgracht 100, 1015 CX Amsterdam."
    with opened(settings, model=scripted()) as app:
        start(app, case)
    text = "Yes, that is right."
    nothing_left(settings, lambda a: replies.receive(a, "w", "EX-0001", text, by="olive"))
    fake = scripted()
    with opened(settings, model=fake) as app:
        with failing_at(app, "reply.received"), pytest.raises(AuditError, match="injected"):
            replies.receive(app, "w", "EX-0001", text, by="olive")
        assert app.replies.for_order("w", "EX-0001") == []
        asked = len(fake.requests)
        reply, new = replies.receive(app, "w", "EX-0001", text, by="olive")
        assert new and reply.outcome == "address_written", reply
        order = app.desk("w").order("EX-0001")
        assert order.ship_to.street_address == "Keizersgracht 100" and not order.holds
        assert len(fake.requests) == asked  # the reading recorded is used, not asked again
        events = [e.event for e in app.audit.entries()]
        assert events.count("reply.received") == 1 and app.audit.verify().ok


def test_words_a_model_wrote(settings: Settings) -> None:
    with opened(settings) as app:
        staffed(app)
        pid = l2(app)
    with opened(wrong_key(settings), model=scripted()) as other:
        before = snapshot(other.engine)
        with pytest.raises(AuditError, match=WRONG_KEY):
            explain.explanation(other, other.review.get(pid), "en")
        assert changed(before, snapshot(other.engine)) == {}  # no words kept unrecorded
    with opened(settings, model=scripted()) as app:
        said = explain.explanation(app, app.review.get(pid), "en")
        assert said.by_model
        wrote = [e for e in app.audit.entries() if e.event == "model.wrote"]
        assert len(wrote) == 1 and wrote[0].payload["status"] == "written"


def test_a_key_rotation_cut_short_is_finished_by_running_it_again(settings: Settings) -> None:
    """The rotation's entry committed, but its key file was not put in place (a crash): every
    append fails until `audit rotate-key` is run again, which finishes it and announces
    nothing twice."""
    from typer.testing import CliRunner

    from audit.keys import load_or_create_signing_key
    from service.cli import app as cli

    with opened(settings) as app:
        sam, _ = add_user(app, "sam", "supervisor")
        path = app.signing_key_path
        pending = path.with_name(path.stem + ".next" + path.suffix)
        app.audit.rotate_key(load_or_create_signing_key(pending), actor="operator", reason="drill")
    with opened(settings) as app, pytest.raises(AuditError, match=WRONG_KEY):
        add_user(app, "alice", "approver", by=sam)
    env = {"EXDESK_DATABASE_URL": settings.database_url} if settings.database_url else {}
    result = CliRunner(env=env).invoke(
        cli, ["audit", "rotate-key", "--data-dir", str(settings.data_dir)]
    )
    assert result.exit_code == 0, result.output
    with opened(settings) as app:
        add_user(app, "alice", "approver", by=sam)
        rotations = [e for e in app.audit.entries() if e.event == "audit.key_rotated"]
        assert len(rotations) == 1 and app.audit.verify().ok
