"""The audit log: append-only entries under an RFC 6962 Merkle tree, a signed checkpoint for
every commit that appends, stored through SQLAlchemy (SQLite or PostgreSQL).

Appends serialize on the single ``audit_head`` row: each transaction replaces personal values
and makes its payloads canonical, then UPDATEs the head row (the SQLite write lock, the
PostgreSQL row lock), reads the head, inserts its entries, signs a checkpoint of the new tree
(origin, size, root) and moves the head, all in one transaction, so
no entry is ever unsigned past the transaction that wrote it. The head row keeps the tree's
right border, so signing needs no old entries. Several threads or processes may append at
once; the log stays linear. A batch that meets a lock timeout (SQLite busy) or a PostgreSQL
serialization failure or deadlock is rolled back and tried again, a few times.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, Row, exc, insert, select, update

from audit import personal
from audit.checkpoint import CheckpointBody, SignedCheckpoint, parse_checkpoint, sign_checkpoint
from audit.errors import AuditError
from audit.export import verify_export, write_export
from audit.merkle import CompactRange
from audit.models import (
    GENESIS_HASH,
    AuditEntry,
    Checkpoint,
    Cosignature,
    VerifyResult,
    entry_hash_bytes,
    entry_text,
)
from audit.note import ED25519, NoteError, Signer, Verifier, raw_public
from audit.rotation import ROTATION_EVENT, rotation_payload
from audit.schema import HEAD_ID, AuditTables, build_tables
from audit.statements import build_statements
from audit.verify import HeadRow, LogVerifier, Trust
from domain.canonical import canonical_pair

__all__ = [
    "GENESIS_HASH",
    "AppendHook",
    "AuditEntry",
    "AuditLog",
    "Checkpoint",
    "KeySource",
    "Trust",
    "VerifyResult",
    "verify_export",
]

_PAGE = 1000
_MAX_LABEL = 200
_ATTEMPTS = 5
_BACKOFF_S = 0.05
_LOCK_SQLSTATES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock n/a


class KeySource(Protocol):
    """Where the log's signing key comes from (``audit.keys.KeyFile``, ``StaticKey``)."""

    def private_key(self) -> Ed25519PrivateKey: ...

    def public_key(self) -> Ed25519PublicKey | None: ...

    def reload(self) -> None: ...


AppendHook = Callable[[Connection, str, Sequence[AuditEntry]], None]
"""Called in the appending transaction with the log's origin and the entries just written
(personal values already replaced): what it writes commits with them, or not at all, and an
error it raises rolls the append back. The events outbox is one (``service.events``)."""


class AuditLog:
    """Append, sign, verify, prove and export the audit log kept in ``engine``'s database.

    ``signer``: the key that signs a checkpoint at every commit that appends (needed to
    append; reading and verifying need none). ``personal_data``: keep personal values out of
    the entries (see :mod:`audit.personal`). ``on_append``: see :data:`AppendHook`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        signer: KeySource | None = None,
        clock: Callable[[], datetime] | None = None,
        personal_data: bool = True,
        on_append: AppendHook | None = None,
    ) -> None:
        self._engine = engine
        self._on_append = on_append
        self._signer = signer
        self._clock = clock or _utc_now
        self._personal = personal_data
        self._t = build_tables()
        self._sql = build_statements(self._t, engine.dialect.name)

    @property
    def tables(self) -> AuditTables:
        return self._t

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- appending ---------------------------------------------------------------------------

    def append(
        self,
        actor: str,
        event: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        conn: Connection | None = None,
    ) -> AuditEntry:
        """Append one entry and return it as stored.

        ``key``: an idempotency key; when an entry with it is already in the log, that entry
        is returned and nothing is appended. ``conn``: append inside the caller's transaction,
        so the entry commits (or not) with the state change it records, and its checkpoint
        with it.
        """
        return self.append_many([(actor, event, payload)], keys=[key], conn=conn)[0]

    def append_many(
        self,
        items: Sequence[tuple[str, str, dict[str, Any]]],
        *,
        keys: Sequence[str | None] | None = None,
        conn: Connection | None = None,
    ) -> list[AuditEntry]:
        """Append entries in one transaction: all of them land, in order, or none does."""
        keys = list(keys) if keys is not None else [None] * len(items)
        if len(keys) != len(items):
            raise ValueError(f"{len(items)} entries but {len(keys)} keys")
        pairs = enumerate(zip(items, keys, strict=True))
        prepared = [_prepare(index, *item, key) for index, (item, key) in pairs]
        if not prepared:
            return []
        return self._write(conn, lambda c: self._append_locked(c, prepared), len(prepared))

    def rotate_key(self, new_key: Ed25519PrivateKey, *, actor: str, reason: str) -> AuditEntry:
        """Announce ``new_key`` in the log, signed by the key that signs it now (which signs
        this commit's checkpoint, its last); later commits must be signed by ``new_key``."""

        def work(conn: Connection) -> AuditEntry:
            head = self._lock_head(conn)
            old_key = self._current_key(head)
            if raw_public(new_key.public_key()) == raw_public(old_key.public_key()):
                raise AuditError("the new signing key is the key that signs the log now")
            payload = rotation_payload(old_key, new_key, head.origin, reason)
            ready = self._made(conn, [_prepare(0, actor, ROTATION_EVENT, payload, None)])
            (entry,) = self._insert(conn, head, *ready, old_key)
            hd = self._t.head
            new_public = _b64_public(new_key.public_key())
            conn.execute(update(hd).where(hd.c.id == HEAD_ID).values(log_key=new_public))
            return entry

        return self._write(None, work, 1)

    def _write(self, conn: Connection | None, work: Callable[[Connection], Any], n: int) -> Any:
        if conn is not None:
            return work(conn)
        attempt = 1
        while True:
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except exc.DBAPIError as error:
                if attempt >= _ATTEMPTS or not _is_lock_conflict(error):
                    raise _append_failed(n, attempt, error) from error
            time.sleep(_BACKOFF_S * attempt)  # rolled back: nothing was written, try again
            attempt += 1

    def _lock_head(self, conn: Connection) -> _Head:
        row = conn.execute(self._sql.lock_head).first()
        if row is None:
            raise AuditError(_NO_HEAD)
        if not row.origin:
            raise AuditError(
                "audit_head names no log origin: run the store's migrations (store.migrate.upgrade)"
            )
        try:
            frontier = CompactRange.from_hex(int(row.seq), row.frontier or "")
        except ValueError as error:
            raise AuditError(
                f"audit_head's Merkle tree border is damaged ({error}); run verify"
            ) from None
        return _Head(int(row.seq), str(row.hash), str(row.origin), frontier, row.log_key)

    def _current_key(self, head: _Head) -> Ed25519PrivateKey:
        """The signing key, which must be the one the log names (another process may have
        rotated it since this one loaded it: then load it again)."""
        if self._signer is None:
            raise AuditError(
                "this audit log has no signing key, so it cannot append: every commit that "
                "appends is signed (set EXDESK_SIGNING_KEY, or pass signer=)"
            )
        key = self._signer.private_key()
        if head.log_key is not None and _b64_private(key) != head.log_key:
            self._signer.reload()
            key = self._signer.private_key()
            if _b64_private(key) != head.log_key:
                raise AuditError(
                    f"the log is signed by key {head.log_key} but this process's signing key "
                    f"is {_b64_private(key)}: point EXDESK_SIGNING_KEY at the "
                    "log's key, or announce the new key with `exdesk audit rotate-key`"
                )
        return key

    def _append_locked(self, conn: Connection, prepared: list[_Prepared]) -> list[AuditEntry]:
        """Redact and make canonical first, then lock the head: the lock, which every
        appending process waits for, is held only for the idempotency check and the chain."""
        made, redactor = self._made(conn, prepared)
        head = self._lock_head(conn)
        wanted = [m.key for m in made if m.key is not None]
        found: dict[str, AuditEntry] = {}
        if wanted:
            rows = conn.execute(self._sql.by_keys, {"b_keys": wanted})
            found = {row.idem_key: _entry_from_row(row) for row in rows}
        fresh: list[_Made] = []
        slots: list[AuditEntry | int] = []  # an entry already there, or an index into fresh
        pending: dict[str, int] = {}
        for item in made:
            key = item.key
            if key is not None and key in found:
                slots.append(found[key])
            elif key is not None and key in pending:
                slots.append(pending[key])  # the same key twice in one batch is one entry
            else:
                if key is not None:
                    pending[key] = len(fresh)
                slots.append(len(fresh))
                fresh.append(item)
        written = self._insert(conn, head, fresh, redactor, None)
        return [s if isinstance(s, AuditEntry) else written[s] for s in slots]

    def _made(
        self, conn: Connection, items: list[_Prepared]
    ) -> tuple[list[_Made], personal.Pseudonymizer | None]:
        """Each item's payload with personal values replaced, as canonical text and as the
        copy that text reads back; and the redactor holding the clear values to store."""
        redactor = personal.Pseudonymizer(conn, self._sql) if self._personal else None
        if redactor is not None and len(items) > 1:
            redactor.prepare(item[3] for item in items)
        made = []
        for index, actor, event, payload, key in items:
            body = redactor.redact(payload) if redactor is not None else payload
            text, stored = _canonical(body, index, event)
            made.append(_Made(actor, event, text, stored, key))
        return made, redactor

    def _insert(
        self,
        conn: Connection,
        head: _Head,
        items: list[_Made],
        redactor: personal.Pseudonymizer | None,
        key: Ed25519PrivateKey | None,
    ) -> list[AuditEntry]:
        """Write ``items`` after ``head``, sign the new tree and move the head."""
        if not items:
            return []
        signing_key = key or self._current_key(head)
        seq, prev, at = head.seq, head.hash, self._now()
        frontier = head.frontier.copy()
        rows: list[dict[str, Any]] = []
        entries: list[AuditEntry] = []
        for item in items:
            seq += 1
            digest = entry_hash_bytes(
                entry_text(
                    seq=seq,
                    at=at,
                    actor=item.actor,
                    event=item.event,
                    payload_json=item.text,
                    prev_hash=prev,
                )
            )
            fields = {
                "seq": seq,
                "at": at,
                "actor": item.actor,
                "event": item.event,
                "prev_hash": prev,
            }
            rows.append(
                {**fields, "payload": item.text, "hash": digest.hex(), "idem_key": item.key}
            )
            entries.append(AuditEntry(**fields, payload=item.stored, hash=digest.hex()))
            frontier.append(digest)
            prev = digest.hex()
        signer = Signer(head.origin, ED25519, signing_key)
        checkpoint = sign_checkpoint(signer, CheckpointBody(head.origin, seq, frontier.root()))
        conn.execute(self._sql.insert_entries, rows)
        conn.execute(
            self._sql.insert_checkpoint,
            {"size": seq, "root": checkpoint.root.hex(), "at": at, "note": checkpoint.render()},
        )
        conn.execute(
            self._sql.move_head,
            {
                "b_seq": seq,
                "b_hash": prev,
                "b_frontier": frontier.to_hex(),
                "b_key": _b64_private(signing_key),
            },
        )
        if redactor is not None:
            redactor.flush()
        if self._on_append is not None:
            self._on_append(conn, head.origin, entries)
        return entries

    # --- reading -----------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(number of entries, hash of the last one) as ``audit_head`` records them."""
        hd = self._t.head
        with self._engine.connect() as conn:
            row = conn.execute(select(hd.c.seq, hd.c.hash).where(hd.c.id == HEAD_ID)).first()
        if row is None:
            raise AuditError(_NO_HEAD)
        return int(row.seq), str(row.hash)

    def signed_with(self, key: Ed25519PrivateKey) -> bool:
        """Whether the log names ``key`` as the key that signs it now (after a rotation to it
        committed, say, even if the key file was not put in place)."""
        hd = self._t.head
        with self._engine.connect() as conn:
            named = conn.execute(select(hd.c.log_key).where(hd.c.id == HEAD_ID)).scalar()
        return named is not None and named == _b64_private(key)

    def origin(self) -> str:
        """The log's name: the first line of its checkpoints, the name of its keys."""
        hd = self._t.head
        with self._engine.connect() as conn:
            origin = conn.execute(select(hd.c.origin).where(hd.c.id == HEAD_ID)).scalar()
        if not origin:
            raise AuditError(_NO_HEAD)
        return str(origin)

    def verifier(self) -> Verifier | None:
        """The verifier key (vkey) of this log's signing key, if there is one."""
        public = self._signer.public_key() if self._signer is not None else None
        return None if public is None else Verifier(self.origin(), ED25519, public)

    def by_key(self, key: str) -> AuditEntry | None:
        """The entry appended with idempotency key ``key``, if there is one."""
        log = self._t.log
        with self._engine.connect() as conn:
            row = conn.execute(select(log).where(log.c.idem_key == key)).first()
        return None if row is None else _entry_from_row(row)

    def by_keys(self, keys: Sequence[str]) -> dict[str, AuditEntry]:
        """The entries appended with any of ``keys``, by key (those with none are absent):
        one query per ``_PAGE`` keys."""
        log, found = self._t.log, {}
        wanted = list(dict.fromkeys(keys))
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), _PAGE):
                query = select(log).where(log.c.idem_key.in_(wanted[start : start + _PAGE]))
                for row in conn.execute(query):
                    found[str(row.idem_key)] = _entry_from_row(row)
        return found

    def keys_present(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` entries were appended with, one query per ``_PAGE`` keys; nothing
        of the entries is read."""
        log = self._t.log
        found: set[str] = set()
        with self._engine.connect() as conn:
            for start in range(0, len(keys), _PAGE):
                chunk = list(keys[start : start + _PAGE])
                query = select(log.c.idem_key).where(log.c.idem_key.in_(chunk))
                found.update(str(k) for k in conn.execute(query).scalars())
        return found

    def entries(self, after_seq: int = 0, limit: int | None = None) -> Iterator[AuditEntry]:
        """Entries with seq > ``after_seq`` in order, at most ``limit``; read a page at a time."""
        log = self._t.log
        last, left = after_seq, limit
        while left is None or left > 0:
            size = _PAGE if left is None else min(_PAGE, left)
            query = select(log).where(log.c.seq > last).order_by(log.c.seq).limit(size)
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            yield from (_entry_from_row(row) for row in rows)
            if len(rows) < size:
                return
            last = int(rows[-1].seq)
            left = None if left is None else left - len(rows)

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The hashes of entries 1..size (the Merkle tree's leaves)."""
        log = self._t.log
        query = select(log.c.hash).where(log.c.seq <= size).order_by(log.c.seq)
        with self._engine.connect() as conn:
            hashes = [bytes.fromhex(h) for h in conn.execute(query).scalars()]
        if len(hashes) != size:
            raise AuditError(f"the log holds {len(hashes)} of entries 1..{size}; run verify")
        return hashes

    def checkpoints(self, *, since: int = 0) -> list[Checkpoint]:
        """Stored checkpoints of size > ``since``, by size."""
        cps = self._t.checkpoints
        query = select(cps.c.size, cps.c.root, cps.c.at, cps.c.note).where(cps.c.size > since)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(cps.c.size, cps.c.id)).all()
        return [Checkpoint.model_validate(row._asdict()) for row in rows]

    def latest_checkpoint(self, *, cosigned: bool = True) -> SignedCheckpoint | None:
        """The newest signed checkpoint, with the witnesses' cosignatures on it."""
        cps = self._t.checkpoints
        query = select(cps.c.size, cps.c.note).order_by(cps.c.size.desc(), cps.c.id).limit(1)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return self.checkpoint_at(int(row.size)) if cosigned else parse_checkpoint(row.note)

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        """The checkpoint of ``size``, with the cosignatures stored for it."""
        cps, cos = self._t.checkpoints, self._t.cosignatures
        with self._engine.connect() as conn:
            note = conn.execute(
                select(cps.c.note).where(cps.c.size == size).order_by(cps.c.id).limit(1)
            ).scalar()
            lines = conn.execute(
                select(cos.c.line).where(cos.c.size == size).order_by(cos.c.at)
            ).scalars()
            cosignatures = "".join(lines)
        if note is None:
            return None
        try:
            signed = parse_checkpoint(note)
            return signed.with_cosignatures(cosignatures) if cosignatures else signed
        except NoteError as error:
            raise AuditError(f"the checkpoint of size {size} cannot be read ({error})") from None

    def cosignatures(self) -> list[Cosignature]:
        cos = self._t.cosignatures
        query = select(cos.c.size, cos.c.root, cos.c.witness, cos.c.line, cos.c.at)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(cos.c.size, cos.c.at)).all()
        return [Cosignature.model_validate(row._asdict()) for row in rows]

    def witnessed_size(self, witness: Verifier) -> int:
        """The largest size ``witness`` has cosigned for this log (0 if none)."""
        cos, cps = self._t.cosignatures, self._t.checkpoints
        query = (
            select(cos.c.size, cos.c.line, cps.c.note)
            .join(cps, cps.c.size == cos.c.size)
            .where(cos.c.witness == witness.name)
            .order_by(cos.c.size.desc())
        )
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                try:
                    note = parse_checkpoint(row.note).note.with_lines(row.line)
                except NoteError:
                    continue
                if note.signed_by(witness):
                    return int(row.size)
        return 0

    def add_cosignatures(
        self, checkpoint: SignedCheckpoint, lines: str, witness: Verifier
    ) -> list[Cosignature]:
        """Store ``witness``'s cosignature lines on one of this log's checkpoints (checked)."""
        stored = self.checkpoint_at(checkpoint.size)
        if stored is None or stored.root != checkpoint.root or stored.origin != checkpoint.origin:
            raise AuditError(
                f"the log has no checkpoint of size {checkpoint.size} with that root: the "
                "cosignatures are for another log or another history"
            )
        try:
            answer = stored.note.with_lines(lines)
        except NoteError as error:
            raise AuditError(f"the witness's answer cannot be read ({error})") from None
        mine = [s for s in answer.signatures if s.name == witness.name]
        good = [s for s in mine if s.key_id == witness.key_id]
        if not good or not answer.signed_by(witness):
            raise AuditError(
                f"the answer holds no valid cosignature by {witness.vkey()} on the checkpoint "
                f"of size {checkpoint.size}"
            )
        at = self._now()
        rows = [
            {
                "line_hash": hashlib.sha256(s.line.encode("utf-8")).hexdigest(),
                "size": checkpoint.size,
                "root": checkpoint.root.hex(),
                "witness": witness.name,
                "line": s.line,
                "at": at,
            }
            for s in good
        ]
        cos = self._t.cosignatures
        with self._engine.begin() as conn:
            have = set(
                conn.execute(
                    select(cos.c.line_hash).where(
                        cos.c.line_hash.in_([r["line_hash"] for r in rows])
                    )
                ).scalars()
            )
            new = [r for r in rows if r["line_hash"] not in have]
            if new:
                conn.execute(insert(cos), new)
        return [
            Cosignature.model_validate({k: v for k, v in r.items() if k != "line_hash"})
            for r in rows
        ]

    # --- personal data -----------------------------------------------------------------------

    def clear_values(self, refs: Sequence[str]) -> dict[str, str]:
        """The clear values still held for these references (erased ones are absent)."""
        with self._engine.connect() as conn:
            return personal.clear_values(conn, self._t, refs)

    def salts(self, refs: Sequence[str]) -> dict[str, str]:
        with self._engine.connect() as conn:
            return personal.salts_of(conn, self._t, refs)

    def erase(self, order_id: str, *, actor: str, reason: str) -> int:
        """Erase the personal data of one order: its clear values and salt go, an entry says
        so, in one transaction. The chain and its checkpoints are untouched."""
        subject = personal.subject_of_order(order_id)

        def work(conn: Connection) -> int:
            # appends in flight that use the salt end first, so their values go too
            personal.drop_salt(conn, self._t, subject)
            head = self._lock_head(conn)
            gone = personal.erase(conn, self._t, subject)
            payload = {"subject": subject, "values": gone, "reason": reason}
            ready = self._made(conn, [_prepare(0, actor, "personal.erased", payload, None)])
            self._insert(conn, head, *ready, None)
            return gone

        return int(self._write(None, work, 1))

    # --- verifying and exporting -------------------------------------------------------------

    def verify(self, trust: Trust | Ed25519PublicKey | None = None) -> VerifyResult:
        """Verify the whole log against ``trust`` (a public key, or default: this log's own).

        Fails closed: no key, no checkpoint covering the head, an empty log nobody vouches
        for, a trusted checkpoint the log is not consistent with are all failures.
        """
        if not isinstance(trust, Trust):
            own = trust
            if own is None and self._signer is not None:
                own = self._signer.public_key()
            trust = Trust(keys=() if own is None else (Verifier("*", ED25519, own),))
        log = self._t.log
        with self._snapshot() as conn:
            head = self._head_row(conn)
            verifier = LogVerifier(trust, self._read_checkpoints(conn), self._read_cosigs(conn))
            query = select(
                log.c.seq,
                log.c.at,
                log.c.actor,
                log.c.event,
                log.c.payload,
                log.c.prev_hash,
                log.c.hash,
            ).order_by(log.c.seq)
            rows = conn.execution_options(yield_per=_PAGE).execute(query)
            add = verifier.add_row
            for seq, at, actor, event, payload, prev_hash, hash_ in rows:
                if not add(
                    seq=seq,
                    at=at,
                    actor=actor,
                    event=event,
                    payload_json=payload,
                    prev_hash=prev_hash,
                    hash=hash_,
                ):
                    break
            if head is None:
                verifier.fail(None, f"{_NO_HEAD} (the log holds {verifier.count}+ entries)")
        return verifier.finish(head)

    def export(self, fp: IO[str]) -> int:
        """Write the export (JSON Lines, see :mod:`audit.export`) to ``fp``; returns entries."""
        with self._snapshot() as conn:
            checkpoints = self._read_checkpoints(conn)
            cosignatures = self._read_cosigs(conn)
            query = select(self._t.log).order_by(self._t.log.c.seq)
            rows = conn.execution_options(yield_per=_PAGE).execute(query)
            return write_export(fp, (_export_row(row) for row in rows), checkpoints, cosignatures)

    def _snapshot(self) -> Any:
        """One read transaction: the head, checkpoints and entries it reads agree."""
        conn = self._engine.connect()
        if self._engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return _Snapshot(conn)

    def _head_row(self, conn: Connection) -> HeadRow | None:
        hd = self._t.head
        row = conn.execute(
            select(hd.c.seq, hd.c.hash, hd.c.frontier, hd.c.origin).where(hd.c.id == HEAD_ID)
        ).first()
        if row is None:
            return None
        return HeadRow(int(row.seq), str(row.hash), row.frontier, row.origin)

    def _read_checkpoints(self, conn: Connection) -> list[Checkpoint]:
        cps = self._t.checkpoints
        query = select(cps.c.size, cps.c.root, cps.c.at, cps.c.note).order_by(cps.c.size, cps.c.id)
        return [Checkpoint.model_validate(row._asdict()) for row in conn.execute(query)]

    def _read_cosigs(self, conn: Connection) -> list[Cosignature]:
        cos = self._t.cosignatures
        query = select(cos.c.size, cos.c.root, cos.c.witness, cos.c.line, cos.c.at)
        return [Cosignature.model_validate(row._asdict()) for row in conn.execute(query)]

    def _now(self) -> str:
        moment = self._clock()
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise AuditError(
                "the audit clock returned a naive datetime; pass a clock that returns "
                "timezone-aware datetimes, e.g. lambda: datetime.now(UTC)"
            )
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Snapshot:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __enter__(self) -> Connection:
        self._conn.begin()
        return self._conn

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._conn.rollback()
        finally:
            self._conn.close()


class _Head:
    __slots__ = ("frontier", "hash", "log_key", "origin", "seq")

    def __init__(
        self, seq: int, hash: str, origin: str, frontier: CompactRange, log_key: str | None
    ) -> None:
        self.seq, self.hash, self.origin = seq, hash, origin
        self.frontier, self.log_key = frontier, log_key


_NO_HEAD = (
    "the audit_head row is missing: run the store's migrations (store.migrate.upgrade) on a "
    "new database; "
    "if the log already has entries, the database was changed outside the log: run verify"
)


_PUBLIC: dict[int, tuple[Ed25519PrivateKey, str]] = {}


def _b64_private(key: Ed25519PrivateKey) -> str:
    """The base64 public key of a private key, remembered per key object (an append needs it
    at every commit)."""
    known = _PUBLIC.get(id(key))
    if known is None or known[0] is not key:
        known = (key, _b64_public(key.public_key()))
        if len(_PUBLIC) > 64:
            _PUBLIC.clear()
        _PUBLIC[id(key)] = known
    return known[1]


def _b64_public(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(key)).decode("ascii")


def _is_lock_conflict(error: exc.DBAPIError) -> bool:
    """A lock wait that ran out (SQLite busy) or a conflict PostgreSQL asks to retry."""
    if getattr(error.orig, "sqlstate", None) in _LOCK_SQLSTATES:
        return True
    return isinstance(error, exc.OperationalError) and "database is locked" in str(error.orig)


def _append_failed(count: int, attempts: int, error: exc.DBAPIError) -> AuditError:
    what = f"{count} audit entr{'y' if count == 1 else 'ies'}"
    if _is_lock_conflict(error):
        hint = (
            f"other writers held the log for all {attempts} attempts; raise the database's "
            "lock timeout (SQLite: connect_args={'timeout': seconds}) or end the long "
            "transaction that holds audit_head"
        )
    else:
        hint = "check that the database is reachable and that its migrations have run"
    return AuditError(f"could not append {what}; none was written ({error.orig}): {hint}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


_Prepared = tuple[int, str, str, dict[str, Any], str | None]  # index, actor, event, payload, key


class _Made(NamedTuple):
    """An item ready for the chain: its payload redacted and made canonical."""

    actor: str
    event: str
    text: str  # the canonical payload the entry's hash covers
    stored: dict[str, Any]  # the same payload as that text reads back
    key: str | None


def _prepare(
    index: int, actor: str, event: str, payload: dict[str, Any], key: str | None = None
) -> _Prepared:
    """Check one item's labels and key before any database work (its payload is made canonical
    in the appending transaction, after personal values are replaced; a payload JSON cannot
    hold fails there and the transaction writes nothing)."""
    where = f"item {index}"
    for name, value in (("actor", actor), ("event", event)):
        if not isinstance(value, str) or not value.strip() or len(value) > _MAX_LABEL:
            raise ValueError(
                f"{where}: {name} must be a non-blank string of at most {_MAX_LABEL} "
                f"characters, got {value!r}"
            )
    if not isinstance(payload, dict):
        raise TypeError(f"{where} ({event}): payload must be a dict, got {type(payload).__name__}")
    if key is not None and (not key or len(key) > 300):
        raise ValueError(f"{where}: key must be 1 to 300 characters, got {key!r}")
    return index, actor, event, payload, key


def _canonical(payload: dict[str, Any], index: int, event: str) -> tuple[str, dict[str, Any]]:
    """(the payload's canonical text, a copy of it as that text reads back)."""
    try:
        return canonical_pair(payload)
    except (TypeError, ValueError) as error:
        raise type(error)(f"item {index} ({event}): payload {error}") from None


def _entry_dict(row: Row[Any]) -> dict[str, Any]:
    """A stored row as the entry's JSON object; ValueError when its payload is not JSON."""
    try:
        payload = json.loads(row.payload)
    except (TypeError, ValueError) as error:
        raise ValueError(f"stored payload is not valid JSON ({error})") from None
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "event": row.event,
        "payload": payload,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def _entry_from_row(row: Row[Any]) -> AuditEntry:
    try:
        return AuditEntry.model_validate(_entry_dict(row))
    except ValueError as error:
        raise AuditError(
            f"audit_log seq {row.seq} cannot be read ({error}); run verify to find the damage"
        ) from error


def _export_row(row: Row[Any]) -> tuple[dict[str, Any], str]:
    """(the entry's fields but the payload, the payload's stored text) for the export."""
    fields = {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "event": row.event,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
    return fields, row.payload
