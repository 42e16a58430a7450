"""Open approvals when another policy version comes to decide their orders (issue 15): each
open proposal is decided again under the new version, by code; where it decides the same the
proposal is bound to it and its votes stand, where it decides differently its approvals are
void and the proposal says so, naming the version (CLI, HTTP, the review page). Activation,
rollback, a rollout's share and the kill switch alike; in the change's own transaction.
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.runner import RunResult
from domain.errors import ApprovalError
from domain.models import Order, Proposal, ProposalStatus, User, Vote, World
from service import policies, review, usecases
from service.cli import app as cli
from service.http import create_app
from service.pages import TOKEN_COOKIE
from service.people import add_user
from service.policy_book import bucket
from service.policy_rebind import REBOUND_EVENT, VOID_EVENT
from service.wiring import Exdesk
from store.db import write
from store.locks import named_lock
from tests.factories import example
from tests.service.test_policy_versions import STRICT, _delay_order, app, settings  # noqa: F401

CUSTOMS = "EX-customs-bad_hs-005"  # an HS code to fix: L2 under the default and STRICT alike


def _customs_order(order_id: str) -> dict[str, Any]:
    case = example(CUSTOMS)
    return {"order": dict(case["order"], order_id=order_id), "world": case["world"]}


def _handle(ex: Exdesk, case: dict[str, Any]) -> RunResult:
    usecases.load_world(ex, "w", World.model_validate(case["world"]))
    return usecases.handle(ex, "w", Order.model_validate(case["order"]))


def _pending(ex: Exdesk, case: dict[str, Any]) -> Proposal:
    result = _handle(ex, case)
    (pid,) = result.pending.values()
    proposal = ex.review.get(pid)
    assert (proposal.status, proposal.tier.value) == (ProposalStatus.PENDING, "L2")
    return proposal


def _approve(ex: Exdesk, pid: str, user: User) -> usecases.VoteOutcome:
    return usecases.vote(ex, pid, by=None, role=None, decision="approve", user=user)


TOKENS: dict[str, str] = {}


def _people(ex: Exdesk) -> dict[str, User]:
    sam, TOKENS["sam"] = add_user(ex, "Sam Lee", "supervisor")
    alice, _ = add_user(ex, "alice", "approver", by=sam)
    bob, _ = add_user(ex, "bob", "approver", by=sam)
    return {"sam": sam, "alice": alice, "bob": bob}


def _entries(ex: Exdesk, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
    return [(e.seq, e.event, e.payload) for e in ex.audit.entries(after_seq=after)]


def test_activation_keeps_the_approvals_it_decides_the_same_and_voids_the_others(
    app: Exdesk,  # noqa: F811
) -> None:
    people = _people(app)
    sam = people["sam"]
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.activate(app, strict.id, by=sam)  # delay notices wait for two approvals
    delay = _pending(app, _delay_order("V-1"))
    customs = _pending(app, _customs_order("V-2"))
    for proposal in (delay, customs):
        assert _approve(app, proposal.proposal_id, people["alice"]).missing
    head = app.audit.head()[0]

    policies.activate(app, 1, by=sam)  # back to the shipped default: delay notices are L1

    default_ref = app.policies.version_policy(1).ref
    voided, kept = app.review.get(delay.proposal_id), app.review.get(customs.proposal_id)
    assert voided.status is ProposalStatus.VOID and voided.policy_ref == strict.ref
    assert voided.detail is not None and f"policy version 1 ({default_ref})" in voided.detail
    assert "it puts the plan at L1, not L2" in voided.detail and "Handle order V-1" in voided.detail
    assert kept.status is ProposalStatus.PENDING and kept.policy_ref == default_ref
    assert kept.detail is not None and "decides the order the same" in kept.detail
    assert "policy version 1" in kept.detail

    # the change and what it did to the open proposals: one transaction, in this order
    entries = _entries(app, head)
    assert [e for _, e, _ in entries] == ["policy.activated", VOID_EVENT, REBOUND_EVENT]
    assert [s for s, _, _ in entries] == list(range(head + 1, head + 4))
    changed = entries[0][2]
    assert (changed["proposals_rebound"], changed["proposals_void"]) == (1, 1)
    void_entry, rebound_entry = entries[1][2], entries[2][2]
    assert void_entry["proposal_id"] == delay.proposal_id and void_entry["policy_version"] == 1
    assert void_entry["policy_before"] == strict.ref and void_entry["status"] == "void"
    assert rebound_entry["proposal_id"] == customs.proposal_id
    assert (rebound_entry["policy"], rebound_entry["differs"]) == (default_ref, None)

    # handled again (the same order, now under version 1), it goes on where it waits
    again = _handle(app, _customs_order("V-2"))
    assert again.pending and list(again.pending.values()) == [customs.proposal_id]
    assert app.review.get(customs.proposal_id).status is ProposalStatus.PENDING
    assert usecases.missing(app, app.review.get(customs.proposal_id)) is not None
    # the kept approval counts: one more and the plan runs, under the version now in force
    done = _approve(app, customs.proposal_id, people["bob"])
    assert done.run is not None
    assert [d.status.value for d in done.run.decisions.values()] == ["executed"]
    assert app.review.get(customs.proposal_id).status is ProposalStatus.EXECUTED
    # the void one takes no vote; handled again, the order is decided under version 1
    with pytest.raises(ApprovalError, match="is void"):
        _approve(app, delay.proposal_id, people["bob"])
    again = _handle(app, _delay_order("V-1"))
    assert [(d.status.value, d.tier.value) for d in again.decisions.values()] == [
        ("executed", "L1")
    ]
    assert app.audit.verify().ok


def test_the_void_is_said_on_the_proposal_in_the_cli_over_http_and_on_the_page(
    app: Exdesk,  # noqa: F811
) -> None:
    people = _people(app)
    sam = people["sam"]
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.activate(app, strict.id, by=sam)
    delay = _pending(app, _delay_order("V-3")).proposal_id
    customs = _pending(app, _customs_order("V-4")).proposal_id
    _approve(app, delay, people["alice"])
    env = {"EXDESK_DATABASE_URL": app.settings.database_url} if app.settings.database_url else {}
    data = ["--data-dir", str(app.settings.data_dir)]
    token = TOKENS["sam"]
    said = CliRunner(env=env).invoke(cli, ["policy", "activate", "1", "--token", token, *data])
    assert said.exit_code == 0, said.output
    assert "1 kept" in said.output and "1 void" in said.output

    shown = CliRunner(env=env).invoke(cli, ["review", "show", delay, *data])
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split()).replace("│ ", "").replace(" │", "")
    assert "approvals void: policy version 1" in flat, shown.output
    assert "approve with" not in flat  # a void proposal takes no vote: no digest offered
    listed = CliRunner(env=env).invoke(cli, ["review", "list", "--status", "void", *data])
    assert listed.exit_code == 0, listed.output
    assert delay in listed.output and "approvals void: policy version 1" in listed.output

    with TestClient(create_app(app.settings)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        got = client.get(f"/proposals/{delay}", headers=headers).json()
        assert got["status"] == "void" and "policy version 1" in got["detail"]
        client.cookies.set(TOKEN_COOKIE, token)
        page = client.get(f"/ui/proposals/{delay}")
        policy_page = client.get("/ui/policy").text
        queue = client.get("/ui/queue?status=void").text
        assert delay in queue and "approvals void: policy version 1" in queue
        back = client.post("/policies/rollback", json={}, headers=headers).json()
        assert back["proposals"] == {"rebound": 1, "void": 0}  # the void one stays void
        kept = client.get(f"/proposals/{customs}", headers=headers).json()
        assert kept["status"] == "pending" and "put back by a rollback" in kept["detail"]
    said_there = " ".join(policy_page[policy_page.index('id="rebinds"') :].split())
    assert said_there.startswith('id="rebinds">That change decided the open proposals')
    assert "1 kept" in said_there and "1 void</a>" in said_there
    assert page.status_code == 200 and "approvals void: policy version 1" in page.text


def test_a_rollout_and_the_kill_switch_redecide_only_the_orders_they_move(
    app: Exdesk,  # noqa: F811
) -> None:
    people = _people(app)
    sam = people["sam"]
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.activate(app, strict.id, by=sam)
    ids = [f"R-{n}" for n in range(60)]
    inside = [i for i in ids if bucket(1, i) < 25][:2]  # version 1 rolled out to 25 %
    outside = next(i for i in ids if bucket(1, i) >= 25)
    moved_delay = _pending(app, _delay_order(inside[0]))
    moved_customs = _pending(app, _customs_order(inside[1]))
    stays = _pending(app, _delay_order(outside))
    head = app.audit.head()[0]

    policies.set_candidate(app, 1, mode="rollout", percent=25, by=sam)
    default_ref = app.policies.version_policy(1).ref
    assert app.review.get(moved_delay.proposal_id).status is ProposalStatus.VOID
    assert "rolled out to 25 % of the orders" in (
        app.review.get(moved_delay.proposal_id).detail or ""
    )
    assert app.review.get(moved_customs.proposal_id).policy_ref == default_ref
    assert app.review.get(stays.proposal_id) == stays  # not in the share: untouched
    events = [e for _, e, _ in _entries(app, head)]
    assert events == ["policy.rolled_out", VOID_EVENT, REBOUND_EVENT]

    head = app.audit.head()[0]
    policies.kill(app, by=sam)  # back to the active version: decided again under it
    back = app.review.get(moved_customs.proposal_id)
    assert back.status is ProposalStatus.PENDING and back.policy_ref == strict.ref
    assert "back in force by the kill switch" in (back.detail or "")
    assert [e for _, e, _ in _entries(app, head)] == ["policy.killed", REBOUND_EVENT]
    head = app.audit.head()[0]
    policies.set_candidate(app, 1, mode="shadow", by=sam)  # a shadow decides nothing
    assert [e for _, e, _ in _entries(app, head)] == ["policy.shadowed"]


def test_kept_approvals_are_counted_again_under_the_new_rules(
    app: Exdesk,  # noqa: F811
) -> None:
    people = _people(app)
    sam = people["sam"]
    customs = _pending(app, _customs_order("A-1"))
    pid = customs.proposal_id

    def approved_then_crashed(conn: Any) -> None:  # two votes in, the plan not run yet
        for who in (people["alice"], people["bob"]):
            vote = Vote(
                by=who.name,
                person=who.person,
                role=who.role,
                decision="approve",
                plan_digest=customs.plan_digest,
                at=customs.created_at,
            )
            app.review.add_vote(conn, pid, vote)
        app.review.set_status(conn, pid, ProposalStatus.APPROVED, "approvals complete")

    write(app.engine, approved_then_crashed)
    three = STRICT.replace(
        "[approvals.L2]\napprovals = 2", "[approvals.L2]\napprovals = 3"
    ).replace('"2026-12-06.2-strict"', '"2026-12-06.3-three"')
    assert "approvals = 3" in three
    version = policies.import_policy(app, three, "three.toml", by=sam).version
    policies.activate(app, version.id, by=sam)
    kept = app.review.get(pid)
    assert kept.status is ProposalStatus.PENDING and kept.policy_ref == version.ref
    assert "still needs 1 more approval(s)" in (kept.detail or "")
    assert usecases.missing(app, kept) is not None
    policies.rollback(app, by=sam)  # two approvals are enough again
    assert app.review.get(pid).status is ProposalStatus.APPROVED
    assert "the approvals are complete" in (app.review.get(pid).detail or "")
    ran = usecases.resume(app, app.review.get(pid))
    assert [d.status.value for d in ran.decisions.values()] == ["executed"]


def test_a_change_whose_audit_entries_fail_changes_nothing(
    app: Exdesk,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = _people(app)
    sam = people["sam"]
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.activate(app, strict.id, by=sam)
    delay = _pending(app, _delay_order("T-1"))
    customs = _pending(app, _customs_order("T-2"))
    state = app.policy_store.state()
    append_many = app.audit.append_many

    def failing(items: Any, **kwargs: Any) -> Any:
        if any(event == REBOUND_EVENT for _, event, _ in items):
            raise RuntimeError("the disk is full")
        return append_many(items, **kwargs)

    monkeypatch.setattr(app.audit, "append_many", failing)
    with pytest.raises(RuntimeError, match="disk is full"):
        policies.activate(app, 1, by=sam)
    monkeypatch.undo()
    assert app.policy_store.state() == state
    assert app.review.get(delay.proposal_id) == delay
    assert app.review.get(customs.proposal_id) == customs
    assert not [e for e in app.audit.entries() if e.event in (VOID_EVENT, REBOUND_EVENT)]
    assert app.audit.verify().ok


def test_an_approved_plan_whose_order_is_being_run_is_left_to_that_run(
    app: Exdesk,  # noqa: F811
) -> None:
    """A change never voids a plan under a run that may be carrying it out: the approved
    proposal of an order another process holds is left as it is, and a resume that comes
    after the change finds the policy changed and fails closed (nothing runs)."""
    people = _people(app)
    sam = people["sam"]
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.activate(app, strict.id, by=sam)
    busy = _pending(app, _delay_order("L-1"))
    free = _pending(app, _delay_order("L-2"))

    def approved_then_crashed(conn: Any) -> None:
        for proposal in (busy, free):
            for who in (people["alice"], people["bob"]):
                vote = Vote(
                    by=who.name,
                    person=who.person,
                    role=who.role,
                    decision="approve",
                    plan_digest=proposal.plan_digest,
                    at=proposal.created_at,
                )
                app.review.add_vote(conn, proposal.proposal_id, vote)
            app.review.set_status(conn, proposal.proposal_id, ProposalStatus.APPROVED)

    write(app.engine, approved_then_crashed)
    with named_lock(app.engine, "order:w/L-1", timeout=5):  # another process is on L-1
        policies.activate(app, 1, by=sam)
    left = app.review.get(busy.proposal_id)
    assert (left.status, left.policy_ref) == (ProposalStatus.APPROVED, strict.ref)
    assert app.review.get(free.proposal_id).status is ProposalStatus.VOID
    touched = [e.payload["proposal_id"] for e in app.audit.entries() if e.event == VOID_EVENT]
    assert touched == [free.proposal_id]

    ran = usecases.resume(app, left)  # after the change: the approvals no longer bind
    assert [d.status.value for d in ran.decisions.values()] == ["failed"]
    after = app.review.get(busy.proposal_id)
    assert after.status is ProposalStatus.VOID and "the policy changed" in (after.detail or "")
    sent = [
        e
        for e in app.audit.entries()
        if e.event == "tool.called" and e.payload.get("args", {}).get("order_id") == "L-1"
    ]
    ops = {f"{e.payload['tool']}.{e.payload['op']}" for e in sent}
    assert ops == {"orders.place_hold"}  # held for approval, then for a person: nothing sent


def test_a_plan_a_person_edited_keeps_its_actions_and_is_tiered_as_an_edit(
    app: Exdesk,  # noqa: F811
) -> None:
    people = _people(app)
    sam = people["sam"]
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.activate(app, strict.id, by=sam)
    proposal = _pending(app, _customs_order("E-1"))
    (line,) = proposal.plan.actions[0].args["changes"]
    change = review.ActionEdit(0, {"changes": {line: {"hs_code": "761610"}}})
    edited = review.edit(
        app, proposal.proposal_id, user=people["bob"], changes=[change], digest=None
    )
    assert edited.earlier_plans and edited.plan.actions != proposal.plan.actions
    _approve(app, edited.proposal_id, people["alice"])

    policies.activate(app, 1, by=sam)  # decides HS code fixes as STRICT does: kept as edited
    kept = app.review.get(edited.proposal_id)
    assert (kept.status, kept.plan, kept.tier.value) == (ProposalStatus.PENDING, edited.plan, "L2")
    assert "decides the order the same" in (kept.detail or "")
    assert [v.by for v in app.review.votes(kept.proposal_id)] == ["alice"]

    higher = STRICT.replace('customs_fix_hs_code = "L2"', 'customs_fix_hs_code = "L3"').replace(
        '"2026-12-06.2-strict"', '"2026-12-06.4-l3"'
    )
    assert 'customs_fix_hs_code = "L3"' in higher
    version = policies.import_policy(app, higher, "l3.toml", by=sam).version
    policies.activate(app, version.id, by=sam)
    voided = app.review.get(edited.proposal_id)
    assert voided.status is ProposalStatus.VOID
    assert "it puts the plan at L3, not L2" in (voided.detail or "")
