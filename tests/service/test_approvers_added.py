"""Who added each approver (issue 17): shown beside every approval, and the policy switch
``approvals.<tier>.distinct_adders``: no two approvers of one plan added by the same person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.errors import NotAllowed
from domain.models import ProposalStatus
from domain.policy import default_policy, parse_policy
from service import review, usecases
from service.http import create_app
from service.pages import TOKEN_COOKIE
from service.people import add_user
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import example, start

POLICY = Path(__file__).resolve().parents[2] / "domain" / "policy.toml"
L2_CASE = "EX-customs-bad_hs-005"


def strict_policy(tmp: Path) -> Path:
    text = POLICY.read_text(encoding="utf-8")
    text = text.replace("# distinct_adders = true", "distinct_adders = true", 1)
    path = tmp / "strict.toml"
    path.write_text(text, encoding="utf-8")
    return path


def l2_case() -> dict[str, Any]:
    case = example(L2_CASE)
    later = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    case["order"]["fulfillment"]["promised_by"] = later
    return case


def pending(app: Exdesk) -> str:
    result = start(app, l2_case(), world_id="default")
    (pid,) = [d.proposal_id for d in result.decisions.values() if d.proposal_id]
    return str(pid)


def staffed(app: Exdesk) -> dict[str, Any]:
    """sam (first supervisor) adds alice and bob; sue (a supervisor sam added) adds carol."""
    sam, sam_token = add_user(app, "sam", "supervisor")
    alice = add_user(app, "alice", "approver", by=sam)
    bob = add_user(app, "bob", "approver", by=sam)
    sue = add_user(app, "sue", "supervisor", by=sam)
    carol = add_user(app, "carol", "approver", by=sue[0])
    people = {"sam": (sam, sam_token), "alice": alice, "bob": bob, "sue": sue, "carol": carol}
    return {name: user for name, (user, _) in people.items()} | {
        f"{name}_token": token for name, (_, token) in people.items()
    }


def approve(app: Exdesk, pid: str, user: Any) -> usecases.VoteOutcome:
    return usecases.vote(app, pid, by=None, role=None, decision="approve", user=user)


def test_the_switch_is_off_by_default_and_parsed_from_the_file(tmp_path: Path) -> None:
    assert not any(rule.distinct_adders for rule in default_policy().approvals.values())
    path = strict_policy(tmp_path)
    strict = parse_policy(path.read_text(encoding="utf-8"), str(path))
    assert all(
        rule.distinct_adders is (tier.value == "L2") for tier, rule in strict.approvals.items()
    )
    bad = path.read_text(encoding="utf-8").replace(
        "distinct_adders = true", 'distinct_adders = "y"'
    )
    with pytest.raises(Exception, match="distinct_adders"):
        parse_policy(bad, "bad.toml")


def test_off_two_approvers_one_supervisor_added_pass(tmp_path: Path) -> None:
    app = Exdesk(Settings(data_dir=tmp_path / "d"))
    try:
        people = staffed(app)
        pid = pending(app)
        approve(app, pid, people["alice"])
        assert approve(app, pid, people["bob"]).proposal.status is not ProposalStatus.PENDING
    finally:
        app.close()


def test_on_the_second_approver_must_be_added_by_someone_else(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", policy_file=strict_policy(tmp_path))
    app = Exdesk(settings)
    try:
        people = staffed(app)
        pid = pending(app)
        approve(app, pid, people["alice"])
        before = len(list(app.audit.entries()))
        with pytest.raises(NotAllowed, match=r"alice and bob were both given their role by sam"):
            approve(app, pid, people["bob"])
        assert len(app.review.votes(pid)) == 1 and len(list(app.audit.entries())) == before
        # sam himself was added by nobody, so he and alice (added by sam) differ
        done = approve(app, pid, people["carol"])  # added by sue
        assert done.proposal.status is not ProposalStatus.PENDING
        votes = review.detail(app, app.review.get(pid))["votes"]
        assert [(v["by"], v["added_by"]) for v in votes] == [("alice", "sam"), ("carol", "sue")]
        assert all(v["added_at"] and v["known"] for v in votes)
    finally:
        app.close()


def test_on_a_desk_without_people_votes_are_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", policy_file=strict_policy(tmp_path))
    app = Exdesk(settings)
    try:
        pid = pending(app)
        with pytest.raises(NotAllowed, match="needs to know who added each approver"):
            usecases.vote(app, pid, by="alice", role="approver", decision="approve")
    finally:
        app.close()


def test_the_page_shows_who_added_each_approver(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    app = Exdesk(settings)
    try:
        people = staffed(app)
        pid = pending(app)
        approve(app, pid, people["alice"])
        approve(app, pid, people["sam"])
    finally:
        app.close()
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        client.cookies.set(TOKEN_COOKIE, people["carol_token"])
        page = client.get(f"/ui/proposals/{pid}")
        assert page.status_code == 200
        assert "added by sam" in page.text
        assert "the desk's first supervisor, added without a token" in page.text
        api = client.get(
            f"/proposals/{pid}", headers={"Authorization": f"Bearer {people['carol_token']}"}
        ).json()
        assert [(v["by"], v["added_by"]) for v in api["votes"]] == [("alice", "sam"), ("sam", None)]


def test_on_a_supervisor_cannot_approve_beside_an_approver_they_added(tmp_path: Path) -> None:
    """sam adds alice (and is shown her token): sam and alice together are one person's
    doing, whichever of them votes first."""
    settings = Settings(data_dir=tmp_path / "d", policy_file=strict_policy(tmp_path))
    app = Exdesk(settings)
    try:
        people = staffed(app)
        for first, second in (("alice", "sam"), ("sam", "alice")):
            pid = pending(app) if first == "alice" else _fresh(app)
            approve(app, pid, people[first])
            before = len(list(app.audit.entries()))
            with pytest.raises(NotAllowed, match=r"sam gave alice their role"):
                approve(app, pid, people[second])
            assert len(app.review.votes(pid)) == 1
            assert len(list(app.audit.entries())) == before
    finally:
        app.close()


def _fresh(app: Exdesk) -> str:
    case = l2_case()
    case["order"]["order_id"] = case["order"]["order_id"] + "-B"
    result = start(app, case, world_id="default")
    (pid,) = [d.proposal_id for d in result.decisions.values() if d.proposal_id]
    return str(pid)
