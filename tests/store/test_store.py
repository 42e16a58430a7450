"""The store on SQLite and on PostgreSQL: worlds as rows, stock that cannot oversell, orders
as submitted and as changed, the review queue, migrations."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from audit.schema import build_tables
from domain.errors import InputError
from domain.models import Order, Plan, ProposalStatus, Vote, World
from domain.policy import default_policy
from store.db import write
from store.migrate import SchemaError, current_revisions, head_revisions, upgrade
from store.orders import OrderBook, read_current, write_current
from store.review import ReviewQueue
from store.schema import metadata
from store.world import WorldRows, hold_stock, release_stock
from tests.factories import example, set_stock

POLICY = default_policy()


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    upgrade(db_engine)
    return db_engine


def _world(case_id: str = "EX-multi-011") -> tuple[World, Order]:
    case = example(case_id)
    return World.model_validate(case["world"]), Order.model_validate(case["order"])


def _ours(diff: tuple[object, ...], described: object) -> bool:
    """A difference about the tables ``described`` holds (the others belong to the other
    metadata, or to the graph checkpointer)."""
    kind, item = diff[0], diff[1]
    table = getattr(item, "table", item)
    if kind in ("remove_table", "remove_index"):
        return getattr(table, "name", None) in described.tables  # type: ignore[attr-defined]
    return True


def test_migrations_make_the_schema_the_code_describes(engine: Engine) -> None:
    assert current_revisions(engine) == head_revisions()
    upgrade(engine)  # again: nothing to do
    audit = build_tables().metadata
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        for described in (metadata, audit):
            diff = [d for d in compare_metadata(context, described) if _ours(d, described)]
            assert diff == []


def test_a_database_from_before_migrations_is_refused(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (x INTEGER)"))
    with pytest.raises(SchemaError, match="start from a new data dir"):
        upgrade(db_engine)


def test_a_view_holds_what_bears_on_the_order(engine: Engine) -> None:
    world, order = _world()
    rows = WorldRows(engine)
    rows.load("w", world)
    view = rows.view("w", order)
    assert view.now == world.now
    assert {w.id for w in view.warehouses} == {w.id for w in world.warehouses}
    skus = set(order.qty_by_sku())
    assert skus <= {r.sku for r in view.inventory}
    assert {r.country_code for r in view.shipping_rates} == {order.ship_to.country_code}
    assert all(e.order_id == order.order_id for e in view.events)
    assert all(o.customer.id == order.customer.id for o in view.recent_orders)
    assert view.fx_to_usd == world.fx_to_usd
    with pytest.raises(InputError, match="--world"):
        rows.view("nope", order)


def test_a_reload_keeps_what_exdesk_reserved(engine: Engine) -> None:
    world, _ = _world()
    rows = WorldRows(engine)
    rows.load("w", world)
    write(engine, lambda conn: hold_stock(conn, "w", "WH-SZX", "CASE-PH-15B", 3))
    data = world.model_dump(mode="json")
    set_stock(data, "WH-SZX", "CASE-PH-15B", 10)
    rows.load("w", World.model_validate(data))
    (row,) = [
        r
        for r in rows.stock_rows("w")
        if (r["warehouse_id"], r["sku"]) == ("WH-SZX", "CASE-PH-15B")
    ]
    assert (row["on_hand"], row["reserved"], row["held"]) == (10, 0, 3)
    # a row the new file lacks keeps what exdesk holds, with nothing on hand
    data["inventory"] = [r for r in data["inventory"] if r["sku"] != "CASE-PH-15B"]
    rows.load("w", World.model_validate(data))
    kept = [r for r in rows.stock_rows("w") if r["sku"] == "CASE-PH-15B"]
    assert [(r["warehouse_id"], r["on_hand"], r["held"]) for r in kept] == [("WH-SZX", 0, 3)]


def test_stock_listed_twice_is_refused(engine: Engine) -> None:
    world, _ = _world()
    data = world.model_dump(mode="json")
    data["inventory"].append(dict(data["inventory"][0]))
    with pytest.raises(InputError, match="listed twice"):
        WorldRows(engine).load("w", World.model_validate(data))


def test_holds_never_oversell_under_contention(engine: Engine) -> None:
    world, _ = _world()
    data = world.model_dump(mode="json")
    set_stock(data, "WH-SZX", "CASE-PH-15B", 20)
    rows = WorldRows(engine)
    rows.load("w", World.model_validate(data))
    barrier = threading.Barrier(8)

    def take(_: int) -> int:
        barrier.wait()
        got = 0
        for _ in range(5):
            try:
                write(engine, lambda conn: hold_stock(conn, "w", "WH-SZX", "CASE-PH-15B", 1))
                got += 1
            except ValueError:
                pass
        return got

    with ThreadPoolExecutor(8) as pool:
        taken = sum(pool.map(take, range(8)))
    assert taken == 20
    (row,) = [r for r in rows.stock_rows("w") if r["sku"] == "CASE-PH-15B" and r["held"]]
    assert row["held"] == 20
    with pytest.raises(ValueError, match="has 0 of CASE-PH-15B available"):
        write(engine, lambda conn: hold_stock(conn, "w", "WH-SZX", "CASE-PH-15B", 1))
    with pytest.raises(LookupError, match="does not stock"):
        write(engine, lambda conn: hold_stock(conn, "w", "WH-SZX", "NO-SUCH-SKU", 1))
    write(engine, lambda conn: release_stock(conn, "w", "WH-SZX", "CASE-PH-15B", 20))
    with pytest.raises(ValueError, match="cannot release"):
        write(engine, lambda conn: release_stock(conn, "w", "WH-SZX", "CASE-PH-15B", 1))


def test_the_version_rises_only_when_the_submitted_order_changes(engine: Engine) -> None:
    _, order = _world()
    book = OrderBook(engine)
    assert book.submit("w", order).version == 1
    # the desk's own changes are not a new version
    held_order = order.model_copy(update={"status": "on_hold"})
    write(engine, lambda conn: write_current(conn, "w", held_order))
    again = book.submit("w", order)
    assert (again.version, again.changed) == (1, False)
    assert book.current("w", order.order_id) == held_order
    changed = book.submit("w", order.model_copy(update={"notes": "ring twice"}))
    assert (changed.version, changed.changed) == (2, True)
    assert book.current("w", order.order_id).notes == "ring twice"  # type: ignore[union-attr]
    assert book.submitted("w", order.order_id).notes == "ring twice"
    with engine.connect() as conn:
        assert read_current(conn, "w", "missing") is None


def test_a_300_character_order_id_is_refused_the_same_everywhere(engine: Engine) -> None:
    _, order = _world()
    data = order.model_dump(mode="json")
    data["order_id"] = "X" * 300
    with pytest.raises(ValueError, match="at most 200"):
        Order.model_validate(data)
    data["order_id"] = "X" * 200
    assert OrderBook(engine).submit("w", Order.model_validate(data)).version == 1


def _plan() -> Plan:
    return Plan.model_validate(
        {
            "kind": "customs_block",
            "strategy": "customs_fix_hs_code",
            "tier": "L2",
            "actions": [
                {
                    "tool": "orders",
                    "op": "set_lines",
                    "args": {
                        "order_id": "EX-0005",
                        "changes": {"EX-0005-3": {"hs_code": "761699"}},
                    },
                }
            ],
        }
    )


def test_the_review_queue_keeps_one_proposal_per_plan_and_its_votes(engine: Engine) -> None:
    queue = ReviewQueue(engine)
    fields = {
        "world_id": "w",
        "order_id": "EX-0005",
        "thread_id": "t1",
        "plan": _plan(),
        "plan_digest": "d" * 64,
        "order_version": 1,
        "policy_ref": POLICY.ref,
    }
    pid, created = write(engine, lambda conn: queue.propose(conn, **fields))  # type: ignore[arg-type]
    assert created and pid.startswith("P-")
    again, created = write(engine, lambda conn: queue.propose(conn, **fields))  # type: ignore[arg-type]
    assert (again, created) == (pid, False)
    cast = Vote(
        by="Alice",
        person="alice",
        role="approver",
        decision="approve",
        plan_digest="d" * 64,
        at=datetime.now(UTC),
    )
    write(engine, lambda conn: queue.add_vote(conn, pid, cast))
    with pytest.raises(Exception, match=r"(?i)unique|one_vote_per_person"):
        write(engine, lambda conn: queue.add_vote(conn, pid, cast))
    assert [v.by for v in queue.votes(pid)] == ["Alice"]
    moved = write(
        engine,
        lambda conn: queue.set_status(
            conn, pid, ProposalStatus.EXECUTED, "ran", only_from=(ProposalStatus.APPROVED,)
        ),
    )
    assert not moved and queue.get(pid).status is ProposalStatus.PENDING
    write(engine, lambda conn: queue.set_status(conn, pid, ProposalStatus.SUPERSEDED, "newer"))
    # drafted again for the same order version: pending again, votes kept
    write(engine, lambda conn: queue.propose(conn, **fields))  # type: ignore[arg-type]
    assert queue.get(pid).status is ProposalStatus.PENDING
    assert [p.proposal_id for p in queue.open_for("w", "EX-0005")] == [pid]
    with pytest.raises(InputError, match="review list"):
        queue.get("P-nope")
