"""Personal data out of the chain: salted digests in the entries, clear values beside the log,
erasure that leaves the chain verifying."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from audit.log import AuditLog
from audit.models import AuditEntry
from audit.personal import PREFIX, is_ref, refs_in, restore

ORDER = {
    "order_id": "A-1",
    "customer": {
        "id": "c-9",
        "tier": "vip",
        "name": "Zhang San",
        "email": "z@example.cn",
        "phone": "+86 138 0000 0000",
    },
    "ship_to": {
        "name": "Zhang San",
        "street_address": "1 Nanjing Road\nApt 5",
        "city": "Shanghai",
        "country_code": "CN",
        "phone": "+86 138 0000 0000",
    },
    "notes": "call me at 13800000000",
    "lines": [{"line_id": "L1", "sku": "X", "qty": 1, "description": "kettle"}],
}
CLEAR = [
    "Zhang San",
    "z@example.cn",
    "+86 138 0000 0000",
    "1 Nanjing Road\nApt 5",
    "call me at 13800000000",
]


def _stored_text(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(conn.execute(text("SELECT payload FROM audit_log")).scalars())


def test_personal_values_enter_entries_only_as_salted_digests(
    log: AuditLog, engine: Engine
) -> None:
    entry = log.append("agent", "order.detected", {"order_id": "A-1", "order": ORDER})
    stored = _stored_text(engine)
    for value in CLEAR:
        assert value.replace("\n", "\\n") not in stored
    order = entry.payload["order"]
    assert order["customer"]["id"] == "c-9" and order["ship_to"]["city"] == "Shanghai"
    assert order["lines"][0]["description"] == "kettle"
    name = order["customer"]["name"]
    assert is_ref(name) and order["ship_to"]["name"] == name  # one subject, one digest per value
    assert order["customer"]["phone"] == order["ship_to"]["phone"]
    refs = refs_in(entry.payload)
    assert len(refs) == 5
    clear = log.clear_values(sorted(refs))
    assert sorted(clear.values()) == sorted(CLEAR)
    assert restore(entry.payload, clear)["order"] == ORDER
    salts = log.salts(sorted(refs))
    mac = hmac.new(bytes.fromhex(salts[name]), b"Zhang San", hashlib.sha256).hexdigest()
    assert name == PREFIX + mac


def test_another_order_gets_other_digests_for_the_same_values(log: AuditLog) -> None:
    first = log.append("agent", "e", {"order_id": "A-1", "order": ORDER})
    second = log.append("agent", "e", {"order_id": "B-2", "order": {**ORDER, "order_id": "B-2"}})
    assert refs_in(first.payload).isdisjoint(refs_in(second.payload))


def test_an_erasure_removes_clear_values_and_salt_and_the_chain_still_verifies(
    log: AuditLog, engine: Engine
) -> None:
    entry = log.append("agent", "order.detected", {"order_id": "A-1", "order": ORDER})
    log.append(
        "agent", "order.detected", {"order_id": "B-2", "order": {**ORDER, "order_id": "B-2"}}
    )
    refs = sorted(refs_in(entry.payload))
    assert log.erase("A-1", actor="operator", reason="GDPR art. 17 request 42") == 5
    assert log.clear_values(refs) == {} and log.salts(refs) == {}
    result = log.verify()
    assert result.ok and result.count == 3, result.problem
    erased = list(log.entries())[-1]
    assert erased.event == "personal.erased"
    assert erased.payload == {
        "subject": "order:A-1",
        "values": 5,
        "reason": "GDPR art. 17 request 42",
    }
    with engine.connect() as conn:
        held = conn.execute(text("SELECT count(*) FROM audit_personal")).scalar_one()
    assert held == 5  # B-2's are kept
    assert log.erase("A-1", actor="operator", reason="again") == 0


def test_appends_about_one_new_order_at_once_share_one_salt(log: AuditLog, engine: Engine) -> None:
    """Salts are made before the head lock: writers making the same subject's salt at once
    must all use the one that landed."""
    writers = 4
    barrier = threading.Barrier(writers)
    entries: list[AuditEntry] = []
    failures: list[BaseException] = []

    def append(n: int) -> None:
        barrier.wait()
        try:
            entries.append(log.append("agent", f"e{n}", {"order_id": "A-1", "order": ORDER}))
        except BaseException as error:  # the assertion below shows it
            failures.append(error)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures
    names = {e.payload["order"]["customer"]["name"] for e in entries}
    assert len(entries) == writers and len(names) == 1
    with engine.connect() as conn:
        subjects = conn.execute(text("SELECT count(*) FROM audit_subjects")).scalar_one()
    assert subjects == 1
    assert log.clear_values(sorted(names)) == {names.pop(): "Zhang San"}
    assert log.verify().ok


@pytest.mark.parametrize("known", [False, True], ids=["new-order", "known-order"])
def test_an_erasure_during_an_append_erases_what_that_append_stores(
    log: AuditLog, engine: Engine, known: bool
) -> None:
    """The append has read (or made) the order's salt and holds its transaction open: the
    erasure waits for it, then takes its clear values too."""
    if known:
        log.append("agent", "order.detected", {"order_id": "A-1", "order": ORDER})
    later = {**ORDER, "notes": "leave it with the neighbour at no. 7"}
    gone: list[int] = []
    with engine.begin() as conn:
        entry = log.append("agent", "order.noted", {"order_id": "A-1", "order": later}, conn=conn)
        eraser = threading.Thread(
            target=lambda: gone.append(log.erase("A-1", actor="operator", reason="request 7"))
        )
        eraser.start()
        time.sleep(0.3)
        assert eraser.is_alive() and not gone  # waiting for the append to commit
    eraser.join(30)
    assert gone == [6 if known else 5]  # the earlier entry's five values and the new note
    refs = sorted(refs_in(entry.payload))
    assert log.clear_values(refs) == {} and log.salts(refs) == {}
    result = log.verify()
    assert result.ok and result.count == 2 + known, result.problem


def test_an_append_that_read_a_salt_before_an_erasure_leaves_nothing_inconsistent(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The append reads the order's salt, then stops before the head lock while the erasure
    starts. Whichever lands first, no entry before the erasure keeps a clear value, and every
    clear value still held has its salt."""
    log.append("agent", "order.detected", {"order_id": "A-1", "order": ORDER})
    paused, go = threading.Event(), threading.Event()
    lock_head = AuditLog._lock_head

    def held_back(self: AuditLog, conn: Connection) -> Any:
        if threading.current_thread().name == "appender" and not paused.is_set():
            paused.set()
            go.wait(10)
        return lock_head(self, conn)

    monkeypatch.setattr(AuditLog, "_lock_head", held_back)
    later = {**ORDER, "notes": "leave it with the neighbour at no. 7"}
    failures: list[BaseException] = []

    def run(work: Callable[[], object]) -> Callable[[], None]:
        def target() -> None:
            try:
                work()
            except BaseException as error:  # the assertion below shows it
                failures.append(error)

        return target

    appender = threading.Thread(
        target=run(lambda: log.append("agent", "order.noted", {"order_id": "A-1", "order": later})),
        name="appender",
    )
    appender.start()
    assert paused.wait(10)
    eraser = threading.Thread(target=run(lambda: log.erase("A-1", actor="op", reason="r")))
    eraser.start()
    time.sleep(0.3)
    go.set()
    appender.join(30)
    eraser.join(30)
    assert not failures, failures
    entries = list(log.entries())
    erased_at = next(e.seq for e in entries if e.event == "personal.erased")
    before = set().union(*(refs_in(e.payload) for e in entries if e.seq < erased_at))
    assert before and log.clear_values(sorted(before)) == {}
    everywhere = sorted(set().union(*(refs_in(e.payload) for e in entries)))
    assert set(log.clear_values(everywhere)) <= set(log.salts(everywhere))
    assert log.verify().ok


def test_names_only_where_they_are_a_person(log: AuditLog) -> None:
    entry = log.append(
        "agent",
        "e",
        {
            "carrier": {"name": "SF Express"},
            "template": {"name": "confirm_address"},
            "contact": {"name": "Ann"},
            "other": {"name": "Bob", "email": "b@example.com"},
        },
    )
    payload = entry.payload
    assert payload["carrier"]["name"] == "SF Express"
    assert payload["template"]["name"] == "confirm_address"
    assert is_ref(payload["contact"]["name"]) and is_ref(payload["other"]["name"])


def test_without_personal_data_handling_values_stay(engine: Engine, signing_key: object) -> None:
    from audit.keys import StaticKey

    plain = AuditLog(engine, signer=StaticKey(signing_key), personal_data=False)  # type: ignore[arg-type]
    from store.migrate import upgrade

    upgrade(engine)
    entry = plain.append("agent", "e", {"order_id": "A-1", "email": "z@example.cn"})
    assert entry.payload["email"] == "z@example.cn"
