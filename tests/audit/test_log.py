"""Appending, signing at every commit, reading and the schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, event, exc, select, text

from audit.checkpoint import parse_checkpoint
from audit.errors import AuditError
from audit.keys import StaticKey, log_verifier
from audit.log import GENESIS_HASH, AuditLog
from audit.merkle import EMPTY_ROOT, root_of
from domain.canonical import canonical_json
from store.migrate import upgrade
from tests.audit.conftest import StepClock, Tamper, fill


def _log(engine: Engine, key: Ed25519PrivateKey | None = None, **kwargs: Any) -> AuditLog:
    signer = StaticKey(key or Ed25519PrivateKey.generate())
    audit = AuditLog(engine, signer=signer, **kwargs)
    upgrade(engine)
    return audit


def test_entries_chain_from_the_genesis_hash(log: AuditLog) -> None:
    first = log.append("agent", "finding.detected", {"order_id": "A-1", "kind": "stockout"})
    second = log.append("person:alice", "plan.approved", {"order_id": "A-1"})

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert log.head() == (2, second.hash)


def test_hash_is_the_rfc6962_leaf_hash_of_the_canonical_six_fields(log: AuditLog) -> None:
    entry = log.append("tool:inventory", "stock.reserved", {"sku": "X", "qty": 2, "w": 1.5})
    fields = entry.model_dump(exclude={"hash"})
    assert set(fields) == {"seq", "at", "actor", "event", "payload", "prev_hash"}
    assert entry.hash == hashlib.sha256(b"\x00" + canonical_json(fields)).hexdigest()


def test_every_commit_that_appends_signs_a_checkpoint_of_the_new_tree(
    log: AuditLog, signing_key: Ed25519PrivateKey
) -> None:
    log.append("agent", "a", {"n": 1})
    log.append_many([("agent", "b", {"n": i}) for i in range(3)])
    log.append("agent", "c", {"n": 5})
    stored = log.checkpoints()
    assert [c.size for c in stored] == [1, 4, 5]
    hashes = [bytes.fromhex(e.hash) for e in log.entries()]
    key = log_verifier(signing_key.public_key(), log.origin())
    for checkpoint in stored:
        signed = parse_checkpoint(checkpoint.note)
        assert signed.origin == log.origin() and signed.size == checkpoint.size
        assert signed.root == root_of(hashes[: checkpoint.size])
        assert signed.note.signed_by(key) is True
        # the C2SP tlog-checkpoint body: origin, size, base64 root, then the signature line
        assert checkpoint.note.split("\n")[1] == str(checkpoint.size)
        assert checkpoint.note.split("\n")[3] == ""
        assert checkpoint.note.split("\n")[4].startswith(f"\u2014 {log.origin()} ")
    latest = log.latest_checkpoint()
    assert latest is not None and latest.size == 5


def test_an_append_inside_a_transaction_that_rolls_back_leaves_no_entry_and_no_checkpoint(
    log: AuditLog, engine: Engine
) -> None:
    fill(log, 2)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        log.append("agent", "inside", {"n": 1}, conn=conn)
        assert [c.size for c in log.checkpoints()] in ([1, 2], [1, 2, 3])  # not visible yet
        raise RuntimeError("the caller's state change failed")
    assert log.head()[0] == 2
    assert [c.size for c in log.checkpoints()] == [1, 2]
    with engine.begin() as conn:
        log.append("agent", "inside", {"n": 1}, conn=conn)
    assert [c.size for c in log.checkpoints()] == [1, 2, 3]
    assert log.verify().ok


def test_the_head_row_keeps_the_tree_border(log: AuditLog, engine: Engine) -> None:
    fill(log, 7, batch=3)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT seq, frontier, origin, log_key FROM audit_head")).one()
    assert row.seq == 7
    assert len(row.frontier) == 3 * 64  # 7 = 4 + 2 + 1: three perfect subtrees
    assert row.origin.startswith("exdesk.local/audit/")
    assert row.log_key


def test_a_log_without_a_signing_key_cannot_append(engine: Engine) -> None:
    audit = AuditLog(engine)
    upgrade(engine)
    with pytest.raises(AuditError, match="no signing key"):
        audit.append("agent", "e", {})
    assert audit.head() == (0, GENESIS_HASH)
    assert audit.checkpoints() == []


def test_a_second_key_cannot_sign_the_same_log(engine: Engine) -> None:
    first = _log(engine)
    first.append("agent", "e", {})
    other = AuditLog(engine, signer=StaticKey(Ed25519PrivateKey.generate()))
    with pytest.raises(AuditError, match=r"the log is signed by key .* rotate-key"):
        other.append("agent", "e", {})
    assert first.head()[0] == 1


def test_a_rotation_hands_over_to_the_new_key(engine: Engine) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    audit = _log(engine, old)
    fill(audit, 3)
    entry = audit.rotate_key(new, actor="operator", reason="yearly")
    assert (entry.seq, entry.event) == (4, "audit.key_rotated")
    with pytest.raises(AuditError, match="the log is signed by key"):
        audit.append("agent", "e", {})  # this process still holds the old key
    after = AuditLog(engine, signer=StaticKey(new), clock=StepClock())
    after.append("agent", "e", {})
    origin = audit.origin()
    notes = {c.size: parse_checkpoint(c.note) for c in audit.checkpoints()}
    assert notes[4].note.signed_by(log_verifier(old.public_key(), origin))
    assert notes[5].note.signed_by(log_verifier(new.public_key(), origin))
    assert audit.verify(old.public_key()).ok  # the old key alone follows the announcement


def test_payload_is_stored_as_canonical_json_text(log: AuditLog, engine: Engine) -> None:
    log.append("agent", "e", {"b": [1.0, "é"], "a": None})
    with engine.connect() as conn:
        stored = conn.execute(select(log.tables.log.c.payload)).scalar_one()
    assert stored == '{"a":null,"b":[1,"é"]}'


def test_timestamps_come_from_the_clock_in_utc(engine: Engine) -> None:
    plus_two = timezone(timedelta(hours=2))
    audit = _log(engine, clock=lambda: datetime(2026, 3, 4, 7, 8, 9, 12, tzinfo=plus_two))
    assert audit.append("agent", "e", {}).at == "2026-03-04T05:08:09.000012Z"


def test_a_naive_clock_is_refused(engine: Engine) -> None:
    audit = _log(engine, clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(AuditError, match="timezone-aware"):
        audit.append("agent", "e", {})
    assert audit.head() == (0, GENESIS_HASH)


def test_default_clock_is_now(engine: Engine) -> None:
    audit = _log(engine)
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
    assert len(log.leaf_hashes(2100)) == 2100


def test_migrating_again_is_a_no_op_and_keeps_entries(log: AuditLog, engine: Engine) -> None:
    fill(log, 3)
    upgrade(engine)
    upgrade(engine)
    assert log.head()[0] == 3
    assert log.verify().ok


def test_append_many_with_nothing_does_nothing(log: AuditLog) -> None:
    assert log.append_many([]) == []
    assert log.head() == (0, GENESIS_HASH)
    assert log.checkpoints() == []


def test_one_batch_shares_one_timestamp_and_keeps_order(log: AuditLog) -> None:
    batch = log.append_many([("agent", "e", {"i": i}) for i in range(5)])
    assert [e.seq for e in batch] == [1, 2, 3, 4, 5]
    assert len({e.at for e in batch}) == 1
    assert [e.payload["i"] for e in log.entries()] == [0, 1, 2, 3, 4]


def test_keys_make_appends_idempotent_within_and_across_batches(log: AuditLog) -> None:
    first = log.append_many(
        [("agent", "a", {"i": 1}), ("agent", "b", {"i": 2}), ("agent", "a2", {"i": 3})],
        keys=["k1", None, "k1"],
    )
    assert [e.seq for e in first] == [1, 2, 1]
    again = log.append("agent", "a", {"i": 9}, key="k1")
    assert again == first[0]
    assert log.head()[0] == 2
    assert log.by_key("k1") == first[0]


def test_entries_by_many_keys_in_pages(log: AuditLog) -> None:
    keys = [f"key-{n}" for n in range(1_205)]  # more than a page of keys
    written = log.append_many([("agent", "e", {"n": n}) for n in range(len(keys))], keys=keys)
    wanted = [*keys[::-1], "no-such-key", keys[0]]  # any order, unknown and repeated keys
    found = log.by_keys(wanted)
    assert found == dict(zip(keys, written, strict=True))
    assert log.by_keys([]) == {}


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
    assert max(c.size for c in log.checkpoints()) == 10
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
    assert max(c.size for c in log.checkpoints()) == 4
    assert log.append("agent", "after", {}).seq == 5
    assert log.verify().ok


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET payload = '{}' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE audit_checkpoints SET root = 'x'",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_triggers_keep_entries_and_checkpoints_append_only(
    log: AuditLog, engine: Engine, sql: str
) -> None:
    fill(log, 3)
    with pytest.raises(exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(sql))
    assert log.verify().ok


def test_truncate_is_refused_on_postgresql(log: AuditLog, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    fill(log, 2)
    for table in ("audit_log", "audit_checkpoints"):
        with pytest.raises(exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table}"))


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


def test_a_damaged_tree_border_stops_appends(log: AuditLog, tamper: Tamper) -> None:
    fill(log, 3)
    tamper("UPDATE audit_head SET frontier = 'abc'")
    with pytest.raises(AuditError, match="Merkle tree border is damaged"):
        log.append("agent", "e", {})


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


def test_separate_instances_with_the_one_key_share_one_chain(
    engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    first = _log(engine, signing_key, clock=StepClock())
    second = AuditLog(engine, signer=StaticKey(signing_key), clock=StepClock())
    first.append("a", "e", {})
    second.append("b", "e", {})
    assert [e.actor for e in first.entries()] == ["a", "b"]
    assert first.verify().ok


def test_a_new_database_starts_empty_under_a_random_origin(engine: Engine) -> None:
    audit = _log(engine)
    assert audit.head() == (0, GENESIS_HASH)
    assert audit.latest_checkpoint() is None
    other = audit.origin().rsplit("/", 1)[1]
    assert len(other) == 16
    assert EMPTY_ROOT.hex() == root_of([]).hex()
