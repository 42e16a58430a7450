"""Signed notes, verifier keys, checkpoints and cosignatures against the C2SP specifications.

Sources: c2sp.org/signed-note (the example verifier key and note in "Verifier keys /
Example"), c2sp.org/tlog-checkpoint (the note text format), c2sp.org/tlog-cosignature (the
cosignature/v1 message and timestamped signature), all from github.com/C2SP/C2SP at commit
5ba5ee830903e91240fc6f9f3a7a9293d49e69c9.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import CheckpointBody, parse_body, parse_checkpoint, sign_checkpoint
from audit.merkle import EMPTY_ROOT
from audit.note import (
    COSIGNATURE_V1,
    ED25519,
    NoteError,
    Signer,
    cosigned_message,
    key_id,
    parse_note,
    parse_vkey,
    raw_public,
)

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3m"
    "FXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_the_spec_example_note_verifies_with_the_spec_vkey() -> None:
    key = parse_vkey(SPEC_VKEY)
    assert (key.name, key.kind, key.key_id.hex()) == ("example.com/foo", ED25519, "530d903a")
    assert key.vkey() == SPEC_VKEY
    note = parse_note(SPEC_NOTE)
    assert note.text == "This is an example message.\n"
    assert note.signed_by(key) is True
    assert note.render() == SPEC_NOTE


def test_a_changed_text_or_signature_fails_and_unknown_keys_are_ignored() -> None:
    key = parse_vkey(SPEC_VKEY)
    changed = parse_note(SPEC_NOTE.replace("example message", "example massage"))
    assert changed.signed_by(key) is False
    other = Signer("example.com/foo", ED25519, Ed25519PrivateKey.generate()).verifier
    assert parse_note(SPEC_NOTE).signed_by(other) is None  # same name, another key ID


def test_key_ids_follow_the_spec() -> None:
    key = parse_vkey(SPEC_VKEY)
    digest = hashlib.sha256(b"example.com/foo\n\x01" + raw_public(key.public_key)).digest()
    assert key_id("example.com/foo", ED25519, key.public) == digest[:4]
    assert key_id("example.com/foo", COSIGNATURE_V1, key.public) != digest[:4]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no+key", "three parts"),
        ("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "key ID"),
        ("example.com/foo+530d903a+AQ==", "not an Ed25519 key"),
        ("exa mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "without spaces"),
        ("example.com/foo+zz+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not hex"),
    ],
)
def test_bad_vkeys_say_why(text: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        parse_vkey(text)


@pytest.mark.parametrize(
    ("note", "problem"),
    [
        ("text\n— a AAAAAAAA\n", "no blank line"),
        ("text\n\n", "no signature"),
        ("text\n\n— a AAAAAAAA", "ends with a newline"),
        ("te\x07xt\n\n— a AAAAAAAA\n", "control characters"),
        ("\x00text\n\n— a AAAAAAAA\n", "control characters"),
        ("text\tand\n\n— a AAAAAAAA\n", "control characters"),
        ("text\r\n\n— a AAAAAAAA\n", "control characters"),
        ("text\n\n— a AAAAAAAA\x1f\n", "control characters"),
        ("text\n\n— a\u3000b AAAAAAAA\n", "without spaces"),
        ("text\n\n— a\u00a0b AAAAAAAA\n", "without spaces"),
        ("text\n\n— a+b AAAAAAAAAAAAAAAA\n", "without spaces"),
        ("text\n\n- a AAAAAAAA\n", "does not start with"),
        ("text\n\n— a !!!\n", "signature line 1"),
        ("text\n\n— a AAA=\n", "too short"),
    ],
)
def test_malformed_notes_say_why(note: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        parse_note(note)


def test_checkpoints_are_tlog_checkpoint_notes() -> None:
    key = Ed25519PrivateKey.generate()
    body = CheckpointBody("example.com/behind-the-sofa", 20852163, b"\x0a" * 32)
    signed = sign_checkpoint(Signer(body.origin, ED25519, key), body)
    text = signed.render()
    lines = text.split("\n")
    assert lines[:4] == [body.origin, "20852163", base64.b64encode(b"\x0a" * 32).decode(), ""]
    assert lines[4].startswith("\u2014 example.com/behind-the-sofa ")
    again = parse_checkpoint(text)
    assert again.body == body
    verifier = Signer(body.origin, ED25519, key).verifier
    assert again.log_signature([verifier]) == verifier
    with pytest.raises(NoteError, match="named after it"):
        sign_checkpoint(Signer("another.example/log", ED25519, key), body)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("origin\n12\n", "at least three lines"),
        ("\n12\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "origin line is empty"),
        ("o\n012\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "leading zeros"),
        ("o\n-1\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n", "not a decimal"),
        ("o\n1\n!!\n", "not base64"),
        ("o\n1\nAAAA\n", "not a SHA-256 hash"),
        ("o\n1\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n\n", "extension lines"),
    ],
)
def test_malformed_checkpoints_say_why(text: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        parse_body(text)


def test_cosignatures_are_timestamped_and_sign_the_cosignature_v1_message() -> None:
    witness = Signer("witness.example/w1", COSIGNATURE_V1, Ed25519PrivateKey.generate())
    log_key = Ed25519PrivateKey.generate()
    body = CheckpointBody("example.com/log", 5, b"\x01" * 32)
    checkpoint = sign_checkpoint(Signer(body.origin, ED25519, log_key), body)
    line = witness.signature_line(checkpoint.note.text, timestamp=1679315147)
    raw = base64.b64decode(line.split(" ")[2])
    assert raw[:4] == witness.verifier.key_id
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    message = cosigned_message(checkpoint.note.text.encode(), 1679315147)
    assert message.startswith(b"cosignature/v1\ntime 1679315147\nexample.com/log\n5\n")
    witness.private_key.public_key().verify(raw[12:], message)
    cosigned = checkpoint.with_cosignatures(line)
    assert cosigned.note.signed_by(witness.verifier) is True
    assert cosigned.note.signatures[1].timestamp == 1679315147
    # the cosigner's key never passes for the log's key, nor the other way round
    as_log = Signer(witness.name, ED25519, witness.private_key).verifier
    assert cosigned.note.signed_by(as_log) is None
    with pytest.raises(NoteError, match="timestamp"):
        witness.signature_line(checkpoint.note.text)
