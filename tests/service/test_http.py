"""The review desk's API: people as themselves, roles, digests, edits, deadlines, restarts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.models import ProposalStatus
from service import review
from service.http import create_app
from service.people import add_user
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV
from tests.factories import add_people, example


@dataclass
class Desk:
    settings: Settings
    tokens: dict[str, str]

    def client(self) -> TestClient:
        return TestClient(create_app(self.settings, sweep_interval=0))

    def app(self) -> Exdesk:
        return Exdesk(self.settings)


PEOPLE = {
    "olive": "operator",
    "alice": "approver",
    "bob": "approver",
    "sue": "supervisor",
    "audrey": "auditor",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    """A desk with its people, on SQLite and (when a test database is set) PostgreSQL."""
    with ExitStack() as stack:
        database = None
        if request.param == "postgresql":
            base = os.environ.get(PG_ENV)
            if not base:
                pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
            database = in_schema(base, stack.enter_context(scratch_schema(base, "exdesk_http")))
        settings = Settings(data_dir=tmp_path / "d", database_url=database)
        app = Exdesk(settings)
        try:
            tokens = add_people(app, PEOPLE)
        finally:
            app.close()
        yield Desk(settings, tokens)


@pytest.fixture
def client(desk: Desk) -> Iterator[TestClient]:
    with desk.client() as c:
        yield c


def auth(desk: Desk, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {desk.tokens[name]}"}


def far_future(case: dict[str, Any]) -> dict[str, Any]:
    """Promised in a year, so deadlines come from the policy, not the promise."""
    later = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    case["order"]["fulfillment"]["promised_by"] = later
    return case


def submit(client: TestClient, desk: Desk, case_id: str, **patch: Any) -> dict[str, Any]:
    case = far_future(example(case_id))
    case["order"].update(patch)
    response = client.post(
        "/orders",
        json={"order": case["order"], "world": case["world"]},
        headers=auth(desk, "olive"),
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def pending_id(report: dict[str, Any]) -> str:
    (pid,) = [
        e["decision"]["proposal_id"]
        for e in report["exceptions"]
        if e["decision"]["status"] == "awaiting_approval"
    ]
    return str(pid)


def approve(client: TestClient, desk: Desk, pid: str, who: str, **body: Any) -> Any:
    if "digest" not in body:
        body["digest"] = client.get(f"/proposals/{pid}", headers=auth(desk, who)).json()["digest"]
    return client.post(f"/proposals/{pid}/approve", json=body, headers=auth(desk, who))


def test_everything_but_health_needs_a_token(client: TestClient, desk: Desk) -> None:
    assert client.get("/health").json() == {"ok": True}
    for method, path in (("get", "/proposals"), ("get", "/audit/verify"), ("post", "/orders")):
        response = getattr(client, method)(path)
        assert response.status_code == 401
        assert "Bearer" in response.headers["www-authenticate"]
    bad = client.get("/proposals", headers={"Authorization": "Bearer exd_nope"})
    assert bad.status_code == 401


def test_an_l2_plan_runs_after_two_different_approvers(client: TestClient, desk: Desk) -> None:
    report = submit(client, desk, "EX-customs-bad_hs-005")
    pid = pending_id(report)
    listed = client.get("/proposals", headers=auth(desk, "audrey")).json()
    assert [p["proposal_id"] for p in listed] == [pid]
    shown = client.get(f"/proposals/{pid}", headers=auth(desk, "alice")).json()
    assert shown["tier"] == "L2" and "customs_fix_hs_code" in shown["tier_reasons"][0]
    assert {"field": "lines[EX-0005-3].hs_code", "before": "12AB56", "after": "761699"} in shown[
        "diff"
    ]
    assert shown["still_needed"].startswith("2 more approval")
    first = approve(client, desk, pid, "alice")
    assert first.status_code == 200 and first.json()["ran"] is None
    again = approve(client, desk, pid, "alice")
    assert again.status_code == 409 and "already voted" in again.json()["detail"]
    done = approve(client, desk, pid, "bob", reason="checked the catalog")
    assert done.status_code == 200, done.text
    ran = done.json()["ran"]
    assert ran["decision"]["status"] == "executed" and ran["order_status"] == "open"
    timeline = client.get("/orders/EX-0005/timeline", headers=auth(desk, "audrey")).json()
    events = [e["event"] for e in timeline]
    assert "proposal.created" in events and "proposal.executed" in events
    actors = {e["actor"] for e in timeline if e["event"] == "proposal.approved"}
    assert actors == {"person:alice", "person:bob"}
    verdict = client.get("/audit/verify", headers=auth(desk, "audrey")).json()
    assert verdict["ok"] is True


def test_each_role_does_only_what_it_is_for(client: TestClient, desk: Desk) -> None:
    pid = pending_id(submit(client, desk, "EX-customs-bad_hs-005"))
    for who in ("audrey", "olive"):
        response = approve(client, desk, pid, who)
        assert response.status_code == 403, response.text
        assert (
            "only approvers and supervisors" in response.json()["detail"]
            or "must be" in (response.json()["detail"])
        )
    case = example("EX-clean-001")
    response = client.post("/orders", json={"order": case["order"]}, headers=auth(desk, "alice"))
    assert response.status_code == 403
    assert client.get(f"/proposals/{pid}", headers=auth(desk, "audrey")).status_code == 200


def test_the_same_person_under_another_spelling_is_refused(desk: Desk) -> None:
    app = desk.app()
    try:
        for alias in ("Alice", "ali ce", "ALICE\u200b", "ａｌｉｃｅ"):
            with pytest.raises(Exception, match="already a user"):
                add_user(app, alias, "approver", by=app.users.get("sue"))
        with pytest.raises(Exception, match="agent's name"):
            add_user(app, "ｅｘｄｅｓｋ", "supervisor", by=app.users.get("sue"))
    finally:
        app.close()


def test_a_stale_digest_is_a_409_that_says_what_changed(client: TestClient, desk: Desk) -> None:
    report = submit(client, desk, "EX-customs-bad_hs-005")
    pid = pending_id(report)
    digest = client.get(f"/proposals/{pid}", headers=auth(desk, "alice")).json()["digest"]
    # the order is submitted again with other content: a new version
    submit(client, desk, "EX-customs-bad_hs-005", notes="gift wrap")
    response = approve(client, desk, pid, "alice", digest=digest)
    assert response.status_code == 409
    assert "order changed" in response.json()["detail"] or "superseded" in response.json()["detail"]
    fresh = pending_id(submit(client, desk, "EX-customs-bad_hs-005", notes="gift wrap"))
    digest = client.get(f"/proposals/{fresh}", headers=auth(desk, "alice")).json()["digest"]
    edited = client.post(
        f"/proposals/{fresh}/edit",
        json={
            "digest": digest,
            "changes": [{"index": 0, "args": {"changes": {"EX-0005-3": {"hs_code": "761610"}}}}],
        },
        headers=auth(desk, "sue"),
    )
    assert edited.status_code == 200, edited.text
    stale = approve(client, desk, fresh, "alice", digest=digest)
    assert stale.status_code == 409 and "the plan changed" in stale.json()["detail"]
    wrong = approve(client, desk, fresh, "alice", digest="f" * 24 + ".1.abcdefabcdef")
    assert wrong.status_code == 409 and "not a digest of this proposal" in wrong.json()["detail"]
    app = desk.app()
    try:
        assert app.review.votes(fresh) == []  # nothing changed
    finally:
        app.close()


def test_an_edit_is_checked_retiered_and_resets_the_approvals(
    client: TestClient, desk: Desk
) -> None:
    pid = pending_id(submit(client, desk, "EX-stock-substitute-007"))
    shown = client.get(f"/proposals/{pid}", headers=auth(desk, "alice")).json()
    assert approve(client, desk, pid, "alice").status_code == 200
    reserve = next(i for i, a in enumerate(shown["actions"]) if a["op"] == "reserve")
    too_many = client.post(
        f"/proposals/{pid}/edit",
        json={"digest": shown["digest"], "changes": [{"index": reserve, "args": {"qty": 10**6}}]},
        headers=auth(desk, "bob"),
    )
    assert too_many.status_code == 422 and "available" in too_many.json()["detail"]
    not_an_arg = client.post(
        f"/proposals/{pid}/edit",
        json={"digest": shown["digest"], "changes": [{"index": reserve, "args": {"op": "refund"}}]},
        headers=auth(desk, "bob"),
    )
    assert not_an_arg.status_code == 422
    ok = client.post(
        f"/proposals/{pid}/edit",
        json={
            "digest": shown["digest"],
            "changes": [
                {"index": reserve, "args": {"qty": shown["actions"][reserve]["args"]["qty"]}}
            ],
            "reason": "same quantity, checked",
        },
        headers=auth(desk, "bob"),
    )
    assert ok.status_code == 200, ok.text
    edited = ok.json()
    assert edited["tier"] == shown["tier"]
    assert edited["approvals"] == [] and edited["still_needed"].startswith("2 more")
    assert edited["votes"][0]["counts"] is False if edited["votes"] else True


def test_two_final_approvals_at_once_run_the_plan_once(client: TestClient, desk: Desk) -> None:
    pid = pending_id(submit(client, desk, "EX-customs-bad_hs-005"))
    assert approve(client, desk, pid, "alice").status_code == 200
    digest = client.get(f"/proposals/{pid}", headers=auth(desk, "bob")).json()["digest"]
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda who: approve(client, desk, pid, who, digest=digest, reason="ok"),
                ["bob", "sue"],
            )
        )
    assert sorted(a.status_code for a in answers) == [200, 200], [a.text for a in answers]
    assert sorted(a.json()["counted"] for a in answers) == [False, True]
    assert all(a.json()["ran"]["decision"]["status"] == "executed" for a in answers)
    app = desk.app()
    try:
        docs = [m for m in app.backend("default").outbox("EX-0005") if m["channel"] == "customs"]
        assert len(docs) == len({m["document"] for m in docs})
        calls = [e for e in app.audit.entries() if e.event == "proposal.executed"]
        assert len(calls) == 1
    finally:
        app.close()


def test_past_its_deadline_a_proposal_escalates_then_expires(desk: Desk) -> None:
    with desk.client() as client:
        pid = pending_id(submit(client, desk, "EX-customs-bad_hs-005"))
    app = desk.app()
    try:
        proposal = app.review.get(pid)
        assert proposal.deadline is not None and proposal.expires_at is not None
        hours = app.policy.deadlines.L2_hours
        assert abs((proposal.deadline - proposal.created_at).total_seconds() - hours * 3600) < 60
        assert review.sweep(app, now=proposal.deadline - timedelta(minutes=1)) == []
        assert review.sweep(app, now=proposal.deadline + timedelta(minutes=1)) == [
            (pid, "escalated")
        ]
        assert review.sweep(app, now=proposal.deadline + timedelta(minutes=2)) == []
        (told,) = [e for e in app.audit.entries() if e.event == "proposal.escalated"]
        assert told.payload["told"] == ["sue"]
    finally:
        app.close()
    # durable across a restart: a new process expires it
    app = desk.app()
    try:
        later = app.review.get(pid).expires_at + timedelta(minutes=1)  # type: ignore[operator]
        assert review.sweep(app, now=later) == [(pid, "expired")]
        assert app.review.get(pid).status is ProposalStatus.EXPIRED
        order = app.orders.current("default", "EX-0005")
        assert order is not None and order.status == "on_hold"
        assert order.lines[2].hs_code == "12AB56"  # nothing ran
        assert any("needs a person" in h.reason for h in order.holds)
    finally:
        app.close()
    with desk.client() as client:
        late = approve(client, desk, pid, "alice")
        assert late.status_code == 409 and "expired" in late.json()["detail"]


def test_a_deadline_is_never_after_the_promise(client: TestClient, desk: Desk) -> None:
    case = far_future(example("EX-customs-bad_hs-005"))
    soon = datetime.now(UTC) + timedelta(hours=2)
    case["order"]["fulfillment"]["promised_by"] = soon.isoformat()
    body = {"order": case["order"], "world": case["world"]}
    report = client.post("/orders", json=body, headers=auth(desk, "olive")).json()
    shown = client.get(f"/proposals/{pending_id(report)}", headers=auth(desk, "alice")).json()
    assert datetime.fromisoformat(shown["deadline"]) <= soon


def test_a_paused_plan_survives_a_restart_of_the_service(desk: Desk) -> None:
    with desk.client() as client:
        pid = pending_id(submit(client, desk, "EX-stock-substitute-007"))
        assert approve(client, desk, pid, "alice").status_code == 200
    with desk.client() as client:  # a new process on the same data dir
        done = approve(client, desk, pid, "sue", reason="the customer takes the navy one")
        assert done.status_code == 200, done.text
        assert done.json()["ran"]["decision"]["status"] == "executed"


def test_malformed_input_is_a_422_naming_the_field_and_stores_nothing(
    client: TestClient, desk: Desk
) -> None:
    case = example("EX-multi-011")
    case["order"]["lines"][0]["qty"] = 0
    response = client.post(
        "/orders",
        json={"order": case["order"], "world": case["world"]},
        headers=auth(desk, "olive"),
    )
    assert response.status_code == 422
    assert "qty" in json.dumps(response.json()["detail"])
    lost = example("EX-multi-011")
    lost["order"]["fulfillment"]["warehouse_id"] = "WH-NOWHERE"
    response = client.post(
        "/orders",
        json={"order": lost["order"], "world": lost["world"]},
        headers=auth(desk, "olive"),
    )
    assert response.status_code == 422 and "WH-NOWHERE" in response.json()["detail"]
    app = desk.app()
    try:
        assert app.orders.current("default", "EX-0011") is None
        with pytest.raises(Exception, match="not in the store"):
            app.worlds.view("default", app_order(lost))
    finally:
        app.close()


def app_order(case: dict[str, Any]) -> Any:
    from domain.models import Order

    return Order.model_validate(case["order"])


def test_an_operator_resolves_a_customer_hold(client: TestClient, desk: Desk) -> None:
    report = submit(client, desk, "EX-addr-confirm-003")
    assert report["order_after"]["status"] == "on_hold"
    body = {"kind": "bad_address", "reason": "the customer confirmed the address by phone"}
    response = client.post("/orders/EX-0003/resolve", json=body, headers=auth(desk, "alice"))
    assert response.status_code == 403
    response = client.post("/orders/EX-0003/resolve", json=body, headers=auth(desk, "olive"))
    assert response.status_code == 200 and response.json()["status"] == "open"
    again = client.post("/orders/EX-0003/resolve", json=body, headers=auth(desk, "olive"))
    assert again.status_code == 422 and "no bad_address hold" in again.json()["detail"]


def test_cli_votes_need_a_token_once_there_are_users(desk: Desk) -> None:
    from typer.testing import CliRunner

    from service.cli import app as cli

    with desk.client() as client:
        pid = pending_id(submit(client, desk, "EX-customs-bad_hs-005"))
    data = ["--data-dir", str(desk.settings.data_dir)]
    database = desk.settings.database_url
    runner = CliRunner(env={"EXDESK_DATABASE_URL": database} if database else None)
    result = runner.invoke(cli, ["review", "approve", pid, "--by", "alice", *data])
    assert result.exit_code == 2 and "vote with your token" in result.output
    result = runner.invoke(
        cli, ["review", "approve", pid, "--by", "bob", "--token", desk.tokens["alice"], *data]
    )
    assert result.exit_code == 2 and "you cannot vote as 'bob'" in result.output
    result = runner.invoke(cli, ["review", "approve", pid, "--token", desk.tokens["alice"], *data])
    assert result.exit_code == 0 and "still needs" in result.output, result.output


def test_a_proposal_shows_the_past_cases_it_cites_and_how_they_ended(desk: Desk) -> None:
    """An executed plan is learned as a past case; the next like order's plan cites it, and an
    approver sees that case, its strategy and its outcome (the API and the page)."""
    settings = desk.settings.model_copy(update={"embedding_model": "hash"})
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        first = pending_id(submit(client, desk, "EX-customs-bad_hs-005"))
        assert approve(client, desk, first, "alice").status_code == 200
        assert approve(client, desk, first, "bob").json()["ran"]["decision"]["status"] == (
            "executed"
        )
        second = pending_id(submit(client, desk, "EX-customs-bad_hs-005", order_id="EX-0005-B"))
        shown = client.get(f"/proposals/{second}", headers=auth(desk, "alice")).json()
        learned = [c for c in shown["cited_cases"] if "EX-0005:" in c["case_id"]]
        assert learned and learned[0]["strategy"] == "customs_fix_hs_code"
        assert learned[0]["success"] is True and shown["cited_cases_problem"] is None
        assert learned[0]["case_id"] in shown["similar_cases"]
        assert any("similar case" in line for line in shown["evidence"])
        login = client.post("/ui/login", data={"token": desk.tokens["alice"]})
        assert login.status_code in (200, 303)
        page = client.get(f"/ui/proposals/{second}").text
        assert "Similar past cases" in page and "succeeded" in page
        assert learned[0]["case_id"] in page
