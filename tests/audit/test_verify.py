"""verify() finds every kind of tampering and says where the log stops being trustworthy."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.log import GENESIS_HASH, AuditLog
from audit.models import entry_hash
from domain.canonical import canonical_json
from tests.audit.conftest import Tamper, fill


def test_an_empty_log_verifies(log: AuditLog, signing_key: Ed25519PrivateKey) -> None:
    checkpoint = log.checkpoint(signing_key)
    assert (checkpoint.seq, checkpoint.head) == (0, GENESIS_HASH)
    result = log.verify(signing_key.public_key())
    assert result.ok
    assert (result.count, result.head, result.first_bad_seq) == (0, GENESIS_HASH, None)


def test_an_intact_log_verifies_with_its_checkpoints(
    log: AuditLog, signing_key: Ed25519PrivateKey
) -> None:
    fill(log, 6, batch=4)
    log.checkpoint(signing_key)
    fill(log, 4)
    log.checkpoint(signing_key)
    fill(log, 2)

    result = log.verify(signing_key.public_key())
    assert result.ok, result.problem
    assert (result.count, result.head) == log.head()
    assert result.checkpointed_seq == 10
    assert result.signatures_checked
    assert not log.verify().signatures_checked


@pytest.mark.parametrize(
    ("sql", "first_bad", "problem"),
    [
        ("UPDATE audit_log SET payload = :forged WHERE seq = 5", 5, "hash does not match"),
        ("UPDATE audit_log SET actor = 'person:mallory' WHERE seq = 5", 5, "hash does not match"),
        ("UPDATE audit_log SET hash = :fake WHERE seq = 5", 5, "hash does not match"),
        ("UPDATE audit_log SET prev_hash = :fake WHERE seq = 5", 5, "prev_hash does not match"),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "entries 5..5 are missing"),
        ("DELETE FROM audit_log WHERE seq IN (1, 2)", 1, "entries 1..2 are missing"),
        ("UPDATE audit_log SET payload = 'garbage' WHERE seq = 5", 5, "not valid JSON"),
        ("UPDATE audit_log SET payload = '[1]' WHERE seq = 5", 5, "payload is list"),
    ],
)
def test_changes_to_entries_are_found_at_the_changed_seq(
    log: AuditLog, tamper: Tamper, sql: str, first_bad: int, problem: str
) -> None:
    fill(log, 8)
    tamper(sql, fake="f" * 64, forged='{"n":999}')
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == first_bad
    assert problem in (result.problem or "")
    assert result.count == first_bad - 1


def test_a_truncated_tail_below_a_checkpoint_is_found(
    log: AuditLog, tamper: Tamper, signing_key: Ed25519PrivateKey
) -> None:
    fill(log, 8)
    log.checkpoint(signing_key)
    fill(log, 2)
    sixth = _hash_of(log, 6)
    # Drop 7..10 and move the head back, so the chain and the head agree with each other.
    tamper("DELETE FROM audit_log WHERE seq > 6")
    tamper("UPDATE audit_head SET seq = 6, hash = :h", h=sixth)

    result = log.verify(signing_key.public_key())
    assert not result.ok
    assert result.first_bad_seq == 7
    assert "log ends at seq 6: entries 7..8 were removed" in (result.problem or "")


def test_a_truncated_tail_shows_in_the_head_even_without_checkpoints(
    log: AuditLog, tamper: Tamper
) -> None:
    fill(log, 8)
    tamper("DELETE FROM audit_log WHERE seq > 6")
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.count) == (False, 7, 6)
    assert "audit_head records 8 entries" in (result.problem or "")


def test_entries_past_the_head_are_found(log: AuditLog, tamper: Tamper) -> None:
    fill(log, 8)
    tamper("UPDATE audit_head SET seq = 5, hash = :h", h=_hash_of(log, 5))
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 6)


def test_a_rewritten_entry_with_rewritten_successors_is_found_by_a_checkpoint(
    log: AuditLog, tamper: Tamper, signing_key: Ed25519PrivateKey
) -> None:
    fill(log, 3)
    log.checkpoint(signing_key)
    fill(log, 5)
    log.checkpoint(signing_key)
    fill(log, 2)
    _rewrite_from(log, tamper, 5, {"order_id": "o-5", "refund": 0})

    chain_only = log.verify()  # the rewrite is self-consistent: only the checkpoint at 8 sees it
    assert not chain_only.ok
    result = log.verify(signing_key.public_key())
    assert not result.ok
    # The checkpoint at 3 still vouches for 1..3; from 4 on nothing does.
    assert (result.first_bad_seq, result.checkpointed_seq) == (4, 3)
    assert "checkpoint at seq 8" in (result.problem or "")
    assert "rewritten" in (result.problem or "")


def test_a_rewrite_that_leaves_the_head_behind_is_found_without_checkpoints(
    log: AuditLog, tamper: Tamper
) -> None:
    fill(log, 6)
    _rewrite_from(log, tamper, 4, {"forged": True}, move_head=False)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "audit_head records hash" in (result.problem or "")


def test_a_forged_checkpoint_fails_its_signature(
    log: AuditLog, tamper: Tamper, signing_key: Ed25519PrivateKey
) -> None:
    fill(log, 3)
    log.checkpoint(signing_key)
    fill(log, 5)
    log.checkpoint(signing_key)
    head = _rewrite_from(log, tamper, 5, {"forged": True})
    tamper("UPDATE audit_checkpoints SET head = :h WHERE seq = 8", h=head)

    assert log.verify().ok  # without the key, a full rewrite including checkpoints passes
    result = log.verify(signing_key.public_key())
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "does not verify with the given public key" in (result.problem or "")


def test_the_wrong_public_key_fails(log: AuditLog, signing_key: Ed25519PrivateKey) -> None:
    fill(log, 4)
    log.checkpoint(signing_key)
    result = log.verify(Ed25519PrivateKey.generate().public_key())
    assert not result.ok
    assert "does not verify with the given public key" in (result.problem or "")
    assert result.checkpointed_seq == 0


def test_a_removed_head_row_is_reported(log: AuditLog, tamper: Tamper) -> None:
    fill(log, 3)
    tamper("DELETE FROM audit_head")
    result = log.verify()
    assert not result.ok
    assert "audit_head row is missing" in (result.problem or "")
    assert "entries up to seq 3" in (result.problem or "")


def test_verify_streams_a_larger_log(log: AuditLog, signing_key: Ed25519PrivateKey) -> None:
    fill(log, 2500, batch=250)
    log.checkpoint(signing_key)
    result = log.verify(signing_key.public_key())
    assert (result.ok, result.count, result.checkpointed_seq) == (True, 2500, 2500)


def _hash_of(log: AuditLog, seq: int) -> str:
    return next(log.entries(after_seq=seq - 1, limit=1)).hash


def _rewrite_from(
    log: AuditLog, tamper: Tamper, seq: int, payload: dict[str, Any], *, move_head: bool = True
) -> str:
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
    if move_head:
        tamper("UPDATE audit_head SET hash = :h", h=prev)
    return prev
