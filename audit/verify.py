"""Verifying a log, wherever it comes from (the database or an export), and failing closed.

:class:`LogVerifier` takes the checkpoints and cosignatures first, then the entries in seq
order (a row at a time, so logs of any length stream through it), then :meth:`finish`. For
each entry it checks the shape, the sequence, ``prev_hash`` and the hash (the RFC 6962 leaf
hash of the entry's canonical text), and adds it to the Merkle tree's right border; at each
checkpoint's size it compares the checkpoint's root with the tree's. It then requires:

- a checkpoint whose size is the number of entries (nothing unsigned past its commit), signed
  by a trusted key valid at that size (keys are rotated by an ``audit.key_rotated`` entry
  that the retiring key signs: that key then signs no checkpoint past the entry, the new one
  none before it);
- the auditor's trusted checkpoint, when given, to be a prefix of the log (same root at its
  size, and no more entries than the log holds);
- a quorum of witness cosignatures on some checkpoint, when a witness policy is given.

Every checkpoint's root is compared; signatures are checked where they carry weight (the
newest checkpoint, the trusted one, those at a key rotation, the witnessed ones, and, to
locate a rewrite, a search over the others), or on all of them (``all_signatures``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit.checkpoint import SignedCheckpoint, parse_checkpoint
from audit.merkle import EMPTY_ROOT, CompactRange
from audit.models import (
    ENTRY_FIELDS,
    GENESIS_HASH,
    Checkpoint,
    Cosignature,
    VerifyResult,
    entry_hash_bytes,
    entry_text,
)
from audit.note import ED25519, NoteError, Verifier, parse_vkey
from audit.policy import WitnessPolicy
from audit.rotation import ROTATION_EVENT, rotation_problem

_FIELD_TYPES: dict[str, type] = {
    "seq": int,
    "at": str,
    "actor": str,
    "event": str,
    "payload": dict,
    "prev_hash": str,
    "hash": str,
}


@dataclass(frozen=True)
class Trust:
    """What the auditor brings: log keys, a checkpoint kept earlier, a witness policy."""

    keys: tuple[Verifier, ...] = ()
    trusted: SignedCheckpoint | None = None
    witnesses: WitnessPolicy | None = None
    all_signatures: bool = False

    def all_keys(self) -> tuple[Verifier, ...]:
        logs = self.witnesses.logs if self.witnesses is not None else ()
        return (*self.keys, *logs)


@dataclass(frozen=True)
class HeadRow:
    """What ``audit_head`` records, to compare with what the entries add up to."""

    seq: int
    hash: str
    frontier: str | None
    origin: str | None


@dataclass
class _Point:
    """The checkpoints of one size, once their root has been compared."""

    size: int
    checkpoints: list[tuple[Checkpoint, SignedCheckpoint]]
    matched: bool = False


@dataclass
class _Rotation:
    seq: int
    old: bytes  # raw public key
    new: Verifier


@dataclass
class _State:
    count: int = 0
    head: str = GENESIS_HASH
    compact: CompactRange = field(default_factory=CompactRange)
    vouched: int = 0  # largest size whose checkpoint root matched
    bad: tuple[int | None, str] | None = None


class LogVerifier:
    """Checks one log; the first problem found stops it and is what :meth:`finish` reports."""

    def __init__(
        self,
        trust: Trust,
        checkpoints: Iterable[Checkpoint],
        cosignatures: Iterable[Cosignature] = (),
    ) -> None:
        self._trust = trust
        self._s = _State()
        self._origin: str | None = None
        self._rotations: list[_Rotation] = []
        self._points: dict[int, _Point] = {}
        self._cosigs: dict[int, list[Cosignature]] = defaultdict(list)
        self._witnessed = 0
        self._signed = 0
        self._notes: list[str] = []
        for cosig in cosignatures:
            self._cosigs[cosig.size].append(cosig)
        self._read_checkpoints(checkpoints)
        # the sizes at which add_row has checks to make (one set lookup an entry)
        self._due = {*self._points, *self._cosigs}
        if trust.trusted is not None:
            self._due.add(trust.trusted.size)
        if trust.trusted is not None and self._s.bad is None:
            self._check_trusted_signature(trust.trusted)
        self._at_size()

    # --- feeding -----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._s.count

    @property
    def broken(self) -> bool:
        return self._s.bad is not None

    def fail(self, first_bad_seq: int | None, problem: str) -> None:
        """Record a problem found outside the verifier (an unreadable row or line)."""
        if self._s.bad is None:
            self._s.bad = (first_bad_seq, problem)

    def add_row(
        self,
        *,
        seq: int,
        at: str,
        actor: str,
        event: str,
        payload_json: str,
        prev_hash: str,
        hash: str,
        where: str = "",
    ) -> bool:
        """Check the next entry, given its payload as the canonical text it was hashed over."""
        s = self._s
        if s.bad is not None:
            return False
        expected = s.count + 1
        if seq != expected:
            if seq > expected:
                self.fail(
                    expected,
                    f"{where}entries {expected}..{seq - 1} are missing (the next is seq {seq})",
                )
            else:
                self.fail(
                    expected, f"{where}seq {seq} comes again after seq {s.count}; seqs run 1, 2, …"
                )
            return False
        if prev_hash != s.head:
            self.fail(
                seq, f"{where}entry {seq}: prev_hash does not match the hash of entry {s.count}"
            )
            return False
        text = entry_text(
            seq=seq, at=at, actor=actor, event=event, payload_json=payload_json, prev_hash=prev_hash
        )
        digest = entry_hash_bytes(text)
        if digest.hex() != hash:
            self.fail(
                seq, f"{where}entry {seq}: hash does not match its content (the entry was changed)"
            )
            return False
        if event == ROTATION_EVENT:
            self._rotation(seq, payload_json, where)
        s.count = seq
        s.head = hash
        s.compact.append(digest)
        if seq in self._due:
            self._at_size()
        return s.bad is None

    def add_entry(self, entry: Mapping[str, Any], payload_json: str, *, where: str = "") -> bool:
        """Check the next entry given as a parsed object (an export line)."""
        shape = shape_problem(entry)
        if shape is not None:
            self.fail(self._s.count + 1, f"{where}entry {self._s.count + 1}: {shape}")
            return False
        return self.add_row(
            seq=entry["seq"],
            at=entry["at"],
            actor=entry["actor"],
            event=entry["event"],
            payload_json=payload_json,
            prev_hash=entry["prev_hash"],
            hash=entry["hash"],
            where=where,
        )

    # --- the end ---------------------------------------------------------------------------

    def finish(self, head: HeadRow | None = None) -> VerifyResult:
        """The result, after all entries; ``head`` is what ``audit_head`` records, if known."""
        s = self._s
        if s.bad is None:
            self._check_end()
        if s.bad is None and head is not None:
            self._check_head(head)
        if s.bad is None:
            self._check_newest_signature()
        if s.bad is None and self._trust.witnesses is not None:
            self._check_quorum()
        first_bad, problem = s.bad if s.bad is not None else (None, None)
        trusted = self._trust.trusted
        return VerifyResult(
            ok=s.bad is None,
            count=s.count,
            head=s.head,
            root=s.compact.root().hex(),
            origin=self._origin,
            first_bad_seq=first_bad,
            problem=problem,
            checkpointed_seq=self._signed,
            signatures_checked=self._signed > 0 or s.count == 0,
            witnessed_seq=self._witnessed,
            trusted_seq=trusted.size if trusted is not None and s.bad is None else None,
            keys=tuple(k.vkey() for k in self._keys_at(s.count)) if self._origin else (),
            notes=tuple(self._notes),
        )

    # --- checkpoints ---------------------------------------------------------------------------

    def _read_checkpoints(self, checkpoints: Iterable[Checkpoint]) -> None:
        for stored in checkpoints:
            try:
                signed = parse_checkpoint(stored.note)
            except NoteError as exc:
                self.fail(None, f"the checkpoint of size {stored.size} cannot be read ({exc})")
                return
            if signed.size != stored.size or signed.root.hex() != stored.root:
                self.fail(
                    None,
                    f"the checkpoint of size {stored.size} is stored beside a note for size "
                    f"{signed.size}: the checkpoints table was changed",
                )
                return
            if not self._same_origin(signed, f"the checkpoint of size {stored.size}"):
                return
            point = self._points.setdefault(stored.size, _Point(stored.size, []))
            point.checkpoints.append((stored, signed))

    def _same_origin(self, signed: SignedCheckpoint, what: str) -> bool:
        if self._origin is None:
            self._origin = signed.origin
        elif signed.origin != self._origin:
            self.fail(
                None,
                f"{what} names the log {signed.origin!r}, the others {self._origin!r}: "
                "checkpoints of two logs were mixed (a splice)",
            )
            return False
        return True

    def _at_size(self) -> None:
        """The checks due when the tree reaches its current size."""
        s = self._s
        size = s.count
        root = s.compact.root() if size else EMPTY_ROOT
        point = self._points.get(size)
        if point is not None:
            self._check_point(point, root)
        trusted = self._trust.trusted
        if s.bad is None and trusted is not None and trusted.size == size and trusted.root != root:
            self.fail(
                1,
                f"the checkpoint you trust (size {size}) records root {trusted.root.hex()[:16]}… "
                f"but entries 1..{size} hash to {root.hex()[:16]}…: the log was rewritten "
                "after you took that checkpoint",
            )
        if s.bad is None and size in self._cosigs:
            self._check_cosignatures(size, root)

    def _check_point(self, point: _Point, root: bytes) -> None:
        s = self._s
        for stored, signed in point.checkpoints:
            if signed.root != root:
                forged = self._signer_of(signed) is None
                why = (
                    "; its signature does not verify with a trusted key either: it was forged"
                    if forged
                    else ""
                )
                self.fail(
                    s.vouched + 1,
                    f"the checkpoint of size {point.size} (written {stored.at}) records root "
                    f"{stored.root[:16]}… but entries 1..{point.size} hash to "
                    f"{root.hex()[:16]}…: an entry in {s.vouched + 1}..{point.size} was "
                    f"rewritten{why}",
                )
                return
            checked = self._trust.all_signatures or self._at_rotation(point.size)
            if checked and not self._signature_ok(stored, signed, s.vouched + 1):
                return
        point.matched = True
        s.vouched = point.size

    def _signature_ok(self, stored: Checkpoint, signed: SignedCheckpoint, first_bad: int) -> bool:
        if self._signer_of(signed) is not None:
            self._signed = max(self._signed, signed.size)
            return True
        self.fail(first_bad, self._unsigned_problem(stored, signed))
        return False

    def _unsigned_problem(self, stored: Checkpoint, signed: SignedCheckpoint) -> str:
        keys = self._keys_at(signed.size)
        if not keys:
            return (
                "no public key to check the checkpoints with: give the log's key "
                "(`exdesk audit pubkey` prints it) with --public-key"
            )
        names = ", ".join(sorted({s.name for s in signed.note.signatures}))
        return (
            f"the checkpoint of size {signed.size} (written {stored.at}) is not signed by a key "
            f"you trust (signed as {names}; trusted: {', '.join(k.vkey() for k in keys)}): it "
            "was forged or re-signed with another key, or the key was rotated without an "
            "announcement in the log"
        )

    def _signer_of(self, signed: SignedCheckpoint) -> Verifier | None:
        return signed.log_signature(self._keys_at(signed.size))

    def _keys_at(self, size: int) -> list[Verifier]:
        """The log keys valid for a checkpoint of ``size``, named after the log's origin."""
        origin = self._origin
        if origin is None:
            return []
        retired = {r.old for r in self._rotations if size > r.seq}
        keys: list[Verifier] = []
        for key in self._trust.all_keys():
            if key.kind != ED25519 or key.name not in (origin, "*"):
                continue
            named = key.named(origin) if key.name == "*" else key
            if named.public not in retired:
                keys.append(named)
        keys += [r.new for r in self._rotations if size >= r.seq]
        unique: dict[bytes, Verifier] = {k.public: k for k in keys}
        return list(unique.values())

    def _at_rotation(self, size: int) -> bool:
        return any(r.seq == size for r in self._rotations)

    def _rotation(self, seq: int, payload_json: str, where: str) -> None:
        try:
            payload = json.loads(payload_json)
            old = parse_vkey(str(payload["old_key"]))
            new = parse_vkey(str(payload["new_key"]))
        except (ValueError, KeyError, TypeError) as exc:
            self.fail(seq, f"{where}entry {seq}: a key rotation that cannot be read ({exc})")
            return
        problem = rotation_problem(payload, old, new)
        if problem is not None:
            self.fail(seq, f"{where}entry {seq}: {problem}")
            return
        if self._origin is not None and new.name != self._origin:
            self.fail(seq, f"{where}entry {seq}: the new key is named {new.name!r}, not the log")
            return
        trusted = {k.public for k in self._keys_at(seq - 1)}
        if old.public in trusted:
            self._rotations.append(_Rotation(seq, old.public, new))
            self._notes.append(f"entry {seq}: the signing key was rotated to {new.vkey()}")
        else:
            self._notes.append(
                f"entry {seq}: a key rotation from a key you did not give ({old.vkey()}); "
                "its new key is not trusted on that account"
            )

    def _check_trusted_signature(self, trusted: SignedCheckpoint) -> None:
        if not self._same_origin(trusted, "the checkpoint you trust"):
            return
        if self._signer_of(trusted) is None:
            self.fail(
                None,
                f"the checkpoint you trust (size {trusted.size}) is not signed by a key you "
                "trust: check that it and --public-key come from the same log",
            )

    # --- the end -----------------------------------------------------------------------------

    def _check_end(self) -> None:
        s = self._s
        beyond = sorted(size for size in self._points if size > s.count)
        if beyond:
            point = self._points[beyond[-1]]
            stored, signed = point.checkpoints[0]
            forged = self._signer_of(signed) is None
            self.fail(
                s.count + 1,
                f"a checkpoint records {point.size} entries (written {stored.at}) but the log "
                f"ends at seq {s.count}: entries {s.count + 1}..{point.size} were removed"
                + (" (and that checkpoint's signature does not verify either)" if forged else ""),
            )
            return
        trusted = self._trust.trusted
        if trusted is not None and trusted.size > s.count:
            self.fail(
                s.count + 1,
                f"the checkpoint you trust records {trusted.size} entries but the log holds "
                f"{s.count}: entries {s.count + 1}..{trusted.size} were removed (or this is "
                "another log, or an older copy)",
            )
            return
        if not self._points:
            self.fail(
                1 if s.count else None,
                "no signed checkpoint at all"
                + (
                    f", so none of the {s.count} entries is vouched for: the checkpoints were "
                    "deleted"
                    if s.count
                    else ": the log is empty and nothing signed says it should be (if this "
                    "installation has recorded nothing yet, there is nothing to verify)"
                ),
            )
            return
        newest = max(self._points)
        if newest < s.count:
            self.fail(
                newest + 1,
                f"entries {newest + 1}..{s.count} are covered by no signed checkpoint (the "
                f"newest is of size {newest}): they were added outside the log, or the "
                "checkpoints after them were deleted",
            )

    def _check_head(self, head: HeadRow) -> None:
        s = self._s
        if head.seq > s.count:
            self.fail(
                s.count + 1,
                f"audit_head records {head.seq} entries but the log ends at seq {s.count}: "
                f"entries {s.count + 1}..{head.seq} were removed",
            )
        elif head.seq < s.count:
            self.fail(
                head.seq + 1,
                f"the log has entries up to seq {s.count} but audit_head records only "
                f"{head.seq}: entries {head.seq + 1}..{s.count} were added outside the log",
            )
        elif head.hash != s.head:
            self.fail(
                s.vouched + 1,
                f"audit_head records hash {head.hash[:16]}… for seq {head.seq} but the entry "
                f"hashes to {s.head[:16]}…: audit_head was changed",
            )
        elif head.frontier is not None and head.frontier != s.compact.to_hex():
            self.fail(
                None,
                "audit_head's Merkle tree border does not match the entries: audit_head was "
                "changed (the next append would sign a wrong root; restore it from the entries)",
            )
        elif head.origin is not None and self._origin is not None and head.origin != self._origin:
            self.fail(
                None,
                f"audit_head names the log {head.origin!r} but its checkpoints {self._origin!r}",
            )

    def _check_newest_signature(self) -> None:
        """The newest checkpoint must be signed by a trusted key; when it is not, find where
        the signed checkpoints stop (a rewrite re-signed with another key)."""
        s = self._s
        matched = sorted(size for size, point in self._points.items() if point.matched)
        if not matched:
            return
        newest = self._points[matched[-1]]
        signed = newest.checkpoints[0][1]
        if self._signer_of(signed) is not None:
            self._signed = max(self._signed, newest.size)
            return
        low, high = 0, len(matched) - 1  # the first of the matched points that is unsigned
        while low < high:
            mid = (low + high) // 2
            if self._signer_of(self._points[matched[mid]].checkpoints[0][1]) is None:
                high = mid
            else:
                low = mid + 1
        first = self._points[matched[low]]
        before = matched[low - 1] if low else 0
        if low:
            self._signed = before
        problem = self._unsigned_problem(*first.checkpoints[0])
        if first.size != newest.size:
            problem += f" (and so are the later ones, up to size {newest.size})"
        s.bad = (before + 1, problem)

    # --- witnesses -------------------------------------------------------------------------

    def _check_cosignatures(self, size: int, root: bytes) -> None:
        for cosig in self._cosigs[size]:
            if cosig.root != root.hex():
                self.fail(
                    self._s.vouched + 1 if size > self._s.vouched else None,
                    f"witness {cosig.witness} cosigned root {cosig.root[:16]}… for size {size} "
                    f"but entries 1..{size} hash to {root.hex()[:16]}…: the log showed that "
                    "witness another history (a split view), or the entries were rewritten",
                )
                return

    def _check_quorum(self) -> None:
        policy = self._trust.witnesses
        assert policy is not None
        origin = self._origin
        for size in sorted(self._cosigs, reverse=True):
            point = self._points.get(size)
            if point is None or not point.matched or origin is None:
                continue
            signed = point.checkpoints[0][1]
            if self._signer_of(signed) is None:
                continue
            lines = "".join(c.line for c in self._cosigs[size])
            try:
                cosigned = signed.with_cosignatures(lines)
            except NoteError as exc:
                self.fail(None, f"a cosignature on the checkpoint of size {size}: {exc}")
                return
            if policy.satisfied(cosigned):
                self._witnessed = size
                self._signed = max(self._signed, size)
                return
        self.fail(
            None,
            f"no checkpoint carries cosignatures meeting the witness policy ({policy.describe()}): "
            "have the witnesses cosign (`exdesk audit witness-request`), or check the policy",
        )


def shape_problem(entry: Mapping[str, Any]) -> str | None:
    missing = [name for name in ENTRY_FIELDS if name not in entry]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    extra = sorted(set(entry) - set(ENTRY_FIELDS))
    if extra:
        return f"unexpected field(s) {', '.join(extra)}"
    for name, kind in _FIELD_TYPES.items():
        value = entry[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {name} is {type(value).__name__}, expected {kind.__name__}"
    return None
