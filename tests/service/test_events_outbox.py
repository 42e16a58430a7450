"""The events outbox: rows written in the transaction of the audit entries they describe, on
SQLite and PostgreSQL; what each event says; a failed append leaves neither."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select

from domain.models import Order
from service import usecases
from service.events import event_id
from service.wiring import Exdesk
from store.db import write
from store.schema import events_outbox
from tests.factories import example
from tests.service.events_helpers import (
    ALL_TYPES,
    database_url,
    every_kind_of_event,
    expected_types,
    order_of,
    settings,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Exdesk]:
    with database_url(request.param, tmp_path) as url:
        desk = Exdesk(settings(tmp_path, url))
        try:
            yield desk
        finally:
            desk.close()


def _rows(app: Exdesk) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in app.outbox.list()]


def test_the_outbox_holds_exactly_the_events_of_the_audit_entries(app: Exdesk) -> None:
    every_kind_of_event(app)
    entries = {e.seq: e for e in app.audit.entries()}
    want = sorted((seq, t) for seq, e in entries.items() for t in expected_types(e))
    events = _rows(app)
    got = sorted((int(e["data"]["audit_seq"]), str(e["type"])) for e in events)  # type: ignore[index]
    assert got == want
    assert {t for _, t in got} == ALL_TYPES  # the scenario makes every type
    assert len({e["id"] for e in events}) == len(events)
    origin = app.audit.origin()
    for event in events:
        data = event["data"]
        assert isinstance(data, dict)
        entry = entries[data["audit_seq"]]
        assert set(event) == {
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "subject",
            "datacontenttype",
            "data",
        }
        assert event["specversion"] == "1.0" and event["source"] == origin
        assert UUID.match(str(event["id"])) and event["time"] == entry.at
        assert event["id"] == event_id(origin, entry.seq, str(event["type"]))
        assert event["subject"] == data["order_id"] == order_of(entry)
        assert data["audit_event"] == entry.event and data["actor"] == entry.actor
        assert data["world_id"] in {"fix", "pay", "hs", "late", "sub"}
        assert data["order_version"] == app.orders.version(data["world_id"], data["order_id"])
        assert data["policy_version"] == app.policy.ref


def test_what_each_event_says(app: Exdesk) -> None:
    every_kind_of_event(app)
    by_type: dict[str, list[dict[str, object]]] = {}
    for event in _rows(app):
        by_type.setdefault(str(event["type"]), []).append(event["data"])  # type: ignore[arg-type]
    (approved,) = by_type["plan.approved"]
    assert approved["approved_by"] == ["alice", "bob"]
    assert approved["strategy"] == "customs_fix_hs_code" and approved["tier"] == "L2"
    (rejected,) = by_type["plan.rejected"]
    assert rejected["rejected_by"] == "carol" and rejected["reason"] == "ship what we have"
    (expired,) = by_type["plan.expired"]
    assert expired["strategy"] == "substitute_item" and expired["world_id"] == "sub"
    proposed = {d["world_id"]: d for d in by_type["plan.proposed"]}
    assert set(proposed) == {"hs", "late", "sub"}
    assert proposed["hs"]["proposal_id"] == approved["proposal_id"]
    (failed,) = by_type["action.failed"]
    assert (failed["tool"], failed["op"]) == ("payment", "request_new_method")
    assert "simulated fault" in str(failed["error"])
    (plan_failed,) = by_type["plan.failed"]
    assert plan_failed["world_id"] == "pay" and plan_failed["plan_key"] == failed["plan_key"]
    released = [d for d in by_type["order.released"] if d["world_id"] == "hs"]
    assert released and released[-1]["released"] == ["customs_block"]
    assert released[-1]["holds"] == [] and released[-1]["free_to_ship"] is True
    detected = {d["world_id"]: d for d in by_type["exception.detected"]}
    assert detected["fix"]["kinds"] == ["bad_address"]


def test_the_same_input_again_adds_no_event(app: Exdesk) -> None:
    every_kind_of_event(app)
    before = Counter((r.seq, r.type) for r in app.outbox.list())
    for world_id, case_id in (("fix", "EX-addr-fix-002"), ("hs", "EX-customs-bad_hs-005")):
        usecases.handle(app, world_id, Order.model_validate(example(case_id)["order"]))
    assert Counter((r.seq, r.type) for r in app.outbox.list()) == before


def _counts(app: Exdesk) -> tuple[int, int]:
    with app.engine.connect() as conn:
        outbox = conn.execute(select(func.count()).select_from(events_outbox)).scalar_one()
    return app.audit.head()[0], int(outbox)


PROPOSED = {
    "proposal_id": "P-x",
    "order_id": "EX-1",
    "order_version": 1,
    "kind": "stockout",
    "strategy": "backorder",
    "tier": "L2",
    "plan_digest": "d",
    "policy": "p@1",
}


def test_a_change_that_fails_after_its_append_leaves_neither(app: Exdesk) -> None:
    app.audit.append("agent", "proposal.created", PROPOSED)  # the log has an origin and a head
    before = _counts(app)

    def work(conn: Connection) -> None:
        app.audit.append("agent", "proposal.created", PROPOSED, conn=conn)
        raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        write(app.engine, work)
    assert _counts(app) == before
    assert app.audit.verify().ok


def test_an_outbox_row_that_cannot_be_written_fails_the_append(app: Exdesk) -> None:
    app.audit.append("agent", "proposal.created", PROPOSED)
    seq, _ = app.audit.head()
    taken = event_id(app.audit.origin(), seq + 1, "plan.proposed")
    with app.engine.begin() as conn:  # the next entry's event id is taken: its insert fails
        conn.execute(
            insert(events_outbox).values(
                event_id=taken,
                seq=0,
                type="plan.proposed",
                subject="x",
                body="{}",
                created_at=app.outbox.list()[0].created_at,
                attempts=0,
            )
        )
    before = _counts(app)
    with pytest.raises(Exception, match=r"could not append|UNIQUE|unique|duplicate"):
        app.audit.append("agent", "proposal.created", PROPOSED)
    assert _counts(app) == before
    assert app.audit.verify().ok


def test_no_outbox_when_turned_off(tmp_path: Path) -> None:
    desk = Exdesk(settings(tmp_path, None, events_outbox=False))
    try:
        every_kind_of_event(desk)
        assert desk.outbox.list() == []
    finally:
        desk.close()
