"""Appending, reading and the schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, exc, select, text

from audit.errors import AuditError
from audit.log import GENESIS_HASH, AuditLog
from domain.canonical import canonical_json
from store.migrate import upgrade
from tests.audit.conftest import StepClock, Tamper, fill


def test_entries_chain_from_the_genesis_hash(log: AuditLog) -> None:
    first = log.append("agent", "finding.detected", {"order_id": "A-1", "kind": "stockout"})
    second = log.append("person:alice", "plan.approved", {"order_id": "A-1"})

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert log.head() == (2, second.hash)


def test_hash_is_sha256_of_the_canonical_six_fields(log: AuditLog) -> None:
    entry = log.append("tool:inventory", "stock.reserved", {"sku": "X", "qty": 2, "w": 1.5})
    fields = entry.model_dump(exclude={"hash"})
    assert set(fields) == {"seq", "at", "actor", "event", "payload", "prev_hash"}
    assert entry.hash == hashlib.sha256(canonical_json(fields)).hexdigest()


def test_payload_is_stored_as_canonical_json_text(log: AuditLog, engine: Engine) -> None:
    log.append("agent", "e", {"b": [1.0, "é"], "a": None})
    with engine.connect() as conn:
        stored = conn.execute(select(log.tables.log.c.payload)).scalar_one()
    assert stored == '{"a":null,"b":[1,"é"]}'


def test_timestamps_come_from_the_clock_in_utc(engine: Engine) -> None:
    plus_two = timezone(timedelta(hours=2))
    audit = AuditLog(engine, clock=lambda: datetime(2026, 3, 4, 7, 8, 9, 12, tzinfo=plus_two))
    upgrade(engine)
    assert audit.append("agent", "e", {}).at == "2026-03-04T05:08:09.000012Z"


def test_a_naive_clock_is_refused(engine: Engine) -> None:
    audit = AuditLog(engine, clock=lambda: datetime(2026, 1, 1))
    upgrade(engine)
    with pytest.raises(AuditError, match="timezone-aware"):
        audit.append("agent", "e", {})
    assert audit.head() == (0, GENESIS_HASH)


def test_default_clock_is_now(engine: Engine) -> None:
    audit = AuditLog(engine)
    upgrade(engine)
    at = datetime.strptime(audit.append("agent", "e", {}).at, "%Y-%m-%dT%H:%M:%S.%f%z")
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)


def test_entries_pages_and_filters(log: AuditLog) -> None:
    fill(log, 2100, batch=300)
    seqs = [e.seq for e in log.entries()]
    assert seqs == list(range(1, 2101))
    assert [e.seq for e in log.entries(after_seq=995, limit=10)] == list(range(996, 1006))
    assert [e.seq for e in log.entries(after_seq=2095)] == list(range(2096, 2101))
    assert list(log.entries(limit=0)) == []
    assert next(log.entries(after_seq=41)).payload == {"order_id": "o-42", "n": 42, "total": 52.5}


def test_migrating_again_is_a_no_op_and_keeps_entries(log: AuditLog, engine: Engine) -> None:
    fill(log, 3)
    upgrade(engine)
    upgrade(engine)
    assert log.head()[0] == 3
    assert log.verify().ok


def test_append_many_with_nothing_does_nothing(log: AuditLog) -> None:
    assert log.append_many([]) == []
    assert log.head() == (0, GENESIS_HASH)


def test_one_batch_shares_one_timestamp_and_keeps_order(log: AuditLog) -> None:
    batch = log.append_many([("agent", "e", {"i": i}) for i in range(5)])
    assert [e.seq for e in batch] == [1, 2, 3, 4, 5]
    assert len({e.at for e in batch}) == 1
    assert [e.payload["i"] for e in log.entries()] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        (("", "e", {}), ValueError, "item 2: actor must be a non-blank string"),
        (("agent", "  ", {}), ValueError, "item 2: event must be a non-blank string"),
        (("agent", "e", [1]), TypeError, r"item 2 \(e\): payload must be a dict, got list"),
        (
            ("agent", "e", {"amount": Decimal("1.10")}),
            TypeError,
            r"item 2 \(e\): payload \$.amount",
        ),
        (("agent", "e", {"x": float("nan")}), ValueError, r"payload \$.x: nan"),
    ],
)
def test_a_bad_item_anywhere_in_a_batch_leaves_nothing(
    log: AuditLog, item: tuple[str, str, Any], error: type[Exception], message: str
) -> None:
    fill(log, 2)
    good = ("agent", "ok", {"fine": True})
    with pytest.raises(error, match=message):
        log.append_many([good, good, item, good])
    assert log.head()[0] == 2
    assert len(list(log.entries())) == 2


def test_a_database_failure_mid_batch_leaves_nothing(log: AuditLog, tamper: Tamper) -> None:
    fill(log, 10)
    before = log.head()
    # Someone wrote seq 13 behind the log's back: the batch's INSERT fails on its third row.
    tamper(
        "INSERT INTO audit_log (seq, at, actor, event, payload, prev_hash, hash) "
        "VALUES (13, 'x', 'x', 'x', '{}', 'x', 'x')"
    )
    with pytest.raises(AuditError, match="none was written"):
        log.append_many([("agent", "e", {"i": i}) for i in range(5)])
    assert log.head() == before
    assert [e.seq for e in log.entries(limit=12)] == [*range(1, 11), 13]
    tamper("DELETE FROM audit_log WHERE seq = 13")
    log.append_many([("agent", "e", {"i": i}) for i in range(5)])
    assert log.verify().ok


def test_a_failure_after_the_insert_rolls_the_rows_back(log: AuditLog, engine: Engine) -> None:
    fill(log, 4)

    def fail_on_head_move(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE audit_head") and "RETURNING" not in statement:
            raise RuntimeError("connection lost")

    event.listen(engine, "before_cursor_execute", fail_on_head_move)
    try:
        with pytest.raises(RuntimeError):
            log.append_many([("agent", "e", {"i": i}) for i in range(20)])
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_head_move)
    assert log.head()[0] == 4
    assert len(list(log.entries())) == 4
    assert log.append("agent", "after", {}).seq == 5
    assert log.verify().ok


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET payload = '{}' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE audit_checkpoints SET head = 'x'",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_triggers_keep_entries_and_checkpoints_append_only(
    log: AuditLog, engine: Engine, signing_key: Any, sql: str
) -> None:
    fill(log, 3)
    log.checkpoint(signing_key)
    with pytest.raises(exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(sql))
    assert log.verify(signing_key.public_key()).ok


def test_truncate_is_refused_on_postgresql(log: AuditLog, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    fill(log, 2)
    with pytest.raises(exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_log"))


def test_a_missing_head_row_stops_appends(log: AuditLog, tamper: Tamper, engine: Engine) -> None:
    fill(log, 2)
    tamper("DELETE FROM audit_head")
    with pytest.raises(AuditError, match="audit_head row is missing"):
        log.append("agent", "e", {})
    with pytest.raises(AuditError, match="audit_head row is missing"):
        log.head()
    upgrade(engine)  # does not paper over it: the log has entries
    with pytest.raises(AuditError, match="audit_head row is missing"):
        log.head()


def test_an_unreadable_row_is_reported_by_entries(log: AuditLog, tamper: Tamper) -> None:
    fill(log, 3)
    tamper("UPDATE audit_log SET payload = 'not json' WHERE seq = 2")
    with pytest.raises(AuditError, match=r"seq 2 cannot be read.*run verify"):
        list(log.entries())


def test_returned_entries_equal_what_is_read_back(log: AuditLog) -> None:
    written = log.append_many(
        [("agent", "e", {"n": (1, 2.5, None, True, 3.0), "s": "ü"}), ("tool:x", "f", {})]
    )
    assert list(log.entries()) == written
    assert written[0].payload == {"n": [1, 2.5, None, True, 3], "s": "ü"}
    assert json.loads(canonical_json(written[0].payload)) == written[0].payload


def test_separate_instances_share_one_chain(engine: Engine) -> None:
    first = AuditLog(engine, clock=StepClock())
    upgrade(engine)
    second = AuditLog(engine, clock=StepClock())
    first.append("a", "e", {})
    second.append("b", "e", {})
    assert [e.actor for e in first.entries()] == ["a", "b"]
    assert first.verify().ok
