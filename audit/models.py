"""The audit log's records and the bytes their hashes and signatures cover.

An entry's hash is ``sha256(canonical_json({seq, at, actor, event, payload, prev_hash}))`` in
lowercase hex; the first entry's ``prev_hash`` is :data:`GENESIS_HASH`. A checkpoint's signature
is Ed25519 over ``canonical_json({seq, head, at})``, in lowercase hex.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field

from domain.canonical import canonical_json

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of entry 1, and the head of an empty log."""


class AuditEntry(BaseModel, frozen=True):
    """One row of the log, as appended."""

    seq: int = Field(ge=1)
    at: str
    actor: str
    event: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class Checkpoint(BaseModel, frozen=True):
    """A signed statement that the log had ``seq`` entries ending in hash ``head`` at ``at``."""

    seq: int = Field(ge=0)
    head: str
    at: str
    signature: str


class VerifyResult(BaseModel, frozen=True):
    """What verification found.

    ``count`` and ``head`` describe the entries that verified (all of them when ``ok``).
    ``first_bad_seq`` is the lowest seq verification cannot vouch for: the entry that breaks
    the chain, the first missing entry, or, when a checkpoint or ``audit_head`` disagrees with
    an intact-looking chain (entries rewritten together with their successors), the first entry
    after the last checkpoint that did match. It is None when ``ok``, and also when only a
    checkpoint itself is wrong in a way that says nothing about the entries.
    ``checkpointed_seq`` is the highest seq covered by a checkpoint that matched;
    ``signatures_checked`` says whether those checkpoints' signatures were verified too.
    """

    ok: bool
    count: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpointed_seq: int = 0
    signatures_checked: bool = False


def entry_hash(
    *, seq: int, at: str, actor: str, event: str, payload_json: bytes, prev_hash: str
) -> str:
    """The hash of an entry whose payload is already canonical JSON (``canonical_json(payload)``).

    Equal to ``sha256(canonical_json({...}))`` over the six fields; the object is assembled
    here, in RFC 8785 key order, so the payload is not canonicalized a second time.
    """
    body = b"".join(
        (
            b'{"actor":',
            canonical_json(actor),
            b',"at":',
            canonical_json(at),
            b',"event":',
            canonical_json(event),
            b',"payload":',
            payload_json,
            b',"prev_hash":',
            canonical_json(prev_hash),
            b',"seq":',
            canonical_json(seq),
            b"}",
        )
    )
    return hashlib.sha256(body).hexdigest()


def checkpoint_message(*, seq: int, head: str, at: str) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return canonical_json({"seq": seq, "head": head, "at": at})
