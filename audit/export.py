"""The export: JSON Lines an auditor verifies with nothing but the log's public key.

    {"exdesk_audit_export":2,"origin":"exdesk.local/audit/…"}
    {"checkpoint":{"at":…,"note":"<signed note>","root":…,"size":…}}        one per commit
    {"cosignature":{"at":…,"line":"— <witness> …","root":…,"size":…,"witness":…}}
    {"actor":…,"at":…,"event":…,"hash":…,"payload":{…},"prev_hash":…,"seq":…}   one per entry

Every line is RFC 8785 canonical JSON. An entry line is the entry's canonical text with its
``hash`` member added, so the verifier recovers the exact bytes that were hashed from the line
itself (an export re-serialized by another JSON writer no longer verifies: keep it as written).
The private key is never in an export.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import IO, Any

from pydantic import ValidationError

from audit.models import Checkpoint, Cosignature, VerifyResult, json_str
from audit.verify import LogVerifier, Trust, shape_problem
from domain.canonical import canonical_json

FORMAT = 2


def entry_line(fields: Mapping[str, Any], payload_json: str) -> str:
    """An entry's export line, from its fields and its payload's canonical text."""
    return (
        f'{{"actor":{json_str(fields["actor"])},"at":{json_str(fields["at"])},'
        f'"event":{json_str(fields["event"])},"hash":{json_str(fields["hash"])},'
        f'"payload":{payload_json},"prev_hash":{json_str(fields["prev_hash"])},'
        f'"seq":{fields["seq"]}}}'
    )


def write_export(
    fp: IO[str],
    entries: Iterable[tuple[Mapping[str, Any], str]],
    checkpoints: Iterable[Checkpoint],
    cosignatures: Iterable[Cosignature] = (),
) -> int:
    """Write the export to ``fp``; returns the number of entries."""
    checkpoints = list(checkpoints)
    origin = None
    if checkpoints:
        origin = checkpoints[-1].note.split("\n", 1)[0]
    fp.write(canonical_json({"exdesk_audit_export": FORMAT, "origin": origin}).decode() + "\n")
    for checkpoint in checkpoints:
        fp.write(canonical_json({"checkpoint": checkpoint.model_dump()}).decode() + "\n")
    for cosignature in cosignatures:
        fp.write(canonical_json({"cosignature": cosignature.model_dump()}).decode() + "\n")
    count = 0
    for fields, payload_json in entries:
        fp.write(entry_line(fields, payload_json) + "\n")
        count += 1
    return count


def verify_export(lines: Iterable[str], trust: Trust) -> VerifyResult:
    """Verify an export with only what the auditor brings (``trust``): entries, Merkle tree,
    checkpoints and their signatures, the trusted checkpoint and the witnesses."""
    checkpoints: list[Checkpoint] = []
    cosignatures: list[Cosignature] = []
    verifier: LogVerifier | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}: "
        try:
            value = json.loads(line)
        except ValueError as exc:
            return _early(
                verifier, checkpoints, cosignatures, trust, f"{where}not valid JSON ({exc})"
            )
        if not isinstance(value, dict):
            kind = type(value).__name__
            return _early(
                verifier, checkpoints, cosignatures, trust, f"{where}not a JSON object ({kind})"
            )
        if "seq" not in value and verifier is None:
            problem = _header(value, checkpoints, cosignatures, where)
            if problem is not None:
                return _early(None, checkpoints, cosignatures, trust, problem)
            continue
        if verifier is None:
            verifier = LogVerifier(trust, checkpoints, cosignatures)
        if "seq" not in value:
            verifier.fail(verifier.count + 1, f"{where}a checkpoint or header after the entries")
            break
        shape = shape_problem(value)
        if shape is not None:
            verifier.fail(verifier.count + 1, f"{where}entry {verifier.count + 1}: {shape}")
            break
        payload_json = _payload_text(line.rstrip("\r\n"), value)
        if payload_json is None:
            verifier.fail(
                verifier.count + 1,
                f"{where}entry {verifier.count + 1} is not written as exdesk wrote it (RFC 8785 "
                "canonical JSON, fields in order): the export was edited or re-serialized",
            )
            break
        if not verifier.add_entry(value, payload_json, where=where):
            break
    if verifier is None:
        verifier = LogVerifier(trust, checkpoints, cosignatures)
    return verifier.finish()


def _early(
    verifier: LogVerifier | None,
    checkpoints: list[Checkpoint],
    cosignatures: list[Cosignature],
    trust: Trust,
    problem: str,
) -> VerifyResult:
    verifier = verifier or LogVerifier(trust, checkpoints, cosignatures)
    verifier.fail(verifier.count + 1, problem)
    return verifier.finish()


def _header(
    value: dict[str, Any],
    checkpoints: list[Checkpoint],
    cosignatures: list[Cosignature],
    where: str,
) -> str | None:
    try:
        if "checkpoint" in value and len(value) == 1:
            checkpoints.append(Checkpoint.model_validate(value["checkpoint"], strict=True))
        elif "cosignature" in value and len(value) == 1:
            cosignatures.append(Cosignature.model_validate(value["cosignature"], strict=True))
        elif "exdesk_audit_export" in value:
            if value["exdesk_audit_export"] != FORMAT:
                return (
                    f"{where}an export in format {value['exdesk_audit_export']!r}; this exdesk "
                    f"reads format {FORMAT}"
                )
        else:
            return f"{where}neither an entry, a checkpoint nor a cosignature"
    except ValidationError as exc:
        return f"{where}not a valid checkpoint or cosignature ({exc.error_count()} problem(s))"
    return None


def _payload_text(line: str, value: dict[str, Any]) -> str | None:
    """The payload's text inside an entry line written by :func:`entry_line` (whose shape was
    checked), or None when the line is not in that exact form."""
    prefix = (
        f'{{"actor":{json_str(value["actor"])},"at":{json_str(value["at"])},'
        f'"event":{json_str(value["event"])},"hash":{json_str(value["hash"])},"payload":'
    )
    suffix = f',"prev_hash":{json_str(value["prev_hash"])},"seq":{value["seq"]}}}'
    if not (line.startswith(prefix) and line.endswith(suffix)):
        return None
    return line[len(prefix) : len(line) - len(suffix)]
