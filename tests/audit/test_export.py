"""The export round-trips, and verify_export needs nothing but the lines and the public key."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.errors import AuditError
from audit.log import GENESIS_HASH, AuditLog, verify_export
from audit.models import entry_hash
from domain.canonical import canonical_json
from tests.audit.conftest import Tamper, fill


def _export(log: AuditLog) -> list[str]:
    buffer = io.StringIO()
    written = log.export(buffer)
    lines = buffer.getvalue().splitlines()
    assert written == sum(1 for line in lines if not line.startswith('{"checkpoint"'))
    return lines


@pytest.fixture
def exported(log: AuditLog, signing_key: Ed25519PrivateKey) -> list[str]:
    fill(log, 5)
    log.checkpoint(signing_key)
    fill(log, 5, batch=5)
    log.checkpoint(signing_key)
    return _export(log)


def test_export_writes_entries_then_checkpoints_as_canonical_lines(
    log: AuditLog, exported: list[str]
) -> None:
    assert len(exported) == 12
    objects = [json.loads(line) for line in exported]
    assert [o["seq"] for o in objects[:10]] == list(range(1, 11))
    assert objects[:10] == [e.model_dump() for e in log.entries()]
    assert [o["checkpoint"]["seq"] for o in objects[10:]] == [5, 10]
    assert all(
        canonical_json(o).decode() == line for o, line in zip(objects, exported, strict=True)
    )


def test_round_trip_verifies(exported: list[str], signing_key: Ed25519PrivateKey) -> None:
    result = verify_export(exported, signing_key.public_key())
    assert result.ok, result.problem
    assert (result.count, result.checkpointed_seq, result.signatures_checked) == (10, 10, True)


def test_verify_export_reads_a_file(
    log: AuditLog, exported: list[str], signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        log.export(fh)
    with path.open(encoding="utf-8") as fh:
        result = verify_export(fh, signing_key.public_key())
    assert result.ok and result.head == log.head()[1]


def test_the_wrong_key_fails(exported: list[str]) -> None:
    result = verify_export(exported, Ed25519PrivateKey.generate().public_key())
    assert not result.ok
    assert "does not verify" in (result.problem or "")


def _edit(index: int, change: Callable[[dict[str, Any]], None]) -> Callable[[list[str]], None]:
    def apply(lines: list[str]) -> None:
        obj = json.loads(lines[index])
        change(obj)
        lines[index] = json.dumps(obj)

    return apply


@pytest.mark.parametrize(
    ("tampering", "first_bad", "problem"),
    [
        (_edit(3, lambda o: o["payload"].update(n=99)), 4, "hash does not match"),
        (_edit(3, lambda o: o.update(actor="person:mallory")), 4, "hash does not match"),
        (_edit(3, lambda o: o.update(extra=1)), 4, "line 4: entry 4: unexpected field(s) extra"),
        (lambda lines: lines.pop(3), 4, "entries 4..4 are missing"),
        (lambda lines: lines.insert(4, lines[3]), 5, "seq 4 comes again"),
        (lambda lines: lines.__delitem__(slice(6, 10)), 7, "entries 7..10 were removed"),
        (lambda lines: lines.__delitem__(slice(10, 12)), 1, "no checkpoint"),
        (_edit(11, lambda o: o["checkpoint"].update(seq=9)), 6, "does not verify"),
        (lambda lines: lines.__setitem__(3, lines[3][:-1] + ',"seq":4}'), 4, "duplicate key"),
        (lambda lines: lines.__setitem__(3, "{not json"), 4, "line 4: not valid JSON"),
        (lambda lines: lines.__setitem__(3, "[1, 2]"), 4, "expected a JSON object"),
        (lambda lines: lines.append(lines[9]), 11, "entry after the checkpoints"),
        (lambda lines: lines.__setitem__(10, '{"checkpoint": {"seq": "5"}}'), None, "checkpoint"),
    ],
)
def test_tampering_with_the_export_is_found(
    exported: list[str],
    signing_key: Ed25519PrivateKey,
    tampering: Callable[[list[str]], object],
    first_bad: int | None,
    problem: str,
) -> None:
    lines = list(exported)
    tampering(lines)
    result = verify_export(lines, signing_key.public_key())
    assert not result.ok
    assert result.first_bad_seq == first_bad
    assert problem in (result.problem or ""), result.problem


def test_a_full_rewrite_of_the_export_is_found_through_the_signatures(
    exported: list[str], signing_key: Ed25519PrivateKey
) -> None:
    entries = [json.loads(line) for line in exported[:10]]
    forged = _rehash([{**e, "payload": {**e["payload"], "forged": True}} for e in entries])
    result = verify_export(forged + exported[10:], signing_key.public_key())
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "an entry in 1..5 was rewritten" in (result.problem or "")


def test_blank_lines_are_ignored(exported: list[str], signing_key: Ed25519PrivateKey) -> None:
    assert verify_export(["", *exported, "  "], signing_key.public_key()).ok


def _rehash(entries: list[dict[str, Any]]) -> list[str]:
    """What a forger without the signing key can do: a new, self-consistent chain."""
    prev, lines = GENESIS_HASH, []
    for entry in entries:
        fields = {k: entry[k] for k in ("seq", "at", "actor", "event")}
        digest = entry_hash(**fields, payload_json=canonical_json(entry["payload"]), prev_hash=prev)
        lines.append(json.dumps({**entry, "prev_hash": prev, "hash": digest}))
        prev = digest
    return lines


def test_export_refuses_an_unreadable_row(log: AuditLog, tamper: Tamper) -> None:
    fill(log, 3)
    tamper("UPDATE audit_log SET payload = 'oops' WHERE seq = 2")
    with pytest.raises(AuditError, match="seq 2 cannot be read"):
        log.export(io.StringIO())
