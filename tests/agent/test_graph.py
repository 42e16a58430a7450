"""The graph end to end: L1 runs, L2/L3 wait for the right people, approvals bind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.execute import run_plan
from agent.runner import RunResult
from domain.errors import ApprovalError
from domain.models import Order, Plan, World
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import example

POLICY_TEXT = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()


@pytest.fixture
def app(tmp_path: Path) -> Any:
    desk = Exdesk(Settings(data_dir=tmp_path / "data"))
    yield desk
    desk.close()


def start(app: Exdesk, case: dict[str, Any], world_id: str = "w") -> RunResult:
    app.store.put_world(world_id, World.model_validate(case["world"]))
    app.store.upsert_order(world_id, Order.model_validate(case["order"]))
    return app.runner.handle(app.desk(world_id), case["order"]["order_id"])


def vote(
    app: Exdesk,
    pid: str,
    by: str,
    role: str = "approver",
    reason: str | None = None,
    decision: str = "approve",
) -> None:
    app.review.vote(
        pid, by=by, role=role, decision=decision, reason=reason, plan_digest=None, policy=app.policy
    )


def resume(app: Exdesk, pid: str) -> RunResult:
    proposal = app.review.get(pid)
    return app.runner.resume(app.desk(proposal.world_id), proposal.thread_id)


def test_l1_plans_run_at_once(app: Exdesk) -> None:
    result = start(app, example("EX-multi-011"))
    assert {k: d["status"] for k, d in result.decisions.items()} == {
        "bad_address": "executed",
        "stockout": "executed",
    }
    assert result.order_after.status == "open"
    assert result.order_after.ship_to.postal_code == "310013"
    assert result.order_after.fulfillment.warehouse_id == "WH-SZX"
    assert app.desk("w").sim.snapshot().inventory  # saved world loads
    stock = {(r.warehouse_id, r.sku): r.reserved for r in app.desk("w").sim.snapshot().inventory}
    assert stock[("WH-SZX", "CASE-PH-15B")] == 3
    assert app.audit.verify().ok


def test_l2_needs_two_different_people(app: Exdesk) -> None:
    result = start(app, example("EX-customs-bad_hs-005"))
    decision = result.decisions["customs_block"]
    assert decision["status"] == "awaiting_approval"
    pid = decision["proposal_id"]
    assert result.order_after.status == "on_hold"
    assert result.order_after.lines[2].hs_code == "12AB56"

    vote(app, pid, "alice")
    with pytest.raises(ApprovalError, match="already voted"):
        vote(app, pid, "alice")
    waiting = resume(app, pid)
    assert waiting.decisions["customs_block"]["status"] == "awaiting_approval"
    assert waiting.pending == {"customs_block": pid}

    vote(app, pid, "bob", role="supervisor")
    done = resume(app, pid)
    assert done.decisions["customs_block"]["status"] == "executed"
    assert done.order_after.lines[2].hs_code == "761699"
    assert done.order_after.status == "open" and done.order_after.holds == ()
    assert app.review.get(pid).status == "executed"
    assert app.audit.verify().ok


def test_the_agent_never_approves(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions["customs_block"]["proposal_id"]
    for name in ("agent", "exdesk", "Agent"):
        with pytest.raises(ApprovalError, match="never approves"):
            vote(app, pid, name)


def test_l3_needs_a_supervisor_with_a_reason(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-prohibited-004")).decisions["customs_block"]["proposal_id"]
    vote(app, pid, "alice")
    vote(app, pid, "bob")
    assert resume(app, pid).decisions["customs_block"]["status"] == "awaiting_approval"
    with pytest.raises(ApprovalError, match="written reason"):
        vote(app, pid, "carol", role="supervisor")
    vote(app, pid, "carol", role="supervisor", reason="customs confirmed the goods are prohibited")
    done = resume(app, pid)
    assert done.decisions["customs_block"]["status"] == "executed"
    assert done.order_after.status == "cancelled"
    assert done.order_after.payment.status == "refunded"
    channels = [m["channel"] for m in app.store.outbox("w", "EX-0004")]
    assert "refund" in channels


def test_rejection_leaves_the_order_with_a_person(app: Exdesk) -> None:
    pid = start(app, example("EX-stock-substitute-007")).decisions["stockout"]["proposal_id"]
    with pytest.raises(ApprovalError, match="needs a reason"):
        vote(app, pid, "alice", decision="reject")
    vote(app, pid, "alice", decision="reject", reason="customer wants black")
    result = resume(app, pid)
    assert result.decisions["stockout"]["status"] == "rejected"
    assert result.order_after.status == "on_hold"
    assert "needs a person" in result.order_after.holds[0].reason
    assert result.order_after.lines[0].sku == "TEE-COT-BLK"


def test_a_changed_order_voids_the_approvals(app: Exdesk) -> None:
    case = example("EX-customs-bad_hs-005")
    pid = start(app, case).decisions["customs_block"]["proposal_id"]
    changed = Order.model_validate(case["order"]).model_copy(update={"notes": "please gift wrap"})
    assert app.store.upsert_order("w", changed) == 2
    vote(app, pid, "alice")
    vote(app, pid, "bob")
    result = resume(app, pid)
    assert result.decisions["customs_block"]["status"] == "failed"
    assert "order changed" in result.decisions["customs_block"]["detail"]
    assert app.review.get(pid).status == "void"
    assert result.order_after.lines[2].hs_code == "12AB56"  # nothing ran
    assert result.order_after.status == "on_hold"


def test_a_changed_policy_voids_the_approvals(app: Exdesk, tmp_path: Path) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions["customs_block"]["proposal_id"]
    vote(app, pid, "alice")
    vote(app, pid, "bob")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_TEXT.replace('version = "2026-11-22.1"', 'version = "2026-11-23.1"'))
    other = Exdesk(Settings(data_dir=app.settings.data_dir, policy_file=policy))
    try:
        result = resume(other, pid)
    finally:
        other.close()
    assert result.decisions["customs_block"]["status"] == "failed"
    assert "policy changed" in result.decisions["customs_block"]["detail"]


def test_a_paused_thread_survives_a_restart(app: Exdesk) -> None:
    pid = start(app, example("EX-stock-late-006")).decisions["stockout"]["proposal_id"]
    app.close()
    again = Exdesk(Settings(data_dir=app.settings.data_dir))
    try:
        vote(again, pid, "alice")
        vote(again, pid, "bob")
        result = resume(again, pid)
        assert result.decisions["stockout"]["status"] == "executed"
        assert result.order_after.fulfillment.backorder_eta is not None
        assert result.order_after.status == "open"
        assert again.audit.verify().ok
    finally:
        again.close()


def test_a_failing_step_is_compensated(app: Exdesk) -> None:
    case = example("EX-inject-stock-012")
    app.store.put_world("w", World.model_validate(case["world"]))
    app.store.upsert_order("w", Order.model_validate(case["order"]))
    desk = app.desk("w")
    desk.sim.faults["orders.set_fulfillment"] = "order service down"
    result = app.runner.handle(desk, "EX-0012")
    decision = result.decisions["stockout"]
    assert decision["status"] == "failed"
    assert "order service down" in decision["detail"]
    assert result.order_after.fulfillment.warehouse_id == "WH-SHA"
    assert result.order_after.status == "on_hold"  # left with a person
    stock = {(r.warehouse_id, r.sku): r.reserved for r in app.desk("w").sim.snapshot().inventory}
    assert stock[("WH-SZX", "HDP-BT-200")] == 0  # the reservation was released
    events = [e.event for e in app.audit.entries()]
    assert "tool.failed" in events
    assert app.audit.verify().ok


def test_running_a_plan_twice_has_one_effect(app: Exdesk) -> None:
    result = start(app, example("EX-inject-stock-012"))
    plan = Plan.model_validate(result.plans["stockout"][0])
    desk = app.desk("w")
    assert run_plan(desk, "EX-0012", plan).ok
    desk.commit()
    stock = {(r.warehouse_id, r.sku): r.reserved for r in app.desk("w").sim.snapshot().inventory}
    assert stock[("WH-SZX", "HDP-BT-200")] == 3


def test_approving_a_stale_digest_is_refused(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions["customs_block"]["proposal_id"]
    with pytest.raises(ApprovalError, match="plan changed"):
        app.review.vote(
            pid,
            by="alice",
            role="approver",
            decision="approve",
            reason=None,
            plan_digest="0" * 64,
            policy=app.policy,
        )


def test_re_running_an_unchanged_order_keeps_its_proposal_and_votes(app: Exdesk) -> None:
    case = example("EX-customs-bad_hs-005")
    pid = start(app, case).decisions["customs_block"]["proposal_id"]
    vote(app, pid, "alice")
    again = app.runner.handle(app.desk("w"), "EX-0005")
    assert again.decisions["customs_block"]["proposal_id"] == pid
    assert app.review.get(pid).thread_id == again.thread_id  # the newest run is woken
    vote(app, pid, "bob")
    assert resume(app, pid).decisions["customs_block"]["status"] == "executed"


def test_a_changed_order_gets_a_new_proposal_and_the_old_one_is_superseded(app: Exdesk) -> None:
    case = example("EX-customs-bad_hs-005")
    first = start(app, case).decisions["customs_block"]["proposal_id"]
    changed = Order.model_validate(case["order"]).model_copy(update={"notes": "call first"})
    app.store.upsert_order("w", changed)
    second = app.runner.handle(app.desk("w"), "EX-0005").decisions["customs_block"]["proposal_id"]
    assert second != first
    assert app.review.get(first).status == "superseded"
    with pytest.raises(ApprovalError, match="superseded"):
        vote(app, first, "alice")


def test_re_running_repeats_no_side_effect(app: Exdesk) -> None:
    case = example("EX-delay-009")
    start(app, case)
    app.runner.handle(app.desk("w"), "EX-0009")
    assert [m["template"] for m in app.store.outbox("w", "EX-0009")] == ["delay"]


def test_an_approved_proposal_runs_without_a_wake_up_when_drafted_again(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions["customs_block"]["proposal_id"]
    vote(app, pid, "alice")
    vote(app, pid, "bob")
    again = app.runner.handle(app.desk("w"), "EX-0005")  # nobody resumed the first thread
    assert again.decisions["customs_block"]["status"] == "executed"
    assert again.order_after.status == "open"


def test_nothing_runs_on_an_order_cancelled_meanwhile(app: Exdesk) -> None:
    case = example("EX-customs-prohibited-004")
    for row in case["world"]["inventory"]:
        if row["warehouse_id"] == "WH-SZX" and row["sku"] == "WCH-SMT-01":
            row["on_hand"] = 0
    for row in case["world"]["inventory"]:
        if row["sku"] == "WCH-SMT-01" and row["warehouse_id"] != "WH-SZX":
            row["on_hand"] = 0
    case["world"]["replenishment"] = [
        {
            "warehouse_id": "WH-SZX",
            "sku": "WCH-SMT-01",
            "qty": 5,
            "eta": "2026-12-20T09:00:00+08:00",
        }
    ]
    result = start(app, case)
    cancel = result.decisions["customs_block"]["proposal_id"]
    late = result.decisions["stockout"]["proposal_id"]
    for by, role, reason in (("sue", "supervisor", "prohibited"), ("bob", "approver", None)):
        vote(app, cancel, by, role, reason)
    assert resume(app, cancel).order_after.status == "cancelled"
    vote(app, late, "alice")
    vote(app, late, "bob")
    result = resume(app, late)
    assert result.decisions["stockout"]["status"] == "failed"
    assert "cancelled" in result.decisions["stockout"]["detail"]
    assert result.order_after.fulfillment.backorder_eta is None
    assert result.order_after.holds == ()
