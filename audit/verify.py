"""Walking a chain of entries and its checkpoints, wherever they come from (database or export).

Feed entries in seq order to :class:`ChainVerifier`, then call :meth:`ChainVerifier.finish`.
Each entry is a mapping with the entry fields; its hash is recomputed from them. The verifier
keeps only the running state (last seq and hash, the checkpoints), so logs of any length
stream through it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoints import signature_problem
from audit.models import GENESIS_HASH, Checkpoint, VerifyResult, entry_hash
from domain.canonical import canonical_json

ENTRY_FIELDS = ("seq", "at", "actor", "event", "payload", "prev_hash", "hash")
_FIELD_TYPES: dict[str, type] = {
    "seq": int,
    "at": str,
    "actor": str,
    "event": str,
    "payload": dict,
    "prev_hash": str,
    "hash": str,
}


class ChainVerifier:
    """Checks one chain; the first problem found stops it and is what :meth:`finish` reports."""

    def __init__(
        self, checkpoints: Iterable[Checkpoint], public_key: Ed25519PublicKey | None
    ) -> None:
        self._pending = deque(sorted(checkpoints, key=lambda c: c.seq))
        self._key = public_key
        self.count = 0
        self.head = GENESIS_HASH
        self._vouched = 0  # highest seq a matching checkpoint covers
        self._bad: tuple[int | None, str] | None = None
        self._check_checkpoints_at(0)

    def fail(self, first_bad_seq: int | None, problem: str) -> None:
        """Record a problem found outside the verifier (an unreadable row or line)."""
        if self._bad is None:
            self._bad = (first_bad_seq, problem)

    def add(self, entry: Mapping[str, Any], *, where: str = "") -> bool:
        """Check the next entry; False once the chain is known to be broken.

        ``where`` prefixes a problem found in this entry (``"line 17: "``).
        """
        if self._bad is None:
            problem = self._entry_problem(entry)
            if problem is not None:
                self.fail(self.count + 1, where + problem)
            else:
                self.count += 1
                self.head = entry["hash"]
                self._check_checkpoints_at(self.count)
        return self._bad is None

    def add_verified(self, hash_hex: str) -> bool:
        """Step over the next entry, already verified elsewhere, given its hash."""
        if self._bad is None:
            self.count += 1
            self.head = hash_hex
            self._check_checkpoints_at(self.count)
        return self._bad is None

    def finish(self, head: tuple[int, str] | None = None) -> VerifyResult:
        """The result, after all entries; ``head`` is what ``audit_head`` records, if known."""
        if self._bad is None:
            self._check_checkpoints_beyond_end()
        if self._bad is None and head is not None:
            self._check_head(*head)
        first_bad, problem = self._bad if self._bad is not None else (None, None)
        return VerifyResult(
            ok=self._bad is None,
            count=self.count,
            head=self.head,
            first_bad_seq=first_bad,
            problem=problem,
            checkpointed_seq=self._vouched,
            signatures_checked=self._key is not None,
        )

    def _entry_problem(self, entry: Mapping[str, Any]) -> str | None:
        expected = self.count + 1
        shape = _shape_problem(entry)
        if shape is not None:
            return f"entry {expected}: {shape}"
        seq = entry["seq"]
        if seq != expected:
            if seq > expected:
                return f"entries {expected}..{seq - 1} are missing (the next entry is seq {seq})"
            return f"seq {seq} comes again after seq {self.count}; seqs must run 1, 2, 3, …"
        if entry["prev_hash"] != self.head:
            return f"entry {seq}: prev_hash does not match the hash of entry {seq - 1}"
        try:
            payload_json = canonical_json(entry["payload"])
        except (TypeError, ValueError) as exc:
            return f"entry {seq}: payload is not canonical JSON material ({exc})"
        fields = {k: entry[k] for k in ("seq", "at", "actor", "event", "prev_hash")}
        if entry_hash(payload_json=payload_json, **fields) != entry["hash"]:
            return f"entry {seq}: hash does not match its content (the entry was changed)"
        return None

    def _check_checkpoints_at(self, seq: int) -> None:
        while self._bad is None and self._pending and self._pending[0].seq == seq:
            checkpoint = self._pending.popleft()
            problem = self._signature_problem(checkpoint)
            if problem is None and checkpoint.head != self.head:
                problem = (
                    f"checkpoint at seq {seq} (signed {checkpoint.at}) records head "
                    f"{checkpoint.head[:16]}… but entry {seq} hashes to {self.head[:16]}…: "
                    f"an entry in {self._vouched + 1}..{seq} was rewritten"
                )
            if problem is not None:
                self.fail(self._vouched + 1, problem)
            else:
                self._vouched = seq

    def _check_checkpoints_beyond_end(self) -> None:
        if not self._pending:
            return
        checkpoint = self._pending[0]
        problem = self._signature_problem(checkpoint)
        if problem is not None:
            self.fail(self._vouched + 1, problem)
        else:
            self.fail(
                self.count + 1,
                f"checkpoint at seq {checkpoint.seq} (signed {checkpoint.at}) but the log ends "
                f"at seq {self.count}: entries {self.count + 1}..{checkpoint.seq} were removed",
            )

    def _signature_problem(self, checkpoint: Checkpoint) -> str | None:
        if self._key is None:
            return None
        return signature_problem(checkpoint, self._key)

    def _check_head(self, head_seq: int, head_hash: str) -> None:
        if head_seq > self.count:
            self.fail(
                self.count + 1,
                f"audit_head records {head_seq} entries but the log ends at seq {self.count}: "
                f"entries {self.count + 1}..{head_seq} were removed",
            )
        elif head_seq < self.count:
            self.fail(
                head_seq + 1,
                f"the log has entries up to seq {self.count} but audit_head records only "
                f"{head_seq}: entries {head_seq + 1}..{self.count} were added outside the log",
            )
        elif head_hash != self.head:
            self.fail(
                self._vouched + 1,
                f"audit_head records hash {head_hash[:16]}… for seq {head_seq} but the entry "
                f"hashes to {self.head[:16]}…: an entry in {self._vouched + 1}..{head_seq} was "
                "rewritten",
            )


def _shape_problem(entry: Mapping[str, Any]) -> str | None:
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
