"""The export round-trips and verify_export needs nothing but the lines and what the auditor
brings; the negative suite on exports (an auditor's copy edited, cut, spliced, re-signed)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import CheckpointBody, parse_checkpoint, sign_checkpoint
from audit.errors import AuditError
from audit.export import entry_line, verify_export
from audit.keys import log_verifier
from audit.log import AuditLog
from audit.merkle import CompactRange
from audit.models import GENESIS_HASH, entry_hash
from audit.note import ED25519, Signer
from audit.verify import Trust
from domain.canonical import canonical_json
from tests.audit.conftest import Tamper, fill

HEADER, CHECKPOINTS = 1, 6  # lines before the entries: the header, the checkpoints


def _export(log: AuditLog) -> list[str]:
    buffer = io.StringIO()
    written = log.export(buffer)
    lines = buffer.getvalue().splitlines()
    assert written == sum(1 for line in lines if line.startswith('{"actor"'))
    return lines


def at(seq: int) -> int:
    """The index of entry ``seq``'s line."""
    return HEADER + CHECKPOINTS + seq - 1


@pytest.fixture
def exported(log: AuditLog) -> list[str]:
    fill(log, 3)
    fill(log, 5, batch=5)
    fill(log, 2)
    return _export(log)


@pytest.fixture
def trust(signing_key: Ed25519PrivateKey) -> Trust:
    return Trust(keys=(log_verifier(signing_key.public_key()),))


def _check(lines: list[str], trust: Trust, first_bad: int | None, *words: str) -> None:
    result = verify_export(lines, trust)
    assert not result.ok, "the tampering was not caught"
    assert result.first_bad_seq == first_bad, result.problem
    for word in words:
        assert word in (result.problem or ""), result.problem


def test_the_export_holds_a_header_checkpoints_then_canonical_entries(
    log: AuditLog, exported: list[str]
) -> None:
    assert len(exported) == HEADER + CHECKPOINTS + 10
    assert json.loads(exported[0]) == {"exdesk_audit_export": 2, "origin": log.origin()}
    cps = [json.loads(line)["checkpoint"] for line in exported[1:7]]
    assert [c["size"] for c in cps] == [1, 2, 3, 8, 9, 10]
    objects = [json.loads(line) for line in exported[7:]]
    assert objects == [e.model_dump() for e in log.entries()]
    assert all(
        canonical_json(o).decode() == line for o, line in zip(objects, exported[7:], strict=True)
    )


def test_the_export_never_holds_the_private_key(
    exported: list[str], signing_key: Ed25519PrivateKey
) -> None:
    raw = signing_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    text = "\n".join(exported)
    assert "PRIVATE" not in text
    assert base64.b64encode(raw).decode()[:20] not in text and raw.hex()[:20] not in text


def test_round_trip_verifies(exported: list[str], trust: Trust, log: AuditLog) -> None:
    result = verify_export(exported, trust)
    assert result.ok, result.problem
    assert (result.count, result.checkpointed_seq, result.signatures_checked) == (10, 10, True)
    assert result.head == log.head()[1]
    kept = log.latest_checkpoint()
    assert verify_export(exported, Trust(keys=trust.keys, trusted=kept, all_signatures=True)).ok


def test_verify_export_reads_a_file(
    log: AuditLog, exported: list[str], trust: Trust, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        log.export(fh)
    with path.open(encoding="utf-8") as fh:
        assert verify_export(fh, trust).ok


def test_keys_fail_closed(exported: list[str]) -> None:
    _check(exported, Trust(), 1, "no public key")
    wrong = Trust(keys=(log_verifier(Ed25519PrivateKey.generate().public_key()),))
    _check(exported, wrong, 1, "not signed by a key you trust")


def _replace(seq: int, old: str, new: str) -> Callable[[list[str]], None]:
    def apply(lines: list[str]) -> None:
        assert old in lines[at(seq)]
        lines[at(seq)] = lines[at(seq)].replace(old, new, 1)

    return apply


@pytest.mark.parametrize(
    ("tampering", "first_bad", "problem"),
    [
        (_replace(5, '"n":2', '"n":3'), 5, "entry 5: hash does not match"),
        (_replace(5, '"actor":"agent"', '"actor":"agenT"'), 5, "hash does not match"),
        (_replace(5, '"hash":"', '"hash":"0'), 5, "hash does not match"),  # one byte
        (_replace(5, ',"seq":5}', ',"seq":6}'), 5, "entries 5..5 are missing"),
        (lambda lines: lines.pop(at(5)), 5, "entries 5..5 are missing"),
        (lambda lines: lines.insert(at(5), lines[at(4)]), 5, "seq 4 comes again"),
        (lambda lines: lines.insert(at(5), lines.pop(at(4))), 4, "entries 4..4 are missing"),
        (lambda lines: lines.__delitem__(slice(at(7), None)), 7, "entries 7..10 were removed"),
        (lambda lines: lines.__delitem__(slice(1, 7)), 1, "no signed checkpoint at all"),
        (lambda lines: lines.__setitem__(at(3), "{not json"), 3, "line 10: not valid JSON"),
        (lambda lines: lines.__setitem__(at(3), "[1, 2]"), 3, "not a JSON object"),
        (
            lambda lines: lines.__setitem__(at(3), lines[at(3)][:-1] + ',"extra":1}'),
            3,
            "unexpected field(s) extra",
        ),
        (
            lambda lines: lines.__setitem__(at(3), json.dumps(json.loads(lines[at(3)]))),
            3,
            "not written as exdesk wrote it",
        ),
        (lambda lines: lines.append(lines[2]), 11, "after the entries"),
        (lambda lines: lines.__setitem__(0, '{"exdesk_audit_export":1}'), 1, "format 1"),
        (
            lambda lines: lines.__setitem__(2, '{"checkpoint": {"size": "5"}}'),
            1,
            "not a valid checkpoint",
        ),
    ],
)
def test_tampering_with_the_export_is_found(
    exported: list[str],
    trust: Trust,
    tampering: Callable[[list[str]], object],
    first_bad: int | None,
    problem: str,
) -> None:
    lines = list(exported)
    tampering(lines)
    _check(lines, trust, first_bad, problem)


def test_a_forged_entry_appended_to_the_export_is_unsigned(
    exported: list[str], trust: Trust
) -> None:
    last = json.loads(exported[-1])
    payload = canonical_json({"proposal_id": "P-1"}).decode()
    fields = {
        "seq": 11,
        "at": last["at"],
        "actor": "person:mallory",
        "event": "proposal.approved",
        "prev_hash": last["hash"],
    }
    forged = {**fields, "hash": entry_hash(payload_json=payload, **fields)}
    _check([*exported, entry_line(forged, payload)], trust, 11, "covered by no signed checkpoint")


def test_an_export_cut_back_to_an_earlier_genuine_checkpoint(
    log: AuditLog, exported: list[str], trust: Trust
) -> None:
    """An older copy (or one cut with its later checkpoints) is a valid log of 8 on its own;
    the checkpoint the auditor kept at 10 shows it is not the log they saw."""
    kept = log.latest_checkpoint()
    cut = [line for line in exported[: at(9)] if '"size":9' not in line and '"size":10' not in line]
    assert verify_export(cut, trust).ok
    _check(cut, Trust(keys=trust.keys, trusted=kept), 9, "the checkpoint you trust records 10")


def test_a_rewrite_the_auditor_has_a_checkpoint_of_is_found(
    log: AuditLog, exported: list[str], trust: Trust, signing_key: Ed25519PrivateKey
) -> None:
    """The operator rewrote entry 2 and re-signed everything with the real key after the
    auditor kept the checkpoint of 3: a different root at that size."""
    kept = parse_checkpoint(log.checkpoints()[2].note)
    entries = [json.loads(line) for line in exported[HEADER + CHECKPOINTS :]]
    entries[1]["payload"] = {"forged": True}
    lines = _rehashed(entries)
    resigned = _checkpoint_lines(log.origin(), lines, signing_key, [1, 2, 3, 8, 9, 10])
    forged = [exported[0], *resigned, *lines]
    assert verify_export(forged, trust).ok  # re-signed with the real key, self-consistent
    _check(forged, Trust(keys=trust.keys, trusted=kept), 1, "the log was rewritten after")


def test_a_rehashed_export_with_its_old_checkpoints(exported: list[str], trust: Trust) -> None:
    entries = [json.loads(line) for line in exported[HEADER + CHECKPOINTS :]]
    entries[4]["payload"] = {"forged": True}
    forged = exported[: HEADER + CHECKPOINTS] + _rehashed(entries)
    _check(forged, trust, 4, "the checkpoint of size 8", "an entry in 4..8 was rewritten")


def test_a_rehashed_export_without_its_later_checkpoints(exported: list[str], trust: Trust) -> None:
    entries = [json.loads(line) for line in exported[HEADER + CHECKPOINTS :]]
    entries[4]["payload"] = {"forged": True}
    forged = exported[:4] + _rehashed(entries)  # checkpoints of 1, 2, 3 only
    _check(forged, trust, 4, "entries 4..10 are covered by no signed checkpoint")


def test_a_rehashed_export_resigned_with_another_key(
    log: AuditLog, exported: list[str], trust: Trust
) -> None:
    entries = [json.loads(line) for line in exported[HEADER + CHECKPOINTS :]]
    entries[4]["payload"] = {"forged": True}
    lines = _rehashed(entries)
    other = Ed25519PrivateKey.generate()
    resigned = _checkpoint_lines(log.origin(), lines, other, [8, 9, 10])
    forged = [*exported[:4], *resigned, *lines]
    _check(forged, trust, 4, "the checkpoint of size 8", "not signed by a key you trust")


def test_two_exports_spliced(
    log: AuditLog, exported: list[str], trust: Trust, engine: object, tamper: Tamper
) -> None:
    """The entries of another log (its own chain) with this log's checkpoints, and this log's
    entries with another log's checkpoints added."""
    other = _other_export()
    theirs = [line for line in other if line.startswith('{"actor"')]
    _check(exported[: HEADER + CHECKPOINTS] + theirs, trust, 1, "the checkpoint of size 1")
    their_cps = [line for line in other if line.startswith('{"checkpoint"')]
    mixed = [*exported[: HEADER + CHECKPOINTS], *their_cps, *exported[HEADER + CHECKPOINTS :]]
    _check(mixed, trust, None, "a splice")


def test_export_refuses_an_unreadable_row(log: AuditLog, tamper: Tamper) -> None:
    fill(log, 3)
    tamper("UPDATE audit_log SET payload = 'oops' WHERE seq = 2")
    lines = _export(log)  # written as stored: the verifier finds it
    with pytest.raises(AuditError):
        list(log.entries())
    result = verify_export(lines, Trust(keys=()))
    assert not result.ok


def _rehashed(entries: list[dict[str, object]]) -> list[str]:
    """What a forger without the signing key can do: a new, self-consistent chain."""
    prev, lines = GENESIS_HASH, []
    for entry in entries:
        payload = canonical_json(entry["payload"]).decode()
        fields = {k: entry[k] for k in ("seq", "at", "actor", "event")}
        digest = entry_hash(**fields, payload_json=payload, prev_hash=prev)  # type: ignore[arg-type]
        lines.append(entry_line({**fields, "prev_hash": prev, "hash": digest}, payload))
        prev = digest
    return lines


def _checkpoint_lines(
    origin: str, lines: list[str], key: Ed25519PrivateKey, sizes: list[int]
) -> list[str]:
    hashes = [bytes.fromhex(json.loads(line)["hash"]) for line in lines]
    out = []
    for size in sizes:
        compact = CompactRange()
        compact.extend(hashes[:size])
        note = sign_checkpoint(
            Signer(origin, ED25519, key), CheckpointBody(origin, size, compact.root())
        )
        record = {"at": "x", "note": note.render(), "root": note.root.hex(), "size": size}
        out.append(canonical_json({"checkpoint": record}).decode())
    return out


def _other_export() -> list[str]:
    import tempfile

    from audit.keys import StaticKey
    from store.db import make_engine
    from store.migrate import upgrade

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/other.db")
        try:
            other = AuditLog(engine, signer=StaticKey(Ed25519PrivateKey.generate()))
            upgrade(engine)
            fill(other, 4)
            return _export(other)
        finally:
            engine.dispose()
