"""C2SP signed notes (c2sp.org/signed-note), their verifier keys, and Ed25519 cosignatures
(c2sp.org/tlog-cosignature, signature type 0x04).

A note is text ending in a newline, a blank line, then one line per signature:
``— <key name> base64(key ID || signature)``. The key ID is the first four bytes of
``SHA-256(name || "\\n" || type || public key)``. A verifier key ("vkey") is
``<name>+<hex key ID>+base64(type || public key)``. A cosignature signs
``"cosignature/v1\\ntime <unix seconds>\\n" + note text`` and carries the time before the
Ed25519 signature (8 bytes, big-endian).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
_KINDS = {ED25519: "Ed25519 note signer", COSIGNATURE_V1: "Ed25519 cosigner (cosignature/v1)"}
DASH = "\u2014"
MAX_SIGNATURES = 64


class NoteError(ValueError):
    """A note, key or signature that cannot be read or does not verify."""


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, kind: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([kind]) + public).digest()[:4]


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # control characters but the newline
_SPACE_OR_PLUS = re.compile(r"[\s+]")


def check_name(name: str) -> str:
    if not name or _SPACE_OR_PLUS.search(name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


@dataclass(frozen=True)
class Verifier:
    """A public key that verifies note signatures of one kind, under one name."""

    name: str
    kind: int
    public_key: Ed25519PublicKey

    @property
    def public(self) -> bytes:
        return raw_public(self.public_key)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.kind, self.public)

    def vkey(self) -> str:
        material = base64.b64encode(bytes([self.kind]) + self.public).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def named(self, name: str) -> Verifier:
        return Verifier(check_name(name), self.kind, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` (after the key ID) signs ``message`` under this key."""
        if self.kind == COSIGNATURE_V1:
            if len(signature) != 8 + 64:
                return False
            timestamp = struct.unpack(">Q", signature[:8])[0]
            message = cosigned_message(message, timestamp)
            signature = signature[8:]
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_vkey(text: str) -> Verifier:
    """A verifier key ``name+keyid+base64(type||key)``; NoteError says what is wrong."""
    parts = text.strip().split("+", 2)  # base64 may hold "+"; name and ID may not
    if len(parts) != 3:
        raise NoteError(
            f"{_short(text)} is not a verifier key (name+keyid+key, three parts joined by '+')"
        )
    name, hex_id, material = parts
    check_name(name)
    try:
        raw = base64.b64decode(material, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise NoteError(f"{_short(text)}: key ID or key is not hex / base64") from None
    if len(raw) != 33 or raw[0] not in _KINDS:
        raise NoteError(
            f"{_short(text)}: not an Ed25519 key (type 0x01) or cosigner key (type 0x04)"
        )
    verifier = Verifier(name, raw[0], Ed25519PublicKey.from_public_bytes(raw[1:]))
    if verifier.key_id != wanted:
        raise NoteError(f"{_short(text)}: the key ID does not match the name and key")
    return verifier


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes (or cosigns checkpoints) under a name."""

    name: str
    kind: int
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.kind, self.private_key.public_key())

    @property
    def key_id(self) -> bytes:
        return _signer_key_id(self.name, self.kind, self.private_key)

    def signature_line(self, text: str, *, timestamp: int | None = None) -> str:
        """The signature line for note text ``text`` (cosigners need ``timestamp``)."""
        message = text.encode("utf-8")
        prefix = b""
        if self.kind == COSIGNATURE_V1:
            if timestamp is None or not 0 < timestamp < 2**63:
                raise NoteError("a cosignature needs a positive POSIX timestamp")
            prefix = struct.pack(">Q", timestamp)
            message = cosigned_message(message, timestamp)
        signature = self.key_id + prefix + self.private_key.sign(message)
        return f"{DASH} {self.name} {base64.b64encode(signature).decode('ascii')}\n"


_KEY_IDS: dict[tuple[str, int, int], tuple[Ed25519PrivateKey, bytes]] = {}


def _signer_key_id(name: str, kind: int, key: Ed25519PrivateKey) -> bytes:
    """A signer's key ID, remembered (a log signs at every commit under one name and key)."""
    known = _KEY_IDS.get((name, kind, id(key)))
    if known is None or known[0] is not key:
        known = (key, key_id(name, kind, raw_public(key.public_key())))
        if len(_KEY_IDS) > 64:
            _KEY_IDS.clear()
        _KEY_IDS[(name, kind, id(key))] = known
    return known[1]


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime " + str(timestamp).encode("ascii") + b"\n" + text


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes  # after the key ID
    line: str

    @property
    def timestamp(self) -> int | None:
        """The cosignature's time, when this is one (the first 8 bytes of a 72-byte body)."""
        if len(self.signature) != 72:
            return None
        return int(struct.unpack(">Q", self.signature[:8])[0])


@dataclass(frozen=True)
class Note:
    text: str  # ends in a newline; excludes the blank line
    signatures: tuple[Signature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)

    def with_lines(self, lines: str) -> Note:
        """This note with more signature lines (a witness's answer), duplicates dropped."""
        added = parse_signature_lines(lines)
        seen = {s.line for s in self.signatures}
        return Note(self.text, self.signatures + tuple(s for s in added if s.line not in seen))

    def signed_by(self, verifier: Verifier) -> bool | None:
        """True when a signature of ``verifier`` verifies, False when one is there and does
        not, None when the note has none of its signatures (name and key ID)."""
        found = [
            s for s in self.signatures if s.name == verifier.name and s.key_id == verifier.key_id
        ]
        if not found:
            return None
        message = self.text.encode("utf-8")
        return all(verifier.verify(message, s.signature) for s in found)


def parse_note(data: str) -> Note:
    """Split a signed note into text and signatures; NoteError says what is malformed."""
    if _CONTROL.search(data):
        raise NoteError("a signed note may hold no control characters but newlines")
    if not data.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("no blank line between the note text and its signatures")
    text, lines = data[: split + 1], data[split + 2 :]
    signatures = parse_signature_lines(lines)
    if not signatures:
        raise NoteError("the note has no signature")
    return Note(text, signatures)


def parse_signature_lines(lines: str) -> tuple[Signature, ...]:
    out: list[Signature] = []
    for number, line in enumerate(lines.splitlines(keepends=True), start=1):
        if not line.endswith("\n"):
            raise NoteError(f"signature line {number} does not end with a newline")
        body = line[:-1]
        if not body.startswith(DASH + " "):
            raise NoteError(f"signature line {number} does not start with '{DASH} '")
        parts = body[2:].split(" ")
        if len(parts) != 2:
            raise NoteError(f"signature line {number}: expected '{DASH} <name> <signature>'")
        name, encoded = parts
        try:
            check_name(name)
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, NoteError) as exc:
            raise NoteError(f"signature line {number}: {exc}") from None
        if len(raw) < 5:
            raise NoteError(f"signature line {number}: too short to hold a key ID and signature")
        out.append(Signature(name, raw[:4], raw[4:], line))
        if len(out) > MAX_SIGNATURES:
            raise NoteError(f"more than {MAX_SIGNATURES} signatures on one note")
    return tuple(out)


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
