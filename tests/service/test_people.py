"""Who may add, change and revoke people (issue 17): the first supervisor without a token (the
bootstrap, said so), everyone after with a supervisor's token, named in the audit entry; each
change commits with its entry or not at all. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from audit.errors import AuditError
from domain.errors import NotAllowed
from domain.models import User
from service.cli import app as cli
from service.http import create_app
from service.people import add_user, revoke_user, set_role
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV
from tests.snapshot import changed, snapshot


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with ExitStack() as stack:
        database = None
        if request.param == "postgresql":
            base = os.environ.get(PG_ENV)
            if not base:
                pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
            database = in_schema(base, stack.enter_context(scratch_schema(base, "exdesk_people")))
        yield Settings(data_dir=tmp_path / "d", database_url=database)


@pytest.fixture
def app(settings: Settings) -> Iterator[Exdesk]:
    desk = Exdesk(settings)
    try:
        yield desk
    finally:
        desk.close()


def entries(app: Exdesk, event: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.actor, e.payload) for e in app.audit.entries() if e.event == event]


def test_the_first_supervisor_needs_no_token_and_the_log_says_so(app: Exdesk) -> None:
    with pytest.raises(NotAllowed, match="no supervisor yet: add one first"):
        add_user(app, "alice", "approver")
    sam, token = add_user(app, "Sam Lee", "supervisor")
    assert sam.added_by is None and token.startswith("exd_")
    assert entries(app, "user.added") == [
        (
            "bootstrap",
            {"user": "Sam Lee", "role": "supervisor", "added_by": None, "bootstrap": True},
        )
    ]
    assert app.audit.verify().ok


def test_after_that_only_a_supervisor_adds_and_the_entry_names_them(app: Exdesk) -> None:
    sam, _ = add_user(app, "Sam Lee", "supervisor")
    with pytest.raises(NotAllowed, match=r"supervisor's token .*ask a supervisor \(Sam Lee\)"):
        add_user(app, "mallory", "approver")
    with pytest.raises(NotAllowed, match=r"no supervisor yet|supervisor's token"):
        add_user(app, "Eve", "supervisor")  # a second bootstrap: no
    alice, _ = add_user(app, "alice", "approver", by=sam)
    with pytest.raises(NotAllowed, match=r"alice is not an active supervisor.*Sam Lee"):
        add_user(app, "mallory", "approver", by=alice)
    assert app.users.get("alice").added_by == "Sam Lee"
    assert app.users.get("alice").added_at is not None
    assert entries(app, "user.added")[-1] == (
        "person:Sam Lee",
        {"user": "alice", "role": "approver", "added_by": "Sam Lee", "bootstrap": False},
    )
    assert [u.name for u in app.users.list()] == ["Sam Lee", "alice"]


def test_a_stale_supervisor_object_is_checked_against_the_store(app: Exdesk) -> None:
    sam, _ = add_user(app, "sam", "supervisor")
    sue, _ = add_user(app, "sue", "supervisor", by=sam)
    revoke_user(app, "sue", by=sam)
    with pytest.raises(NotAllowed, match="sue is not an active supervisor"):
        add_user(app, "mallory", "approver", by=sue)  # her token was revoked since she signed in


def test_revoking_and_changing_need_a_supervisor_never_the_last_one(app: Exdesk) -> None:
    sam, _ = add_user(app, "sam", "supervisor")
    add_user(app, "alice", "approver", by=sam)
    with pytest.raises(NotAllowed, match="supervisor's token"):
        revoke_user(app, "alice")
    with pytest.raises(NotAllowed, match="supervisor's token"):
        set_role(app, "alice", "supervisor")
    with pytest.raises(NotAllowed, match="only supervisor"):
        revoke_user(app, "sam", by=sam)
    with pytest.raises(NotAllowed, match="only supervisor"):
        set_role(app, "sam", "approver", by=sam)
    add_user(app, "bob", "operator", by=sam)
    promoted = set_role(app, "bob", "approver", by=sam)
    assert promoted.role == "approver" and promoted.added_by == "sam"
    assert entries(app, "user.changed") == [
        ("person:sam", {"user": "bob", "role_before": "operator", "role": "approver"})
    ]
    revoke_user(app, "alice", by=sam)
    assert entries(app, "user.revoked") == [("person:sam", {"user": "alice", "role": "approver"})]
    assert app.users.find("alice") is None
    assert app.audit.verify().ok


def test_two_first_supervisors_at_once_are_one(settings: Settings) -> None:
    apps = [Exdesk(settings) for _ in range(4)]
    start = threading.Barrier(len(apps))
    results: list[object] = [None] * len(apps)

    def go(i: int) -> None:
        start.wait()
        try:
            results[i] = add_user(apps[i], f"boss{i}", "supervisor")[0]
        except NotAllowed as exc:
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(apps))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        added = [r for r in results if isinstance(r, User)]
        assert len(added) == 1, results
        assert all(isinstance(r, NotAllowed) for r in results if r not in added)
        assert len(apps[0].users.list()) == 1
        assert len(entries(apps[0], "user.added")) == 1
    finally:
        for a in apps:
            a.close()


def cli_runner(settings: Settings, **env: str) -> CliRunner:
    if settings.database_url:
        env["EXDESK_DATABASE_URL"] = settings.database_url
    return CliRunner(env=env)


def test_the_hostile_insider_cannot_mint_approvers(settings: Settings) -> None:
    """Anyone who can run the CLI: once a supervisor exists, no approver without their token,
    and the refusal says who may."""
    data = ["--data-dir", str(settings.data_dir)]
    runner = cli_runner(settings)
    first = runner.invoke(cli, ["users", "add", "Sam Lee", "--role", "supervisor", *data])
    assert first.exit_code == 0, first.output
    assert "first supervisor, without a token" in first.output
    sam_token = first.output.strip().splitlines()[-1]
    for name in ("minion1", "minion2"):
        tried = runner.invoke(cli, ["users", "add", name, "--role", "approver", *data])
        assert tried.exit_code == 2
        assert "supervisor's token" in tried.output and "Sam Lee" in tried.output
    made = runner.invoke(
        cli, ["users", "add", "olive", "--role", "operator", "--token", sam_token, *data]
    )
    assert made.exit_code == 0 and "added as operator by Sam Lee" in made.output
    olive_token = made.output.strip().splitlines()[-1]
    tried = cli_runner(settings, EXDESK_TOKEN=olive_token).invoke(
        cli, ["users", "add", "minion1", "--role", "approver", *data]
    )
    assert tried.exit_code == 2 and "olive is not an active supervisor" in tried.output
    listed = runner.invoke(cli, ["users", "list", *data])
    assert "minion" not in listed.output and "by Sam Lee" in listed.output
    assert "without a token" in listed.output
    wrong = runner.invoke(cli, ["users", "revoke", "olive", "--token", "exd_nope", *data])
    assert wrong.exit_code == 2 and "valid token" in wrong.output
    desk = Exdesk(settings)
    try:
        assert [u.name for u in desk.users.list()] == ["Sam Lee", "olive"]
        assert desk.audit.verify().ok
    finally:
        desk.close()


def test_people_over_http(settings: Settings) -> None:
    desk = Exdesk(settings)
    try:
        sam, sam_token = add_user(desk, "sam", "supervisor")
        _, alice_token = add_user(desk, "alice", "approver", by=sam)
    finally:
        desk.close()
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        body = {"name": "bob", "role": "approver"}
        assert client.post("/users", json=body).status_code == 401
        refused = client.post(
            "/users", json=body, headers={"Authorization": f"Bearer {alice_token}"}
        )
        assert refused.status_code == 403 and "supervisor" in refused.json()["detail"]
        sam_auth = {"Authorization": f"Bearer {sam_token}"}
        made = client.post("/users", json=body, headers=sam_auth)
        assert made.status_code == 201, made.text
        assert made.json()["added_by"] == "sam"
        bob_auth = {"Authorization": f"Bearer {made.json()['token']}"}
        assert client.get("/proposals", headers=bob_auth).status_code == 200
        again = client.post("/users", json=body, headers=sam_auth)
        assert again.status_code == 422 and "already a user" in again.json()["detail"]
        bad = client.post("/users", json={"name": "x", "role": "king"}, headers=sam_auth)
        assert bad.status_code == 422
        changed_role = client.post("/users/bob/role", json={"role": "operator"}, headers=sam_auth)
        assert changed_role.status_code == 200 and changed_role.json()["role"] == "operator"
        assert client.post("/users/nobody/revoke", headers=sam_auth).status_code == 404
        gone = client.post("/users/bob/revoke", headers=sam_auth)
        assert gone.status_code == 200 and gone.json()["revoked_at"]
        assert client.get("/proposals", headers=bob_auth).status_code == 401
        listed = client.get("/users", headers=sam_auth).json()
        assert [(p["name"], p["added_by"]) for p in listed] == [
            ("sam", None),
            ("alice", "sam"),
            ("bob", "sam"),
        ]
        log = client.get("/orders/none/timeline", headers=sam_auth)
        assert log.status_code == 200
    desk = Exdesk(settings)
    try:
        actors = [a for a, _ in entries(desk, "user.added")]
        assert actors == ["bootstrap", "person:sam", "person:sam"]
        assert [a for a, _ in entries(desk, "user.changed")] == ["person:sam"]
        assert [a for a, _ in entries(desk, "user.revoked")] == ["person:sam"]
    finally:
        desk.close()


def mismatched(settings: Settings, tmp: Path) -> Settings:
    """The same database, signed with a key that is not the log's."""
    return settings.model_copy(update={"signing_key": tmp / "not-the-logs-key.pem"})


def test_a_change_whose_entry_fails_leaves_nothing(settings: Settings, tmp_path: Path) -> None:
    desk = Exdesk(settings)
    try:
        sam, _ = add_user(desk, "sam", "supervisor")
        add_user(desk, "alice", "approver", by=sam)
        before = snapshot(desk.engine)
    finally:
        desk.close()
    other = Exdesk(mismatched(settings, tmp_path))
    try:
        for change in (
            lambda: add_user(other, "bob", "approver", by=sam),
            lambda: revoke_user(other, "alice", by=sam),
            lambda: set_role(other, "alice", "supervisor", by=sam),
        ):
            with pytest.raises(AuditError, match="the log is signed by key"):
                change()
            assert changed(before, snapshot(other.engine)) == {}
    finally:
        other.close()


def test_users_add_with_the_wrong_key_exits_1_and_stores_nobody(
    settings: Settings, tmp_path: Path
) -> None:
    """The issue's symptom: the key error printed, yet the user stored with a token nobody saw."""
    data = ["--data-dir", str(settings.data_dir)]
    runner = cli_runner(settings)
    first = runner.invoke(cli, ["users", "add", "sam", "--role", "supervisor", *data])
    token = first.output.strip().splitlines()[-1]
    wrong_key = str(mismatched(settings, tmp_path).signing_key)
    result = cli_runner(settings, EXDESK_SIGNING_KEY=wrong_key, EXDESK_TOKEN=token).invoke(
        cli, ["users", "add", "alice", "--role", "approver", *data]
    )
    assert result.exit_code == 1, result.output
    assert "the log is signed by key" in result.output
    assert "exd_" not in result.output
    listed = runner.invoke(cli, ["users", "list", *data])
    assert "alice" not in listed.output and "1 user(s)" in listed.output
