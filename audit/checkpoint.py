"""Checkpoints as C2SP ``tlog-checkpoint`` signed notes: the origin line naming the log, the
tree size, the RFC 6962 root (base64), signed with Ed25519 under the origin as key name.

    exdesk.local/audit/5f0c1e2a9b3d4c6e
    2951
    q0mJ0mH8l3+0b6y8m6vZk4Xn0dK1xXQ7m2k1m3Jt3rE=

    — exdesk.local/audit/5f0c1e2a9b3d4c6e Az3grlgtzPICa5OS8npVmf1Myq/5IZni…
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from audit.note import ED25519, Note, NoteError, Signature, Signer, Verifier, parse_note


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"


def parse_body(text: str) -> CheckpointBody:
    """The first three lines of a checkpoint's note text; NoteError says what is wrong."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint's text is at least three lines: origin, size, root hash")
    origin, size, root = lines[0], lines[1], lines[2]
    if any(not extension for extension in lines[3:-1]):
        raise NoteError("a checkpoint's extension lines must not be empty")
    if not origin:
        raise NoteError("the checkpoint's origin line is empty")
    if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise NoteError(f"the checkpoint's size {size!r} is not a decimal without leading zeros")
    try:
        digest = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise NoteError(f"the checkpoint's root {root!r} is not base64") from None
    if len(digest) != 32:
        raise NoteError(f"the checkpoint's root is {len(digest)} bytes, not a SHA-256 hash")
    return CheckpointBody(origin, int(size), digest)


@dataclass(frozen=True)
class SignedCheckpoint:
    body: CheckpointBody
    note: Note

    @property
    def origin(self) -> str:
        return self.body.origin

    @property
    def size(self) -> int:
        return self.body.size

    @property
    def root(self) -> bytes:
        return self.body.root

    def render(self) -> str:
        return self.note.render()

    def log_signature(self, keys: list[Verifier]) -> Verifier | None:
        """The first of ``keys`` whose signature on this checkpoint verifies. A key given
        without a name (a PEM file) signs under the checkpoint's origin."""
        for key in keys:
            if key.kind != ED25519 or key.name != self.origin:
                continue
            if self.note.signed_by(key):
                return key
        return None

    def with_cosignatures(self, lines: str) -> SignedCheckpoint:
        return SignedCheckpoint(self.body, self.note.with_lines(lines))


def parse_checkpoint(text: str) -> SignedCheckpoint:
    note = parse_note(text)
    return SignedCheckpoint(parse_body(note.text), note)


def sign_checkpoint(signer: Signer, body: CheckpointBody) -> SignedCheckpoint:
    if signer.kind != ED25519 or signer.name != body.origin:
        raise NoteError(
            f"a checkpoint of {body.origin} is signed by an Ed25519 key named after it, "
            f"not {signer.name!r}"
        )
    text = body.text()
    line = signer.signature_line(text)
    raw = base64.b64decode(line.rsplit(" ", 1)[1])
    return SignedCheckpoint(body, Note(text, (Signature(signer.name, raw[:4], raw[4:], line),)))
