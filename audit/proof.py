"""Proofs for one order: every entry about it, each with its RFC 6962 inclusion proof against
one signed (and perhaps witnessed) checkpoint, checked with nothing but the log's public key.

A bundle is JSON:

    {"format": "exdesk-audit-proof/v1", "order_id": …, "origin": …,
     "checkpoint": "<signed note, with cosignatures>",
     "entries": [{"index": seq - 1, "entry": {seq, at, actor, event, payload, prev_hash, hash},
                  "proof": [base64 hash, …]}, …],
     "personal": {"personal:…": {"value": …, "salt": …}}}          (only when asked for)

Each (index, proof, checkpoint) is a ``c2sp.org/tlog-proof@v1`` (:func:`tlog_proof` writes it
in that text form). The entry's leaf is its canonical text, so the verifier recomputes the leaf
hash from the entry itself. A bundle shows that these entries are in the log the checkpoint
signs; it cannot show that no other entry about the order exists (that needs the whole log).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit.checkpoint import SignedCheckpoint, parse_checkpoint
from audit.merkle import ProofError, Tree, verify_inclusion
from audit.models import AuditEntry, entry_hash_bytes, entry_text
from audit.note import ED25519, NoteError
from audit.personal import PREFIX, refs_in
from audit.verify import Trust, shape_problem
from domain.canonical import canonical_json

FORMAT = "exdesk-audit-proof/v1"
TLOG_PROOF = "c2sp.org/tlog-proof@v1"


def about_order(entries: Iterable[AuditEntry], order_id: str) -> list[AuditEntry]:
    """The entries about ``order_id``: those naming it (at the top of the payload or in a tool
    call's arguments), the tool calls of its plans (by plan key), its erasure."""
    chosen: list[AuditEntry] = []
    keyed: list[AuditEntry] = []
    plan_keys: set[str] = set()
    subject = f"order:{order_id}"
    for entry in entries:
        payload = entry.payload
        args = payload.get("args")
        names = payload.get("order_id") == order_id or payload.get("subject") == subject
        if names or (isinstance(args, Mapping) and args.get("order_id") == order_id):
            chosen.append(entry)
            if entry.event == "plan.finished" and isinstance(payload.get("plan_key"), str):
                plan_keys.add(payload["plan_key"])
        elif isinstance(payload.get("key"), str):
            keyed.append(entry)
    chosen += [e for e in keyed if str(e.payload["key"]).split(":", 1)[0] in plan_keys]
    return sorted(chosen, key=lambda e: e.seq)


def build_bundle(
    entries: list[AuditEntry],
    leaves: list[bytes],
    checkpoint: SignedCheckpoint,
    order_id: str,
    personal: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """A bundle for ``entries`` (all within the checkpoint) over the log's ``leaves``."""
    tree = Tree(leaves[: checkpoint.size])
    if tree.root() != checkpoint.root:
        raise ValueError("the log's entries do not hash to its newest checkpoint: run verify")
    items = [
        {
            "index": entry.seq - 1,
            "entry": entry.model_dump(),
            "proof": [_b64(h) for h in tree.inclusion(entry.seq - 1)],
        }
        for entry in entries
        if entry.seq <= checkpoint.size
    ]
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "order_id": order_id,
        "origin": checkpoint.origin,
        "checkpoint": checkpoint.render(),
        "entries": items,
    }
    if personal:
        bundle["personal"] = {ref: dict(v) for ref, v in sorted(personal.items())}
    return bundle


@dataclass
class ProofResult:
    ok: bool
    order_id: str = ""
    origin: str = ""
    size: int = 0
    entries: int = 0
    problem: str | None = None
    signed_by: str | None = None
    cosigners: list[str] = field(default_factory=list)
    personal_checked: int = 0


def verify_bundle(text: str, trust: Trust) -> ProofResult:
    """Check a bundle with what the auditor brings; the first problem is the result's."""
    try:
        bundle = json.loads(text)
    except ValueError as exc:
        return ProofResult(False, problem=f"not a proof bundle: not valid JSON ({exc})")
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        return ProofResult(False, problem=f"not a proof bundle (format {FORMAT})")
    result = ProofResult(False, order_id=str(bundle.get("order_id", "")))
    try:
        checkpoint = parse_checkpoint(str(bundle.get("checkpoint", "")))
    except NoteError as exc:
        result.problem = f"the bundle's checkpoint cannot be read ({exc})"
        return result
    result.origin, result.size = checkpoint.origin, checkpoint.size
    problem = _check_checkpoint(checkpoint, trust, result)
    if problem is None:
        problem = _check_entries(bundle, checkpoint, result)
    if problem is None:
        problem = _check_personal(bundle, result)
    result.problem = problem
    result.ok = problem is None
    return result


def _check_checkpoint(
    checkpoint: SignedCheckpoint, trust: Trust, result: ProofResult
) -> str | None:
    keys = [
        k.named(checkpoint.origin) if k.name == "*" else k
        for k in trust.all_keys()
        if k.kind == ED25519 and k.name in ("*", checkpoint.origin)
    ]
    if not keys:
        return (
            f"no key of log {checkpoint.origin!r} to check the checkpoint with: give the log's "
            "key (`exdesk audit pubkey`) with --public-key"
        )
    signer = checkpoint.log_signature(keys)
    if signer is None:
        return (
            f"the checkpoint (size {checkpoint.size}) is not signed by a key you trust: the "
            "bundle was forged, or comes from another log"
        )
    result.signed_by = signer.vkey()
    policy = trust.witnesses
    if policy is not None:
        result.cosigners = policy.cosigners(checkpoint)
        if not policy.satisfied(checkpoint):
            return (
                f"the checkpoint's cosignatures do not meet the witness policy "
                f"({policy.describe()}; cosigned by {', '.join(result.cosigners) or 'none'})"
            )
    return None


def _check_entries(
    bundle: dict[str, Any], checkpoint: SignedCheckpoint, result: ProofResult
) -> str | None:
    items = bundle.get("entries")
    if not isinstance(items, list) or not items:
        return "the bundle holds no entries"
    entries: list[AuditEntry] = []
    for number, item in enumerate(items, start=1):
        where = f"bundle entry {number}"
        if not isinstance(item, dict) or not isinstance(item.get("entry"), dict):
            return f"{where}: expected {{index, entry, proof}}"
        entry = item["entry"]
        shape = shape_problem(entry)
        if shape is not None:
            return f"{where}: {shape}"
        seq = entry["seq"]
        try:
            payload_json = canonical_json(entry["payload"]).decode("utf-8")
            proof = [base64.b64decode(h, validate=True) for h in item.get("proof", [])]
        except (TypeError, ValueError, binascii.Error) as exc:
            return f"{where} (seq {seq}): cannot be read ({exc})"
        fields = {k: entry[k] for k in ("seq", "at", "actor", "event", "prev_hash")}
        leaf = entry_hash_bytes(entry_text(payload_json=payload_json, **fields))
        if leaf.hex() != entry["hash"]:
            return f"{where} (seq {seq}): the entry does not hash to its hash: it was changed"
        if item.get("index") != seq - 1:
            return f"{where} (seq {seq}): index {item.get('index')!r} is not seq - 1"
        try:
            verify_inclusion(seq - 1, checkpoint.size, leaf, proof, checkpoint.root)
        except ProofError as exc:
            return f"{where} (seq {seq}): {exc}"
        entries.append(AuditEntry.model_validate(entry))
    about = {e.seq for e in about_order(entries, result.order_id)}
    stray = [e.seq for e in entries if e.seq not in about]
    if stray:
        return f"entries {stray} are not about order {result.order_id!r}"
    result.entries = len(entries)
    return None


def _check_personal(bundle: dict[str, Any], result: ProofResult) -> str | None:
    given = bundle.get("personal") or {}
    if not isinstance(given, dict):
        return "the bundle's personal values are not an object"
    used = set().union(*(refs_in(i.get("entry", {}).get("payload")) for i in bundle["entries"]))
    for ref, item in given.items():
        if ref not in used:
            return f"a personal value for {ref}, which no entry in the bundle holds"
        try:
            salt = bytes.fromhex(str(item["salt"]))
            value = str(item["value"])
        except (KeyError, TypeError, ValueError):
            return f"the personal value for {ref} needs its value and salt (hex)"
        mac = hmac.new(salt, value.encode("utf-8"), "sha256").hexdigest()
        if PREFIX + mac != ref:
            return f"the personal value given for {ref} is not the one the entry refers to"
        result.personal_checked += 1
    return None


def tlog_proof(index: int, proof: list[bytes], checkpoint: str) -> str:
    """One entry's proof as ``c2sp.org/tlog-proof@v1`` text."""
    lines = [TLOG_PROOF, f"index {index}", *(_b64(h) for h in proof)]
    return "\n".join(lines) + "\n\n" + checkpoint


def parse_tlog_proof(text: str) -> tuple[int, list[bytes], SignedCheckpoint]:
    head, sep, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != TLOG_PROOF:
        raise ProofError(f"not a {TLOG_PROOF} proof")
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        rest = rest[1:]
    if not rest or not rest[0].startswith("index ") or not rest[0][6:].isdigit():
        raise ProofError("the proof's index line is missing")
    try:
        proof = [base64.b64decode(line, validate=True) for line in rest[1:]]
        return int(rest[0][6:]), proof, parse_checkpoint(checkpoint)
    except (binascii.Error, NoteError) as exc:
        raise ProofError(f"the proof cannot be read ({exc})") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
