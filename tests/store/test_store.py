"""The store and the review queue, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from domain.errors import ApprovalError, InputError
from domain.models import Action, Order, Plan, World
from domain.policy import default_policy, parse_policy
from store.db import create_schema
from store.review import ReviewQueue
from store.worlds import WorldStore
from tests.factories import example
from tools.simulated import simulated_toolbox

POLICY = default_policy()


@pytest.fixture
def store(db_engine: Engine) -> WorldStore:
    create_schema(db_engine)
    return WorldStore(db_engine)


def put(store: WorldStore, case_id: str = "EX-multi-011") -> Order:
    case = example(case_id)
    store.put_world("w", World.model_validate(case["world"]))
    order = Order.model_validate(case["order"])
    store.upsert_order("w", order)
    return order


def test_unknown_world_says_how_to_load_it(store: WorldStore) -> None:
    with pytest.raises(InputError, match="--world"):
        store.load("nope")


def test_order_version_rises_only_when_the_order_changes(store: WorldStore) -> None:
    order = put(store)
    assert store.upsert_order("w", order) == 1
    assert store.upsert_order("w", order.model_copy(update={"notes": "ring twice"})) == 2
    assert store.order_version("w", order.order_id) == 2


def test_what_tools_change_is_saved_and_loaded_back(store: WorldStore) -> None:
    order = put(store)
    sim = store.load("w")
    tools = simulated_toolbox(sim)
    tools.inventory.reserve("WH-SZX", "CASE-PH-15B", 3, key="k1")
    tools.orders.set_fulfillment(order.order_id, {"warehouse_id": "WH-SZX"}, key="k2")
    tools.orders.place_hold(order.order_id, "stockout", "test", key="k3")
    tools.call(
        Action(
            tool="notify",
            op="send",
            args={"order_id": order.order_id, "template": "hello", "data": {"x": 1}},
        ),
        key="k4",
    )
    store.save("w", sim)

    again = store.load("w")
    reloaded = again.order(order.order_id)
    assert reloaded.fulfillment.warehouse_id == "WH-SZX"
    assert reloaded.status == "on_hold"
    assert (
        store.order_version("w", order.order_id) == 1
    )  # the agent's changes are not a new version
    assert simulated_toolbox(again).inventory.available("WH-SZX", "CASE-PH-15B") == 72
    assert [m["template"] for m in store.outbox("w", order.order_id)] == ["hello"]
    # the idempotency key is remembered across loads: no second reservation
    replay = simulated_toolbox(again).inventory.reserve("WH-SZX", "CASE-PH-15B", 3, key="k1")
    assert replay["replayed"] is True
    store.save("w", again)
    assert simulated_toolbox(store.load("w")).inventory.available("WH-SZX", "CASE-PH-15B") == 72


def _proposal(db_engine: Engine, store: WorldStore, tier: str = "L2") -> tuple[ReviewQueue, str]:
    order = put(store, "EX-customs-bad_hs-005")
    plan = Plan.model_validate(
        {
            "kind": "customs_block",
            "strategy": "customs_fix_hs_code",
            "tier": tier,
            "actions": [
                {
                    "tool": "orders",
                    "op": "set_lines",
                    "args": {
                        "order_id": order.order_id,
                        "changes": {"EX-0005-3": {"hs_code": "761699"}},
                    },
                }
            ],
        }
    )
    queue = ReviewQueue(db_engine)
    pid = queue.propose(
        world_id="w",
        order_id=order.order_id,
        thread_id="t1",
        plan=plan,
        plan_digest="d" * 64,
        order_version=1,
        policy_ref=POLICY.ref,
    )
    assert (
        queue.propose(
            world_id="w",
            order_id=order.order_id,
            thread_id="t1",
            plan=plan,
            plan_digest="d" * 64,
            order_version=1,
            policy_ref=POLICY.ref,
        )
        == pid
    )
    return queue, pid


def test_votes_accumulate_until_the_tier_is_satisfied(db_engine: Engine, store: WorldStore) -> None:
    queue, pid = _proposal(db_engine, store)
    first = queue.vote(pid, by="alice", role="approver", policy=POLICY)
    assert first.status == "pending"
    assert "1 more approval" in (queue.missing(first, POLICY) or "")
    with pytest.raises(ApprovalError, match="already voted"):
        queue.vote(pid, by="alice", role="approver", policy=POLICY)
    with pytest.raises(ApprovalError, match="cannot approve"):
        queue.vote(pid, by="zed", role="viewer", policy=POLICY)
    done = queue.vote(pid, by="bob", role="supervisor", policy=POLICY)
    assert done.status == "approved"
    assert [a.by for a in queue.approvals(done)] == ["alice", "bob"]
    with pytest.raises(ApprovalError, match="only pending"):
        queue.vote(pid, by="carol", role="approver", policy=POLICY)
    assert [p.proposal_id for p in queue.find(status="approved")] == [pid]


def test_l3_counts_a_supervisor_with_a_reason(db_engine: Engine, store: WorldStore) -> None:
    queue, pid = _proposal(db_engine, store, tier="L3")
    queue.vote(pid, by="alice", role="approver", policy=POLICY)
    still = queue.vote(pid, by="bob", role="approver", policy=POLICY)
    assert queue.missing(still, POLICY) == "a supervisor's approval with a written reason"
    done = queue.vote(
        pid, by="sue", role="supervisor", reason="checked with customs", policy=POLICY
    )
    assert done.status == "approved"


def test_a_rejection_closes_the_proposal(db_engine: Engine, store: WorldStore) -> None:
    queue, pid = _proposal(db_engine, store)
    rejected = queue.vote(
        pid, by="alice", role="approver", decision="reject", reason="wrong code", policy=POLICY
    )
    assert rejected.status == "rejected"
    assert rejected.detail == "rejected by alice: wrong code"


def test_case_and_spacing_do_not_make_a_second_person(db_engine: Engine, store: WorldStore) -> None:
    queue, pid = _proposal(db_engine, store)
    queue.vote(pid, by="alice", role="approver", policy=POLICY)
    for alias in ("Alice", " alice ", "ALICE"):
        with pytest.raises(ApprovalError, match="already voted"):
            queue.vote(pid, by=alias, role="approver", policy=POLICY)
    assert queue.get(pid).status == "pending"


def test_a_roster_in_the_policy_decides_who_votes_and_as_what(
    db_engine: Engine, store: WorldStore
) -> None:
    text = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()
    policy = parse_policy(
        text + '"Alice Wong" = "approver"\n"Sam Lee" = "supervisor"\n', "policy.toml"
    )
    queue, pid = _proposal(db_engine, store)
    with pytest.raises(ApprovalError, match="not listed under \\[people\\]"):
        queue.vote(pid, by="mallory", role="supervisor", policy=policy)
    with pytest.raises(ApprovalError, match="is approver in the policy, not supervisor"):
        queue.vote(pid, by="alice wong", role="supervisor", policy=policy)
    queue.vote(pid, by="alice  wong", role=None, policy=policy)
    done = queue.vote(pid, by="Sam Lee", role=None, policy=policy)
    assert [(v["by"], v["role"]) for v in queue.votes(pid)] == [
        ("alice wong", "approver"),
        ("Sam Lee", "supervisor"),
    ]
    assert done.status == "approved"
