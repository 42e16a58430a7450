"""The negative suite on the database, in the style of transparency-dev's verifier tests: every
change someone with write access to the database can make is caught, on SQLite and PostgreSQL,
and the result names what and where.

The log under attack has 10 entries committed as 1, 1, 1, 5, 1, 1: checkpoints of sizes
1, 2, 3, 8, 9 and 10.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from audit.checkpoint import CheckpointBody, sign_checkpoint
from audit.keys import StaticKey, log_verifier
from audit.log import AuditLog
from audit.merkle import CompactRange
from audit.models import GENESIS_HASH, entry_hash
from audit.note import ED25519, Signer
from audit.verify import Trust
from domain.canonical import canonical_json
from store.migrate import upgrade
from tests.audit.conftest import StepClock, Tamper, fill


@pytest.fixture
def filled(log: AuditLog) -> AuditLog:
    fill(log, 3)
    fill(log, 5, batch=5)
    fill(log, 2)
    assert [c.size for c in log.checkpoints()] == [1, 2, 3, 8, 9, 10]
    return log


@pytest.fixture
def trust(signing_key: Ed25519PrivateKey) -> Trust:
    return Trust(keys=(log_verifier(signing_key.public_key()),))


def _check(result: Any, first_bad: int | None, *words: str) -> None:
    assert not result.ok, "the tampering was not caught"
    assert result.first_bad_seq == first_bad, result.problem
    for word in words:
        assert word in (result.problem or ""), result.problem


def test_an_intact_log_verifies(filled: AuditLog, trust: Trust) -> None:
    result = filled.verify(trust)
    assert result.ok, result.problem
    assert (result.count, result.head) == filled.head()
    assert result.checkpointed_seq == 10 and result.signatures_checked
    assert filled.verify(Trust(keys=trust.keys, all_signatures=True)).ok


@pytest.mark.parametrize(
    ("sql", "first_bad", "problem"),
    [
        ("UPDATE audit_log SET payload = :forged WHERE seq = 5", 5, "hash does not match"),
        (
            "UPDATE audit_log SET payload = replace(payload, :was, :now) WHERE seq = 5",
            5,
            "entry 5: hash does not match",
        ),
        ("UPDATE audit_log SET actor = 'person:mallory' WHERE seq = 5", 5, "hash does not match"),
        ("UPDATE audit_log SET event = 'plan.approved' WHERE seq = 5", 5, "hash does not match"),
        ("UPDATE audit_log SET at = '2020-01-01T00:00:00Z' WHERE seq = 5", 5, "hash does not"),
        ("UPDATE audit_log SET hash = :fake WHERE seq = 5", 5, "hash does not match"),
        ("UPDATE audit_log SET prev_hash = :fake WHERE seq = 5", 5, "prev_hash does not match"),
        ("UPDATE audit_log SET seq = 100 WHERE seq = 5", 5, "entries 5..5 are missing"),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "entries 5..5 are missing"),
        ("DELETE FROM audit_log WHERE seq IN (1, 2)", 1, "entries 1..2 are missing"),
        ("UPDATE audit_log SET payload = 'garbage' WHERE seq = 5", 5, "hash does not match"),
    ],
)
def test_a_changed_entry_is_found_at_its_seq(
    filled: AuditLog, trust: Trust, tamper: Tamper, sql: str, first_bad: int, problem: str
) -> None:
    tamper(sql, fake="f" * 64, forged='{"n":999}', was='"n":2', now='"n":3')
    _check(filled.verify(trust), first_bad, problem)


def test_two_entries_swapped_are_found(filled: AuditLog, trust: Trust, tamper: Tamper) -> None:
    fourth, fifth = list(filled.entries(after_seq=3, limit=2))
    swap = "UPDATE audit_log SET payload = :p, actor = :a, event = :e WHERE seq = :s"
    tamper(swap, p=canonical_json(fifth.payload).decode(), a=fifth.actor, e=fifth.event, s=4)
    tamper(swap, p=canonical_json(fourth.payload).decode(), a=fourth.actor, e=fourth.event, s=5)
    _check(filled.verify(trust), 4, "entry 4: hash does not match")


def test_a_forged_entry_inserted_after_the_last_checkpoint_is_unsigned(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    """A correctly chained `proposal.approved`, appended with the head moved: nothing signs it."""
    seq, digest, frontier = _insert_chained(filled, tamper)
    tamper(
        "UPDATE audit_head SET seq = :s, hash = :h, frontier = :f",
        s=seq,
        h=digest,
        f=frontier.to_hex(),
    )
    _check(filled.verify(trust), 11, "entries 11..11 are covered by no signed checkpoint")


def test_a_forged_entry_with_a_checkpoint_signed_by_another_key(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    _append_forged(filled, tamper, Ed25519PrivateKey.generate())
    _check(filled.verify(trust), 11, "size 11", "not signed by a key you trust")


def test_the_tail_cut_with_the_later_checkpoints_kept(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    _cut(filled, tamper, 6, drop_checkpoints=False)
    _check(filled.verify(trust), 7, "records 10 entries", "entries 7..10 were removed")


def test_the_tail_cut_back_to_a_genuine_checkpoint_needs_what_the_auditor_kept(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    """Entries 9-10 and their checkpoints removed, the head moved back: the database alone is
    a consistent log of 8 (its checkpoint of 8 is genuine). The checkpoint an auditor (or a
    witness) kept at 10 shows the cut."""
    kept = filled.latest_checkpoint()
    assert kept is not None and kept.size == 10
    _cut(filled, tamper, 8, drop_checkpoints=True)
    assert filled.verify(trust).ok  # nothing in the database contradicts it
    result = filled.verify(Trust(keys=trust.keys, trusted=kept))
    _check(result, 9, "the checkpoint you trust records 10 entries", "entries 9..10 were removed")


def test_the_whole_log_wiped(filled: AuditLog, trust: Trust, tamper: Tamper) -> None:
    kept = filled.latest_checkpoint()
    tamper("DELETE FROM audit_log")
    tamper("DELETE FROM audit_checkpoints")
    tamper("UPDATE audit_head SET seq = 0, hash = :g, frontier = ''", g=GENESIS_HASH)
    _check(filled.verify(trust), None, "no signed checkpoint at all", "the log is empty")
    _check(
        filled.verify(Trust(keys=trust.keys, trusted=kept)),
        1,
        "the checkpoint you trust records 10 entries but the log holds 0",
    )


def test_every_checkpoint_deleted(filled: AuditLog, trust: Trust, tamper: Tamper) -> None:
    tamper("DELETE FROM audit_checkpoints")
    _check(filled.verify(trust), 1, "no signed checkpoint at all", "the checkpoints were deleted")


def test_a_rehashed_chain_with_the_old_checkpoints_kept(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    _rewrite_from(filled, tamper, 5, {"order_id": "o-5", "refund": 0})
    # the checkpoint of 3 still vouches for 1..3; the one of 8 sees the rewrite
    _check(filled.verify(trust), 4, "the checkpoint of size 8", "an entry in 4..8 was rewritten")


def test_a_rehashed_chain_with_the_later_checkpoints_dropped(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    _rewrite_from(filled, tamper, 5, {"forged": True})
    tamper("DELETE FROM audit_checkpoints WHERE size >= 5")
    _check(filled.verify(trust), 4, "entries 4..10 are covered by no signed checkpoint")


def test_a_rehashed_chain_resigned_with_another_key(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    _rewrite_from(filled, tamper, 5, {"forged": True})
    _resign(filled, tamper, Ed25519PrivateKey.generate(), since=4)
    result = filled.verify(trust)
    _check(result, 4, "the checkpoint of size 8", "not signed by a key you trust")
    assert result.checkpointed_seq == 3


def test_a_forged_newest_checkpoint(filled: AuditLog, trust: Trust, tamper: Tamper) -> None:
    note = filled.checkpoints()[-1].note
    head, signature = note.rsplit(" ", 1)
    forged = head + " " + ("A" if signature[0] != "A" else "B") + signature[1:]
    tamper("UPDATE audit_checkpoints SET note = :n WHERE size = 10", n=forged)
    _check(filled.verify(trust), 10, "the checkpoint of size 10", "not signed by a key you trust")


def test_a_checkpoint_that_contradicts_its_row(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    tamper("UPDATE audit_checkpoints SET root = :r WHERE size = 8", r="0" * 64)
    _check(filled.verify(trust), None, "stored beside a note for size 8")


def test_checkpoints_of_another_log_spliced_in(
    filled: AuditLog, trust: Trust, tamper: Tamper, engine: Engine
) -> None:
    other_key = Ed25519PrivateKey.generate()
    body = CheckpointBody("exdesk.local/audit/0000000000000000", 11, b"\1" * 32)
    foreign = sign_checkpoint(Signer(body.origin, ED25519, other_key), body)
    tamper(
        "INSERT INTO audit_checkpoints (size, root, at, note) VALUES (11, :r, 'x', :n)",
        r=foreign.root.hex(),
        n=foreign.render(),
    )
    _check(filled.verify(trust), None, "names the log", "a splice")


def test_the_head_row_moved_back_or_its_border_changed(
    filled: AuditLog, trust: Trust, tamper: Tamper
) -> None:
    tamper("UPDATE audit_head SET seq = 8")
    _check(filled.verify(trust), 9, "audit_head records only 8")
    tamper("UPDATE audit_head SET seq = 10, frontier = :f", f="00" * 64)
    _check(filled.verify(trust), None, "Merkle tree border does not match")


def test_keys_fail_closed(filled: AuditLog) -> None:
    _check(filled.verify(Trust()), 1, "no public key")
    wrong = Trust(keys=(log_verifier(Ed25519PrivateKey.generate().public_key()),))
    result = filled.verify(wrong)
    _check(result, 1, "not signed by a key you trust")
    assert result.checkpointed_seq == 0


def test_a_log_nobody_signed_fails(engine: Engine) -> None:
    empty = AuditLog(engine, signer=StaticKey(Ed25519PrivateKey.generate()), clock=StepClock())
    upgrade(engine)
    _check(empty.verify(), None, "no signed checkpoint at all", "the log is empty")


def test_a_removed_head_row_is_reported(filled: AuditLog, trust: Trust, tamper: Tamper) -> None:
    tamper("DELETE FROM audit_head")
    _check(filled.verify(trust), None, "audit_head row is missing")


def test_verify_streams_a_larger_log(log: AuditLog, trust: Trust) -> None:
    fill(log, 2500, batch=250)
    result = log.verify(trust)
    assert result.ok and result.count == 2500 and result.checkpointed_seq == 2500


# --- what a forger does ---------------------------------------------------------------------


def _cut(log: AuditLog, tamper: Tamper, keep: int, *, drop_checkpoints: bool) -> None:
    entries = list(log.entries(limit=keep))
    frontier = CompactRange()
    frontier.extend(bytes.fromhex(e.hash) for e in entries)
    tamper("DELETE FROM audit_log WHERE seq > :k", k=keep)
    if drop_checkpoints:
        tamper("DELETE FROM audit_checkpoints WHERE size > :k", k=keep)
    tamper(
        "UPDATE audit_head SET seq = :k, hash = :h, frontier = :f",
        k=keep,
        h=entries[-1].hash,
        f=frontier.to_hex(),
    )


def _rewrite_from(log: AuditLog, tamper: Tamper, seq: int, payload: dict[str, Any]) -> str:
    """Rewrite entry ``seq``'s payload and re-hash it and every later entry, as a forger would."""
    entries = list(log.entries(after_seq=seq - 1))
    prev = entries[0].prev_hash
    for entry in entries:
        body = payload if entry.seq == seq else entry.payload
        new_hash = entry_hash(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            event=entry.event,
            payload_json=canonical_json(body),
            prev_hash=prev,
        )
        tamper(
            "UPDATE audit_log SET payload = :p, prev_hash = :prev, hash = :h WHERE seq = :s",
            p=canonical_json(body).decode(),
            prev=prev,
            h=new_hash,
            s=entry.seq,
        )
        prev = new_hash
    frontier = CompactRange()
    frontier.extend(bytes.fromhex(e.hash) for e in log.entries())
    tamper("UPDATE audit_head SET hash = :h, frontier = :f", h=prev, f=frontier.to_hex())
    return prev


def _resign(log: AuditLog, tamper: Tamper, key: Ed25519PrivateKey, *, since: int) -> None:
    """Replace the checkpoints of size > ``since`` by ones with the right roots, signed by
    ``key``."""
    origin = log.origin()
    hashes = [bytes.fromhex(e.hash) for e in log.entries()]
    for checkpoint in log.checkpoints(since=since):
        compact = CompactRange()
        compact.extend(hashes[: checkpoint.size])
        body = CheckpointBody(origin, checkpoint.size, compact.root())
        note = sign_checkpoint(Signer(origin, ED25519, key), body)
        tamper(
            "UPDATE audit_checkpoints SET root = :r, note = :n WHERE size = :s",
            r=note.root.hex(),
            n=note.render(),
            s=checkpoint.size,
        )


FORGED_AT = "2026-01-02T03:04:05.999000Z"


def _insert_chained(log: AuditLog, tamper: Tamper) -> tuple[int, str, CompactRange]:
    """A correctly chained `proposal.approved` by mallory, inserted after the head (which is
    left as it was): its seq, its hash, and the log's frontier with it."""
    seq, prev = log.head()
    payload = canonical_json({"proposal_id": "P-1", "status_after": "approved"})
    digest = entry_hash(
        seq=seq + 1,
        at=FORGED_AT,
        actor="person:mallory",
        event="proposal.approved",
        payload_json=payload,
        prev_hash=prev,
    )
    tamper(
        "INSERT INTO audit_log (seq, at, actor, event, payload, prev_hash, hash) "
        "VALUES (:s, :at, 'person:mallory', 'proposal.approved', :p, :prev, :h)",
        s=seq + 1,
        at=FORGED_AT,
        p=payload.decode(),
        prev=prev,
        h=digest,
    )
    frontier = CompactRange()
    frontier.extend(bytes.fromhex(e.hash) for e in log.entries())
    return seq + 1, digest, frontier


def _append_forged(log: AuditLog, tamper: Tamper, key: Ed25519PrivateKey) -> None:
    seq, digest, frontier = _insert_chained(log, tamper)
    origin = log.origin()
    note = sign_checkpoint(
        Signer(origin, ED25519, key), CheckpointBody(origin, seq, frontier.root())
    )
    tamper(
        "INSERT INTO audit_checkpoints (size, root, at, note) VALUES (:s, :r, :at, :n)",
        s=seq,
        r=note.root.hex(),
        at=FORGED_AT,
        n=note.render(),
    )
    tamper(
        "UPDATE audit_head SET seq = :s, hash = :h, frontier = :f",
        s=seq,
        h=digest,
        f=frontier.to_hex(),
    )


Forgery = Callable[[AuditLog, Tamper], None]
