"""The export: JSON Lines an auditor verifies with nothing but the public key.

Every entry is one line, a JSON object with ``seq, at, actor, event, payload, prev_hash,
hash``, in seq order; then every checkpoint is one line ``{"checkpoint": {seq, head, at,
signature}}``. Each line is RFC 8785 canonical JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from audit.models import Checkpoint, VerifyResult
from audit.verify import ChainVerifier
from domain.canonical import canonical_json


def write_export(
    fp: IO[str], entries: Iterable[Mapping[str, Any]], checkpoints: Iterable[Checkpoint]
) -> int:
    """Write ``entries`` then ``checkpoints`` to ``fp``; returns the number of entries."""
    count = 0
    for entry in entries:
        fp.write(canonical_json(dict(entry)).decode("utf-8") + "\n")
        count += 1
    for checkpoint in checkpoints:
        fp.write(canonical_json({"checkpoint": checkpoint.model_dump()}).decode("utf-8") + "\n")
    return count


def verify_export(lines: Iterable[str], public_key: Ed25519PublicKey) -> VerifyResult:
    """Verify an export with only the public key: chain, checkpoints and their signatures.

    An export must carry at least one checkpoint: without one nothing in it is signed, and
    a rewritten or shortened export would look as good as the real one. Entries after the
    last checkpoint verify as a chain but nothing vouches for them (``checkpointed_seq``).
    Reads the lines once; it keeps only the hashes of the entries (32 bytes each), so large
    exports do not have to fit in memory.
    """
    digests = bytearray()
    checkpoints: list[Checkpoint] = []
    chain = ChainVerifier((), None)  # the chain first; checkpoints come at the end of the export
    _read_lines(lines, chain, digests, checkpoints)
    chained = chain.finish()
    if not chained.ok:
        return chained
    if not checkpoints:
        return chained.model_copy(
            update={
                "ok": False,
                "problem": "the export has no checkpoint, so nothing in it is signed; "
                "take a checkpoint and export again",
                "first_bad_seq": 1,
                "signatures_checked": True,
            }
        )
    return _check_checkpoints(digests, chained.count, checkpoints, public_key)


def _read_lines(
    lines: Iterable[str], chain: ChainVerifier, digests: bytearray, checkpoints: list[Checkpoint]
) -> None:
    """Check the entries as a chain, keep their hashes, and collect the checkpoints."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = _parse_line(number, line)
        if isinstance(parsed, str):
            chain.fail(chain.count + 1, parsed)
            return
        if "checkpoint" in parsed and len(parsed) == 1:
            checkpoint = _parse_checkpoint(number, parsed["checkpoint"])
            if isinstance(checkpoint, str):
                chain.fail(None, checkpoint)
                return
            checkpoints.append(checkpoint)
        elif checkpoints:
            chain.fail(chain.count + 1, f"line {number}: an entry after the checkpoints")
            return
        elif chain.add(parsed, where=f"line {number}: "):
            digests += bytes.fromhex(parsed["hash"])
        else:
            return


def _check_checkpoints(
    digests: bytearray, count: int, checkpoints: list[Checkpoint], public_key: Ed25519PublicKey
) -> VerifyResult:
    """Replay the verified hashes through a verifier that holds the checkpoints."""
    verifier = ChainVerifier(checkpoints, public_key)
    for offset in range(0, count * 32, 32):
        if not verifier.add_verified(digests[offset : offset + 32].hex()):
            break
    return verifier.finish()


def _parse_line(number: int, line: str) -> dict[str, Any] | str:
    try:
        value = json.loads(line, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError as exc:
        return f"line {number}: not valid JSON ({exc})"
    if not isinstance(value, dict):
        return f"line {number}: expected a JSON object, got {type(value).__name__}"
    return value


def _parse_checkpoint(number: int, value: object) -> Checkpoint | str:
    try:
        return Checkpoint.model_validate(value, strict=True)
    except ValidationError as exc:
        return f"line {number}: not a valid checkpoint ({exc.error_count()} problem(s): {exc})"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        dupes = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate key(s) {', '.join(map(repr, dupes))}")
    return result


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
