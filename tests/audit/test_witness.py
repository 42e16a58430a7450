"""Witnesses (c2sp.org/tlog-witness): cosign consistent checkpoints, refuse rolled-back and
forked ones; the log stores cosignatures; verify requires a tlog-policy quorum."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, exc, text

from audit.checkpoint import CheckpointBody, SignedCheckpoint, sign_checkpoint
from audit.errors import AuditError
from audit.keys import log_verifier
from audit.log import AuditLog
from audit.merkle import Tree, leaf_hash
from audit.note import ED25519, Signer
from audit.policy import PolicyFileError, parse_policy
from audit.verify import Trust
from audit.witness import Witness, WitnessRefusal, render_request
from tests.audit.conftest import Tamper, fill


@pytest.fixture
def witness(tmp_path: Path, log: AuditLog, signing_key: Ed25519PrivateKey) -> Witness:
    fill(log, 1)  # the log needs an origin and a key before the witness can follow it
    w = Witness.init(tmp_path / "w1", "auditor.example/w1")
    w.follow(log_verifier(signing_key.public_key(), log.origin()).vkey())
    return w


def _request(log: AuditLog, old: int) -> tuple[str, SignedCheckpoint]:
    checkpoint = log.latest_checkpoint(cosigned=False)
    assert checkpoint is not None
    proof = Tree(log.leaf_hashes(checkpoint.size)).consistency(old) if old else []
    return render_request(old, proof, checkpoint.render()), checkpoint


def _cosign(log: AuditLog, witness: Witness) -> int:
    old = log.witnessed_size(witness.verifier)
    body, checkpoint = _request(log, old)
    line = witness.add_checkpoint(body)
    log.add_cosignatures(checkpoint, line, witness.verifier)
    return checkpoint.size


def _refused(witness: Witness, body: str, status: int, words: str) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal, match=words) as caught:
        witness.add_checkpoint(body)
    assert caught.value.status == status
    return caught.value


def test_a_witness_cosigns_consistent_checkpoints_and_the_log_keeps_them(
    log: AuditLog, witness: Witness
) -> None:
    assert _cosign(log, witness) == 1
    fill(log, 6, batch=2)
    assert _cosign(log, witness) == 7
    assert log.witnessed_size(witness.verifier) == 7
    cosigned = log.checkpoint_at(7)
    assert cosigned is not None and cosigned.note.signed_by(witness.verifier) is True
    latest = witness.latest(log.origin())
    assert latest is not None and latest.startswith(f"{log.origin()}\n7\n")
    assert [c.size for c in log.cosignatures()] == [1, 7]


def test_a_witness_refuses_a_rollback(log: AuditLog, witness: Witness) -> None:
    fill(log, 4)
    _cosign(log, witness)  # size 5
    stale, _ = _request(log, 0)
    refusal = _refused(witness, stale, 409, "last cosigned size 5")
    assert refusal.body == "5\n"
    old_checkpoint = log.checkpoint_at(3)
    assert old_checkpoint is not None
    body = render_request(5, [], old_checkpoint.render())
    _refused(witness, body, 400, "old size 5 is past the new 3")


def test_a_witness_refuses_a_fork_and_a_split_view(
    log: AuditLog, witness: Witness, signing_key: Ed25519PrivateKey
) -> None:
    """The operator holds the key: it signs another history. The witness's record of the
    root it cosigned shows the fork."""
    fill(log, 3)
    _cosign(log, witness)  # size 4
    leaves = log.leaf_hashes(4)
    forked = [
        *leaves[:2],
        leaf_hash(b"another history"),
        leaves[3],
        leaf_hash(b"x"),
        leaf_hash(b"y"),
    ]
    origin = log.origin()
    signer = Signer(origin, ED25519, signing_key)
    fork = sign_checkpoint(signer, CheckpointBody(origin, 6, Tree(forked).root()))
    body = render_request(4, Tree(forked).consistency(4), fork.render())
    _refused(witness, body, 422, "not consistent .* forked or rewritten")
    same_size = sign_checkpoint(signer, CheckpointBody(origin, 4, Tree(forked).root(4)))
    _refused(witness, render_request(4, [], same_size.render()), 422, "split view")
    assert witness.latest(origin) is not None and "\n4\n" in witness.latest(origin)  # type: ignore[operator]


def test_a_witness_refuses_what_it_cannot_trust(
    log: AuditLog, witness: Witness, tmp_path: Path
) -> None:
    body, checkpoint = _request(log, 0)
    stranger = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(Signer(log.origin(), ED25519, stranger), checkpoint.body)
    _refused(witness, render_request(0, [], forged.render()), 403, "not signed by")
    unknown = CheckpointBody("elsewhere.example/log", 1, checkpoint.root)
    other = sign_checkpoint(Signer(unknown.origin, ED25519, stranger), unknown)
    _refused(witness, render_request(0, [], other.render()), 404, "does not follow")
    _refused(witness, "hello\n\n" + checkpoint.render(), 400, "old <size>")
    _refused(witness, body.replace("\n\n", "\n"), 400, "no blank line")
    _refused(witness, render_request(0, [b"\0" * 32], checkpoint.render()), 422, "must be empty")


def test_two_requests_at_once_cannot_roll_the_witness_back(log: AuditLog, witness: Witness) -> None:
    fill(log, 2)
    body, _ = _request(log, 0)
    results: list[str] = []

    def send() -> None:
        try:
            witness.add_checkpoint(body)
            results.append("cosigned")
        except WitnessRefusal as refusal:
            results.append(str(refusal.status))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["409", "409", "409", "cosigned"]


def test_the_log_refuses_cosignatures_it_cannot_check(log: AuditLog, witness: Witness) -> None:
    body, checkpoint = _request(log, 0)
    line = witness.add_checkpoint(body)
    impostor = Witness.init(witness.dir.parent / "w2", "auditor.example/w1")
    with pytest.raises(AuditError, match="no valid cosignature"):
        log.add_cosignatures(checkpoint, line, impostor.verifier)
    other = CheckpointBody(checkpoint.origin, checkpoint.size, b"\1" * 32)
    with pytest.raises(AuditError, match="another history"):
        log.add_cosignatures(SignedCheckpoint(other, checkpoint.note), line, witness.verifier)


def _policy(*witnesses: Witness, quorum: str) -> str:
    lines = [f"witness {w.dir.name} {w.verifier.vkey()}" for w in witnesses]
    return "\n".join(["# test policy", *lines, quorum, ""])


def test_verify_requires_the_policy_quorum(
    log: AuditLog, witness: Witness, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    second = Witness.init(tmp_path / "w2", "auditor-b.example/w1")
    second.follow(log_verifier(signing_key.public_key(), log.origin()).vkey())
    third = Witness.init(tmp_path / "w3", "auditor-c.example/w1")
    keys = (log_verifier(signing_key.public_key()),)
    two_of_three = parse_policy(
        _policy(witness, second, third, quorum="group all3 2 w1 w2 w3\nquorum all3"), "p"
    )
    fill(log, 2)
    _cosign(log, witness)
    result = log.verify(Trust(keys=keys, witnesses=two_of_three))
    assert not result.ok and "no checkpoint carries cosignatures meeting" in (result.problem or "")
    _cosign(log, second)
    result = log.verify(Trust(keys=keys, witnesses=two_of_three))
    assert result.ok, result.problem
    assert result.witnessed_seq == 3
    fill(log, 2)  # later entries are signed by the log, witnessed up to 3
    assert log.verify(Trust(keys=keys, witnesses=two_of_three)).witnessed_seq == 3


def test_cosignatures_are_append_only(log: AuditLog, witness: Witness, engine: Engine) -> None:
    _cosign(log, witness)
    for sql in ("DELETE FROM audit_cosignatures", "UPDATE audit_cosignatures SET root = 'x'"):
        with pytest.raises(exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    assert len(log.cosignatures()) == 1


def test_a_cosignature_on_another_root_is_a_split_view(
    log: AuditLog, witness: Witness, tamper: Tamper, signing_key: Ed25519PrivateKey
) -> None:
    _cosign(log, witness)
    tamper("UPDATE audit_cosignatures SET root = :r", r="ab" * 32)
    result = log.verify(Trust(keys=(log_verifier(signing_key.public_key()),)))
    assert not result.ok and "split view" in (result.problem or ""), result.problem


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ("witness a example.com/w+00000000+AAAA\nquorum a\n", "p line 1"),
        ("quorum nobody\n", "naming a witness or group"),
        ("witness\n", "write `witness <name> <vkey> \\[url\\]`"),
        ("frobnicate x\n", "unknown line 'frobnicate'"),
        ("# only a comment\n", "no quorum line"),
    ],
)
def test_policy_files_say_where_and_what(policy: str, problem: str) -> None:
    with pytest.raises(PolicyFileError, match=problem):
        parse_policy(policy, "p")


def test_policy_groups_and_thresholds(tmp_path: Path, log: AuditLog) -> None:
    ws = [Witness.init(tmp_path / f"w{n}", f"w{n}.example/w") for n in range(4)]
    text_ = "\n".join(f"witness w{n} {w.verifier.vkey()}" for n, w in enumerate(ws))
    fill(log, 1)
    checkpoint = log.latest_checkpoint(cosigned=False)
    assert checkpoint is not None
    lines = "".join(w.signer.signature_line(checkpoint.note.text, timestamp=1) for w in ws[:2])
    cosigned = checkpoint.with_cosignatures(lines)
    for rule, holds in [
        ("group g any w0 w3\nquorum g", True),
        ("group g all w0 w1 w2\nquorum g", False),
        ("group g 2 w0 w1 w2\nquorum g", True),
        ("group x 1 w2 w3\ngroup y all w0 w1\ngroup z all x y\nquorum z", False),
        ("quorum w1", True),
        ("quorum none", True),
    ]:
        assert parse_policy(text_ + "\n" + rule + "\n", "p").satisfied(cosigned) is holds, rule
    with pytest.raises(PolicyFileError, match="already a member"):
        parse_policy(text_ + "\ngroup a any w0\ngroup b any w0\nquorum b\n", "p")
    with pytest.raises(PolicyFileError, match="threshold '5'"):
        parse_policy(text_ + "\ngroup a 5 w0 w1\nquorum a\n", "p")
