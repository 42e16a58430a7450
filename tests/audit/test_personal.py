"""Personal data out of the chain: salted digests in the entries, clear values beside the log,
erasure that leaves the chain verifying."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import Engine, text

from audit.log import AuditLog
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
