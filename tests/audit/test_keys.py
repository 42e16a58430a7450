"""The checkpoint key pair on disk, and checkpoints signed with it."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from audit.errors import AuditKeyError
from audit.keys import (
    PRIVATE_KEY_FILE,
    load_or_create_signing_key,
    load_public_key,
    public_key_path,
    public_key_pem,
)
from audit.log import AuditLog
from domain.canonical import canonical_json
from tests.audit.conftest import fill

KEY = PRIVATE_KEY_FILE


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_a_pair_then_loads_the_same_key(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    key = load_or_create_signing_key(folder / KEY)
    again = load_or_create_signing_key(folder / KEY)

    assert public_key_pem(again.public_key()) == public_key_pem(key.public_key())
    assert _mode(folder / PRIVATE_KEY_FILE) == 0o600
    assert _mode(public_key_path(folder / KEY)) == 0o644
    assert _mode(folder) == 0o700
    loaded = load_public_key(public_key_path(folder / KEY))
    assert public_key_pem(loaded) == public_key_pem(key.public_key())
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_processes_racing_to_create_end_up_with_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def create() -> None:
        barrier.wait()
        keys.append(public_key_pem(load_or_create_signing_key(tmp_path / KEY).public_key()))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert public_key_pem(load_public_key(public_key_path(tmp_path / KEY))) == keys[0]


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path / KEY)
    os.chmod(tmp_path / PRIVATE_KEY_FILE, 0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        load_or_create_signing_key(tmp_path / KEY)


def test_a_public_key_from_another_pair_is_refused(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path / "a" / KEY)
    load_or_create_signing_key(tmp_path / "b" / KEY)
    os.replace(public_key_path(tmp_path / "b" / KEY), public_key_path(tmp_path / "a" / KEY))
    with pytest.raises(AuditKeyError, match="does not belong to the signing key"):
        load_or_create_signing_key(tmp_path / "a" / KEY)


def test_a_missing_public_key_is_written_again(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path / KEY)
    public_key_path(tmp_path / KEY).unlink()
    load_or_create_signing_key(tmp_path / KEY)
    assert public_key_pem(load_public_key(public_key_path(tmp_path / KEY))) == public_key_pem(
        key.public_key()
    )


def test_load_public_key_explains_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="no public key file there"):
        load_public_key(tmp_path / "absent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(AuditKeyError, match="not a PEM public key"):
        load_public_key(garbage)
    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(AuditKeyError, match="not an Ed25519 public key"):
        load_public_key(other)


def test_a_corrupt_signing_key_is_refused(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path / KEY)
    (tmp_path / PRIVATE_KEY_FILE).write_text("broken")
    with pytest.raises(AuditKeyError, match="not an unencrypted PEM private key"):
        load_or_create_signing_key(tmp_path / KEY)


def test_checkpoint_signature_covers_canonical_seq_head_at(log: AuditLog, tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path / KEY)
    fill(log, 3)
    checkpoint = log.checkpoint(key)
    assert (checkpoint.seq, checkpoint.head) == log.head()
    message = canonical_json({"seq": checkpoint.seq, "head": checkpoint.head, "at": checkpoint.at})
    load_public_key(public_key_path(tmp_path / KEY)).verify(
        bytes.fromhex(checkpoint.signature), message
    )
    assert log.checkpoints() == [checkpoint]
