"""A witness (c2sp.org/tlog-witness): a small process, run by someone the log's operators do
not control, that cosigns a log's checkpoints only when each is consistent with the last one it
cosigned, so a log cannot show two histories (a split view) or take entries back (a rollback)
without the witness refusing.

The witness keeps a state dir of its own: its Ed25519 key (``witness-key.pem``, mode 0600),
the logs it follows and their keys, and the latest checkpoint it cosigned for each
(``witness.json``). :meth:`Witness.add_checkpoint` takes the body of a tlog-witness
``add-checkpoint`` request:

    old <size the witness last cosigned>
    <consistency proof, one base64 hash a line>

    <the new checkpoint, a signed note>

and answers with its cosignature line (cosignature/v1), or refuses with the protocol's status:
403 (not signed by the log's key), 404 (a log it does not follow), 400 (malformed), 409 (the
old size is not what it last cosigned; the answer carries that size), 422 (the proof does not
show the new tree extends the old one, or a different root for the same size). Checking and
recording happen under one lock, so two requests cannot roll its view back.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from audit.checkpoint import SignedCheckpoint, parse_checkpoint
from audit.errors import AuditError
from audit.keys import load_or_create_signing_key
from audit.merkle import EMPTY_ROOT, ProofError, verify_consistency
from audit.note import COSIGNATURE_V1, ED25519, NoteError, Signer, Verifier, check_name, parse_vkey

STATE_FILE = "witness.json"
KEY_FILE = "witness-key.pem"
MAX_PROOF = 63


class WitnessRefusal(AuditError):
    """The witness will not cosign; ``status`` is the tlog-witness HTTP status."""

    def __init__(self, status: int, message: str, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else message + "\n"


@dataclass(frozen=True)
class Request:
    old: int
    proof: list[bytes]
    checkpoint: SignedCheckpoint
    text: str


def render_request(old: int, proof: list[bytes], checkpoint: str) -> str:
    lines = [f"old {old}\n", *(base64.b64encode(h).decode("ascii") + "\n" for h in proof)]
    return "".join(lines) + "\n" + checkpoint


def parse_request(body: str) -> Request:
    head, sep, rest = body.partition("\n\n")
    if not sep:
        raise WitnessRefusal(400, "the request has no blank line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    size = first.removeprefix("old ")
    if first == size or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise WitnessRefusal(400, f"the first line must be 'old <size>', not {first[:40]!r}")
    if len(lines) - 1 > MAX_PROOF:
        raise WitnessRefusal(400, f"more than {MAX_PROOF} consistency proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
        checkpoint = parse_checkpoint(rest)
    except (binascii.Error, NoteError) as exc:
        raise WitnessRefusal(400, f"the request cannot be read ({exc})") from None
    return Request(int(size), proof, checkpoint, rest)


class Witness:
    """A witness's state dir: its key, the logs it follows, what it cosigned last."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(state_dir)
        self._clock = clock
        if not (self.dir / STATE_FILE).is_file():
            raise AuditError(
                f"{self.dir}: not a witness state dir (no {STATE_FILE}); make one with "
                "`exdesk audit witness init --state DIR --name NAME`"
            )
        self.name = str(self._state()["name"])
        self._key = load_or_create_signing_key(self.dir / KEY_FILE)

    @classmethod
    def init(cls, state_dir: Path, name: str) -> Witness:
        """Make a state dir with a new key; an existing one is kept as it is."""
        check_name(name)
        directory = Path(state_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with FileLock(str(directory / ".witness.lock")):
            path = directory / STATE_FILE
            if path.exists():
                state = json.loads(path.read_text("utf-8"))
                if state.get("name") != name:
                    raise AuditError(f"{directory} is already witness {state.get('name')!r}")
            else:
                _write_json(path, {"name": name, "logs": {}, "latest": {}})
        load_or_create_signing_key(directory / KEY_FILE)
        return cls(directory)

    @property
    def signer(self) -> Signer:
        return Signer(self.name, COSIGNATURE_V1, self._key)

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    def follow(self, log_key: str) -> Verifier:
        """Follow the log whose checkpoint key is ``log_key`` (a vkey naming its origin)."""
        key = parse_vkey(log_key)
        if key.kind != ED25519:
            raise AuditError(f"{key.vkey()} is not a log's checkpoint key (type 0x01)")
        with self._locked() as state:
            keys = state["logs"].setdefault(key.name, [])
            if key.vkey() not in keys:
                keys.append(key.vkey())
        return key

    def logs(self) -> dict[str, list[str]]:
        return dict(self._state()["logs"])

    def latest(self, origin: str) -> str | None:
        """The latest checkpoint this witness cosigned for ``origin``, with its cosignature."""
        entry = self._state()["latest"].get(origin)
        return None if entry is None else str(entry["checkpoint"])

    def add_checkpoint(self, body: str) -> str:
        """Check an add-checkpoint request; cosign and record it, or raise WitnessRefusal."""
        request = parse_request(body)
        checkpoint = request.checkpoint
        with self._locked() as state:
            keys = [parse_vkey(k) for k in state["logs"].get(checkpoint.origin, [])]
            if not keys:
                raise WitnessRefusal(404, f"this witness does not follow {checkpoint.origin!r}")
            verdicts = [checkpoint.note.signed_by(k) for k in keys]
            if False in verdicts or True not in verdicts:
                raise WitnessRefusal(
                    403, f"the checkpoint is not signed by {checkpoint.origin}'s key"
                )
            if request.old > checkpoint.size:
                raise WitnessRefusal(
                    400, f"old size {request.old} is past the new {checkpoint.size}"
                )
            latest: dict[str, Any] | None = state["latest"].get(checkpoint.origin)
            have = 0 if latest is None else int(latest["size"])
            if request.old != have:
                raise WitnessRefusal(
                    409,
                    f"this witness last cosigned size {have} of {checkpoint.origin}, not "
                    f"{request.old}: a rollback, or a stale request (ask again from {have})",
                    body=f"{have}\n",
                )
            self._check_consistent(request, latest)
            timestamp = int(self._clock())
            line = self.signer.signature_line(checkpoint.note.text, timestamp=timestamp)
            state["latest"][checkpoint.origin] = {
                "size": checkpoint.size,
                "root": base64.b64encode(checkpoint.root).decode("ascii"),
                "checkpoint": checkpoint.with_cosignatures(line).render(),
            }
        return line

    def _check_consistent(self, request: Request, latest: dict[str, Any] | None) -> None:
        checkpoint = request.checkpoint
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            raise WitnessRefusal(422, "a checkpoint of size 0 must have the empty tree's root")
        if request.old == 0:
            if request.proof:
                raise WitnessRefusal(422, "from size 0 the consistency proof must be empty")
            return
        assert latest is not None
        old_root = base64.b64decode(latest["root"])
        try:
            verify_consistency(
                request.old, checkpoint.size, old_root, checkpoint.root, request.proof
            )
        except ProofError as exc:
            raise WitnessRefusal(
                422,
                f"the checkpoint of size {checkpoint.size} is not consistent with the one of "
                f"size {request.old} this witness cosigned ({exc}): a forked or rewritten log",
            ) from None

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.dir / STATE_FILE).read_text("utf-8")))
        except (OSError, ValueError) as exc:
            raise AuditError(f"{self.dir / STATE_FILE}: cannot be read ({exc})") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with FileLock(str(self.dir / ".witness.lock")):
            state = self._state()
            yield state
            _write_json(self.dir / STATE_FILE, state)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
