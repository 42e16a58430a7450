"""The graph end to end: L1 runs, L2/L3 wait for the right people, approvals bind, re-runs
replay, failures are compensated."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import playbooks
from agent.detect import detect
from agent.execute import run_plan
from agent.inputs import detected_payload, policy_entry
from agent.replay import replay
from agent.runner import RunResult, thread_id_for
from domain.errors import ApprovalError
from domain.models import Kind, Order, ProposalStatus, Vote, World
from knowledge.errors import CaseMemoryUnavailable
from service import usecases
from service.replay import checkers
from service.settings import Settings
from service.wiring import Exdesk
from store.db import write
from tests.factories import example, held, start, vote

POLICY_TEXT = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()
STOCKOUT, CUSTOMS = Kind.STOCKOUT, Kind.CUSTOMS_BLOCK


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Exdesk]:
    desk = Exdesk(Settings(data_dir=tmp_path / "data"))
    yield desk
    desk.close()


def resume(app: Exdesk, pid: str) -> RunResult:
    return usecases.resume(app, app.review.get(pid))


def test_l1_plans_run_at_once(app: Exdesk) -> None:
    result = start(app, example("EX-multi-011"))
    assert {k: d.status for k, d in result.decisions.items()} == {
        Kind.BAD_ADDRESS: "executed",
        STOCKOUT: "executed",
    }
    assert result.order_after.status == "open"
    assert result.order_after.ship_to.postal_code == "310013"
    assert result.order_after.fulfillment.warehouse_id == "WH-SZX"
    assert held(app)[("WH-SZX", "CASE-PH-15B")] == 3
    assert app.audit.verify().ok


def test_l2_needs_two_different_people(app: Exdesk) -> None:
    result = start(app, example("EX-customs-bad_hs-005"))
    decision = result.decisions[CUSTOMS]
    assert decision.status == "awaiting_approval"
    pid = decision.proposal_id
    assert pid is not None
    assert result.order_after.status == "on_hold"
    assert result.order_after.lines[2].hs_code == "12AB56"

    first = vote(app, pid, "alice")
    assert first.run is None and "1 more approval" in (first.missing or "")
    with pytest.raises(ApprovalError, match="already voted"):
        vote(app, pid, "alice")
    waiting = resume(app, pid)
    assert waiting.decisions[CUSTOMS].status == "awaiting_approval"
    assert waiting.pending == {CUSTOMS: pid}

    done = vote(app, pid, "bob", role="supervisor").run
    assert done is not None
    assert done.decisions[CUSTOMS].status == "executed"
    assert done.order_after.lines[2].hs_code == "761699"
    assert done.order_after.status == "open" and done.order_after.holds == ()
    assert app.review.get(pid).status is ProposalStatus.EXECUTED
    assert app.audit.verify().ok


def test_the_agent_never_approves(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions[CUSTOMS].proposal_id
    assert pid is not None
    for name in ("agent", "exdesk", "Agent", "exdesk-agent", "ｅｘｄｅｓｋ", "ex\u200bdesk"):
        with pytest.raises(ApprovalError, match="never approves"):
            vote(app, pid, name)


def test_the_same_person_under_another_spelling_votes_once(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions[CUSTOMS].proposal_id
    assert pid is not None
    vote(app, pid, "Alice Wong")
    for alias in ("alice wong", "Ali ceWong", "Alice\u200bWong", "ＡＬＩＣＥ ＷＯＮＧ"):
        with pytest.raises(ApprovalError, match="already voted"):
            vote(app, pid, alias)
    assert app.review.get(pid).status is ProposalStatus.PENDING


def test_l3_needs_a_supervisor_with_a_reason(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-prohibited-004")).decisions[CUSTOMS].proposal_id
    assert pid is not None
    vote(app, pid, "alice")
    vote(app, pid, "bob")
    assert resume(app, pid).decisions[CUSTOMS].status == "awaiting_approval"
    with pytest.raises(ApprovalError, match="written reason"):
        vote(app, pid, "carol", role="supervisor")
    done = vote(app, pid, "carol", "supervisor", "customs confirmed the goods are prohibited").run
    assert done is not None
    assert done.decisions[CUSTOMS].status == "executed"
    assert done.order_after.status == "cancelled"
    assert done.order_after.payment.status == "refunded"
    assert "refund" in [m["channel"] for m in app.backend("w").outbox("EX-0004")]


def test_rejection_leaves_the_order_with_a_person(app: Exdesk) -> None:
    pid = start(app, example("EX-stock-substitute-007")).decisions[STOCKOUT].proposal_id
    assert pid is not None
    with pytest.raises(ApprovalError, match="needs a reason"):
        vote(app, pid, "alice", decision="reject")
    result = vote(app, pid, "alice", reason="customer wants black", decision="reject").run
    assert result is not None
    assert result.decisions[STOCKOUT].status == "rejected"
    assert result.order_after.status == "on_hold"
    assert "needs a person" in result.order_after.holds[0].reason
    assert result.order_after.lines[0].sku == "TEE-COT-BLK"


def test_a_changed_order_voids_the_approvals(app: Exdesk) -> None:
    case = example("EX-customs-bad_hs-005")
    pid = start(app, case).decisions[CUSTOMS].proposal_id
    assert pid is not None
    changed = Order.model_validate(case["order"]).model_copy(update={"notes": "please gift wrap"})
    assert usecases.submit(app, "w", changed).version == 2
    vote(app, pid, "alice")
    result = vote(app, pid, "bob").run
    assert result is not None
    assert result.decisions[CUSTOMS].status == "failed"
    assert "order changed" in (result.decisions[CUSTOMS].detail or "")
    assert app.review.get(pid).status is ProposalStatus.VOID
    assert result.order_after.lines[2].hs_code == "12AB56"  # nothing ran
    assert result.order_after.status == "on_hold"


def test_a_changed_policy_voids_the_approvals(app: Exdesk, tmp_path: Path) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions[CUSTOMS].proposal_id
    assert pid is not None
    vote(app, pid, "alice")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_TEXT.replace('version = "2026-12-06.1"', 'version = "2026-12-07.1"'))
    other = Exdesk(Settings(data_dir=app.settings.data_dir, policy_file=policy))
    try:
        result = vote(other, pid, "bob").run
    finally:
        other.close()
    assert result is not None
    assert result.decisions[CUSTOMS].status == "failed"
    assert "policy changed" in (result.decisions[CUSTOMS].detail or "")


def test_a_paused_thread_survives_a_restart(app: Exdesk) -> None:
    pid = start(app, example("EX-stock-late-006")).decisions[STOCKOUT].proposal_id
    assert pid is not None
    app.close()
    again = Exdesk(Settings(data_dir=app.settings.data_dir))
    try:
        vote(again, pid, "alice")
        result = vote(again, pid, "bob").run
        assert result is not None
        assert result.decisions[STOCKOUT].status == "executed"
        assert result.order_after.fulfillment.backorder_eta is not None
        assert result.order_after.status == "open"
        assert again.audit.verify().ok
    finally:
        again.close()


def test_a_failing_step_is_compensated(app: Exdesk) -> None:
    app.faults["orders.set_fulfillment"] = "fail:order service down"
    result = start(app, example("EX-inject-stock-012"))
    decision = result.decisions[STOCKOUT]
    assert decision.status == "failed"
    assert "order service down" in (decision.detail or "")
    assert result.order_after.fulfillment.warehouse_id == "WH-SHA"
    assert result.order_after.status == "on_hold"  # left with a person
    assert held(app)[("WH-SZX", "HDP-BT-200")] == 0  # the reservation was released
    events = [e.event for e in app.audit.entries()]
    assert "tool.failed" in events
    assert app.audit.verify().ok


def test_running_a_plan_twice_has_one_effect(app: Exdesk) -> None:
    result = start(app, example("EX-inject-stock-012"))
    plan = result.plans[STOCKOUT][0]
    assert run_plan(app.desk("w"), "EX-0012", plan).ok
    assert held(app)[("WH-SZX", "HDP-BT-200")] == 3


def test_approving_a_wrong_digest_is_refused_and_says_so(app: Exdesk) -> None:
    pid = start(app, example("EX-customs-bad_hs-005")).decisions[CUSTOMS].proposal_id
    assert pid is not None
    with pytest.raises(ApprovalError, match="is not a digest of this proposal"):
        usecases.vote(app, pid, by="alice", role="approver", decision="approve", digest="0" * 64)
    assert app.review.votes(pid) == []


def test_re_running_an_unchanged_order_keeps_its_proposal_and_votes(app: Exdesk) -> None:
    case = example("EX-customs-bad_hs-005")
    first = start(app, case)
    pid = first.decisions[CUSTOMS].proposal_id
    assert pid is not None
    vote(app, pid, "alice")
    again = start(app, case)
    assert again.thread_id == first.thread_id
    assert again.decisions[CUSTOMS].proposal_id == pid
    assert [v.by for v in app.review.votes(pid)] == ["alice"]
    done = vote(app, pid, "bob").run
    assert done is not None and done.decisions[CUSTOMS].status == "executed"


def test_a_changed_order_gets_a_new_proposal_and_the_old_one_is_superseded(app: Exdesk) -> None:
    case = example("EX-customs-bad_hs-005")
    first = start(app, case).decisions[CUSTOMS].proposal_id
    case["order"]["notes"] = "call first"
    second = start(app, case).decisions[CUSTOMS].proposal_id
    assert second != first and first is not None
    assert app.review.get(first).status is ProposalStatus.SUPERSEDED
    with pytest.raises(ApprovalError, match="superseded"):
        vote(app, first, "alice")


def test_re_running_repeats_no_side_effect(app: Exdesk) -> None:
    case = example("EX-delay-009")
    start(app, case)
    start(app, case)
    assert [m["template"] for m in app.backend("w").outbox("EX-0009")] == ["delay"]


def _approve_without_running(app: Exdesk, pid: str) -> None:
    """The vote transactions of an approval whose process died before the plan ran."""
    proposal = app.review.get(pid)

    def work(conn: object) -> None:
        for name in ("alice", "bob"):
            cast = Vote(
                by=name,
                person=name,
                role="approver",
                decision="approve",
                plan_digest=proposal.plan_digest,
                at=datetime.now(UTC),
            )
            app.review.add_vote(conn, pid, cast)  # type: ignore[arg-type]
        app.review.set_status(conn, pid, ProposalStatus.APPROVED, "approvals complete")  # type: ignore[arg-type]

    write(app.engine, work)  # type: ignore[arg-type]


@pytest.mark.parametrize("finish", ["handle again", "approve again", "review resume"])
def test_an_approval_cut_short_is_finished(app: Exdesk, finish: str) -> None:
    case = example("EX-customs-bad_hs-005")
    pid = start(app, case).decisions[CUSTOMS].proposal_id
    assert pid is not None
    _approve_without_running(app, pid)
    if finish == "handle again":
        result = start(app, case)
    elif finish == "approve again":
        run = vote(app, pid, "alice").run
        assert run is not None
        result = run
    else:
        result = resume(app, pid)
    assert result.decisions[CUSTOMS].status == "executed"
    assert result.order_after.status == "open"
    assert app.review.get(pid).status is ProposalStatus.EXECUTED


def test_nothing_runs_on_an_order_cancelled_meanwhile(app: Exdesk) -> None:
    case = example("EX-customs-prohibited-004")
    for row in case["world"]["inventory"]:
        if row["sku"] == "WCH-SMT-01":
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
    cancel = result.decisions[CUSTOMS].proposal_id
    late = result.decisions[STOCKOUT].proposal_id
    assert cancel is not None and late is not None
    vote(app, cancel, "sue", "supervisor", "prohibited")
    cancelled = vote(app, cancel, "bob").run
    assert cancelled is not None and cancelled.order_after.status == "cancelled"
    vote(app, late, "alice")
    result = vote(app, late, "bob").run  # type: ignore[assignment]
    assert result is not None
    assert result.decisions[STOCKOUT].status == "failed"
    assert "cancelled" in (result.decisions[STOCKOUT].detail or "")
    assert result.order_after.fulfillment.backorder_eta is None
    assert result.order_after.holds == ()


class BusyMemory:
    """A case memory other processes keep busy past the wait."""

    def evidence(self, *args: object, **kwargs: object) -> list[object]:
        raise CaseMemoryUnavailable("the case memory was busy for 120 s")

    def learn(self, case: object) -> bool:
        raise CaseMemoryUnavailable("busy")

    def import_cases(self, cases: object, *, batch_size: int = 256) -> int:
        raise CaseMemoryUnavailable("busy")

    def count(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_a_busy_case_memory_is_gone_around_and_recorded(tmp_path: Path) -> None:
    app = Exdesk(Settings(data_dir=tmp_path / "data"), memory=BusyMemory())  # type: ignore[arg-type]
    try:
        result = start(app, example("EX-inject-stock-012"))
        assert result.decisions[STOCKOUT].status == "executed"
        (entry,) = [e for e in app.audit.entries() if e.event == "cases.unavailable"]
        assert "busy" in entry.payload["why"]
    finally:
        app.close()


def test_the_longest_ids_fit_every_database(app: Exdesk) -> None:
    case = example("EX-customs-bad_hs-005")
    case["order"]["order_id"] = "O" * 200
    result = start(app, case, world_id="W" * 200)
    assert result.decisions[CUSTOMS].status == "awaiting_approval"
    assert len(result.thread_id) < 60
    keys = [e.payload["key"] for e in app.audit.entries() if e.event == "tool.called"]
    assert keys and max(len(k) for k in keys) <= 200


def test_a_thread_that_lost_a_step_is_run_again_without_repeating(app: Exdesk) -> None:
    case = example("EX-payment-008")
    first = start(app, case)
    config = {"configurable": {"thread_id": first.thread_id}}
    graph = app.runner._graph
    # as if a crash had lost the steps after the gate: the thread looks ended, unrecorded
    graph.update_state(config, {"recorded": False}, as_node="record")
    assert graph.get_state(config).next == ()
    entries = len(list(app.audit.entries()))
    again = start(app, case)
    assert graph.get_state(config).values["recorded"] is True
    assert again.decisions == first.decisions
    assert len(app.backend("w").outbox("EX-0008")) == 1
    assert [e.event for e in app.audit.entries()][entries:] == ["world.loaded"]


@pytest.mark.parametrize("case_id", ["EX-multi-011", "EX-stock-substitute-007"])
def test_a_thread_checkpointed_before_detect_ranked_goes_on_where_it_stopped(
    tmp_path: Path, case_id: str
) -> None:
    """A thread of an earlier version, stopped after the detect step that did not yet
    retrieve and rank (``retrieve`` next), ends as a new thread does, with the same entries."""
    case = example(case_id)
    fresh = Exdesk(Settings(data_dir=tmp_path / "fresh"))
    want = start(fresh, case)
    fresh_events = [e.event for e in fresh.audit.entries()]
    fresh.close()
    app = Exdesk(Settings(data_dir=tmp_path / "earlier"))
    try:
        order = Order.model_validate(case["order"])
        usecases.load_world(app, "w", World.model_validate(case["world"]))
        usecases.submit(app, "w", order)
        desk = app.desk("w", order.order_id)
        thread = thread_id_for(desk, order.order_id, 1)
        ctx = desk.context(order.order_id)
        findings = detect(ctx)
        # what the earlier detect step recorded and kept
        policy_item, policy_key = policy_entry(desk.policy)
        detected = detected_payload(desk.world_id, ctx, findings, version=1, thread_id=thread)
        app.audit.append_many(
            [policy_item, ("agent", "order.detected", detected)],
            keys=[policy_key, f"{thread}:detected"],
        )
        config = {"configurable": {"thread_id": thread}}
        graph = app.runner._graph
        kept = {"thread_id": thread, "order_id": order.order_id, "order_version": 1}
        drafts = {f.kind: playbooks.draft(ctx, f) for f in findings}
        graph.update_state(
            config, {**kept, "findings": findings, "drafts": drafts}, as_node="draft"
        )
        assert graph.get_state(config).next == ("retrieve",)
        result = app.runner.handle(desk, order.order_id)
        assert {k: d.status for k, d in result.decisions.items()} == {
            k: d.status for k, d in want.decisions.items()
        }
        events = [e.event for e in app.audit.entries()]
        after = fresh_events.index("order.detected")
        assert events[events.index("order.detected") :] == fresh_events[after:]
        report = replay(app.audit.entries(), checkers(), app.audit.clear_values)
        assert report.mismatches == [] and report.reproduced == report.decisions
    finally:
        app.close()
