"""The audit log's records and the bytes their hashes cover.

An entry is the RFC 8785 canonical JSON of ``{actor, at, event, payload, prev_hash, seq}``;
its ``hash`` is the RFC 6962 leaf hash of those bytes, ``SHA-256(0x00 || entry)``, in lowercase
hex, so the hash chain (``prev_hash``) and the Merkle tree over the log share one hash per entry
and a leaf can never pass for an interior node. The first entry's ``prev_hash`` is
:data:`GENESIS_HASH`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of entry 1, and the head of an empty log."""

ENTRY_FIELDS = ("seq", "at", "actor", "event", "payload", "prev_hash", "hash")


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
    """A stored checkpoint: the signed note (``tlog-checkpoint``) for a tree of ``size``
    entries whose root is ``root`` (hex), written at ``at`` (not signed)."""

    size: int = Field(ge=0)
    root: str
    at: str
    note: str


class Cosignature(BaseModel, frozen=True):
    """A witness's cosignature line on the checkpoint of ``size`` and ``root`` (hex)."""

    size: int = Field(ge=0)
    root: str
    witness: str
    line: str
    at: str


class VerifyResult(BaseModel, frozen=True):
    """What verification found.

    ``count``, ``head`` and ``root`` describe the entries that verified (all of them when
    ``ok``). ``first_bad_seq`` is the lowest seq verification cannot vouch for: the entry that
    breaks the chain, the first missing entry, the first entry no signed checkpoint covers, or
    the first after the last checkpoint that matched when a checkpoint disagrees with an
    intact-looking chain (entries rewritten with their successors). None when ``ok``, and
    also when only a checkpoint is wrong in a way that says nothing about the entries.
    ``checkpointed_seq``: the entries a checkpoint signed by a trusted key covers.
    ``witnessed_seq``: those a checkpoint with a quorum of witness cosignatures covers (0 when
    no witness policy was given). ``trusted_seq``: the size of the checkpoint the auditor kept
    (``--trusted``), which the log was found consistent with.
    """

    ok: bool
    count: int
    head: str
    root: str = ""
    origin: str | None = None
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpointed_seq: int = 0
    signatures_checked: bool = False
    witnessed_seq: int = 0
    trusted_seq: int | None = None
    keys: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def json_str(value: str) -> str:
    """RFC 8785 form of a string: JSON escapes for ``"``, ``\\`` and control characters only
    (what ``json.dumps(ensure_ascii=False)`` writes, lowercase ``\\u00xx`` included)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'  # nothing to escape (the common case: labels, hashes, times)
    return json.dumps(value, ensure_ascii=False)


def entry_text(
    *, seq: int, at: str, actor: str, event: str, payload_json: str, prev_hash: str
) -> str:
    """The canonical JSON of an entry whose payload is already canonical JSON text; the
    object is assembled here in RFC 8785 key order, so the payload is not canonicalized twice."""
    return (
        f'{{"actor":{json_str(actor)},"at":{json_str(at)},"event":{json_str(event)},'
        f'"payload":{payload_json},"prev_hash":{json_str(prev_hash)},"seq":{seq}}}'
    )


def entry_hash_bytes(text: str) -> bytes:
    """The RFC 6962 leaf hash of an entry's canonical text."""
    return hashlib.sha256(b"\x00" + text.encode("utf-8")).digest()


def entry_hash(
    *, seq: int, at: str, actor: str, event: str, payload_json: bytes | str, prev_hash: str
) -> str:
    """The hash of an entry whose payload is already canonical JSON (``canonical_json``)."""
    payload = payload_json.decode("utf-8") if isinstance(payload_json, bytes) else payload_json
    text = entry_text(
        seq=seq, at=at, actor=actor, event=event, payload_json=payload, prev_hash=prev_hash
    )
    return entry_hash_bytes(text).hex()
