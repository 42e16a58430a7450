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
    KeyFile,
    load_or_create_signing_key,
    load_public_key,
    log_verifier,
    public_key_path,
    public_key_pem,
    read_verifiers,
)
from audit.log import AuditLog
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


def test_checkpoints_verify_with_the_vkey_pubkey_prints(log: AuditLog, tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path / KEY)
    signed = AuditLog(log.engine, signer=KeyFile(tmp_path / KEY))
    fill(signed, 3)
    vkey = log_verifier(key.public_key(), signed.origin()).vkey()
    assert vkey.startswith(signed.origin() + "+")
    (tmp_path / "log.vkey").write_text(vkey + "\n")
    (named,) = read_verifiers(tmp_path / "log.vkey")
    (pem,) = read_verifiers(public_key_path(tmp_path / KEY))
    assert pem.name == "*" and named.name == signed.origin()
    checkpoint = signed.latest_checkpoint()
    assert checkpoint is not None
    assert checkpoint.log_signature([named]) == named
    assert checkpoint.log_signature([pem.named(signed.origin())]) is not None
    assert read_verifiers(vkey) == [named]  # a vkey given as text
    both = tmp_path / "keys.txt"
    both.write_text(public_key_path(tmp_path / KEY).read_text() + "# the same, named\n" + vkey)
    assert [k.name for k in read_verifiers(both)] == ["*", signed.origin()]


def test_key_files_explain_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="no such file, and not a verifier key"):
        read_verifiers("a+b+c")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(AuditKeyError, match="no public key in it"):
        read_verifiers(empty)
    bad = tmp_path / "bad.txt"
    bad.write_text("example.com/log+00000000+AAAA\n")
    with pytest.raises(AuditKeyError, match="line 1"):
        read_verifiers(bad)


def test_a_key_file_loads_lazily_and_reloads(tmp_path: Path) -> None:
    source = KeyFile(tmp_path / "k" / KEY)
    assert source.public_key() is None and not (tmp_path / "k").exists()
    key = source.private_key()
    assert public_key_pem(source.public_key()) == public_key_pem(key.public_key())  # type: ignore[arg-type]
    (tmp_path / "k" / KEY).unlink()
    public_key_path(tmp_path / "k" / KEY).unlink()
    source.reload()
    assert public_key_pem(source.private_key().public_key()) != public_key_pem(key.public_key())
