"""The hash-chained, append-only audit log, stored through SQLAlchemy (SQLite or PostgreSQL).

Appends serialize on the single ``audit_head`` row: each transaction first UPDATEs it (the
SQLite write lock, the PostgreSQL row lock), then reads the head, inserts its entries and
moves the head. Several threads or processes may append at once; the chain stays linear.
A batch that meets a lock timeout (SQLite busy) or a PostgreSQL serialization failure or
deadlock is rolled back and tried again, a few times. PostgreSQL's default READ COMMITTED
isolation suits this best; on SQLite, WAL mode and the busy timeout are the engine's business.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Connection, Engine, Row, Select, exc, insert, select, true, update

from audit.checkpoints import sign_checkpoint
from audit.errors import AuditError
from audit.export import verify_export, write_export
from audit.models import GENESIS_HASH, AuditEntry, Checkpoint, VerifyResult, entry_hash
from audit.schema import HEAD_ID, AuditTables, build_tables
from audit.verify import ChainVerifier
from domain.canonical import canonical_json

__all__ = ["GENESIS_HASH", "AuditEntry", "AuditLog", "Checkpoint", "VerifyResult", "verify_export"]

_PAGE = 1000
_MAX_LABEL = 200
_ATTEMPTS = 5
_BACKOFF_S = 0.05
_LOCK_SQLSTATES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock n/a


class AuditLog:
    """Append, checkpoint, verify and export the audit log kept in ``engine``'s database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock or _utc_now
        self._t = build_tables()

    @property
    def tables(self) -> AuditTables:
        return self._t

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
        so the entry commits (or not) with the state change it records.
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
        if conn is not None:
            return self._append_locked(conn, prepared)
        attempt = 1
        while True:
            try:
                with self._engine.begin() as conn:
                    return self._append_locked(conn, prepared)
            except exc.DBAPIError as error:
                if attempt >= _ATTEMPTS or not _is_lock_conflict(error):
                    raise _append_failed(len(prepared), attempt, error) from error
            time.sleep(_BACKOFF_S * attempt)  # rolled back: nothing was written, try again
            attempt += 1

    def head(self) -> tuple[int, str]:
        """(number of entries, hash of the last one) as ``audit_head`` records them."""
        with self._engine.connect() as conn:
            row = conn.execute(self._head_query()).first()
        if row is None:
            raise AuditError(_NO_HEAD)
        return int(row.seq), str(row.hash)

    def by_key(self, key: str) -> AuditEntry | None:
        """The entry appended with idempotency key ``key``, if there is one."""
        log = self._t.log
        with self._engine.connect() as conn:
            row = conn.execute(select(log).where(log.c.idem_key == key)).first()
        return None if row is None else _entry_from_row(row)

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

    def checkpoint(self, private_key: Ed25519PrivateKey) -> Checkpoint:
        """Sign the current head and store the checkpoint; returns it."""
        hd = self._t.head
        with self._engine.begin() as conn:
            # Lock the head first, as appends do: the checkpoint covers a head nobody moves.
            row = conn.execute(
                update(hd)
                .where(hd.c.id == HEAD_ID)
                .values(seq=hd.c.seq)
                .returning(hd.c.seq, hd.c.hash)
            ).first()
            if row is None:
                raise AuditError(_NO_HEAD)
            checkpoint = sign_checkpoint(
                private_key, seq=int(row.seq), head=str(row.hash), at=self._now()
            )
            conn.execute(insert(self._t.checkpoints).values(**checkpoint.model_dump()))
        return checkpoint

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, by seq."""
        cps = self._t.checkpoints
        query = select(cps.c.seq, cps.c.head, cps.c.at, cps.c.signature)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(cps.c.seq, cps.c.id)).all()
        return [Checkpoint.model_validate(row._asdict()) for row in rows]

    def verify(self, public_key: Ed25519PublicKey | None = None) -> VerifyResult:
        """Walk the whole chain, the head row and every checkpoint; see :class:`VerifyResult`.

        Without ``public_key`` checkpoints are checked against the chain but their signatures
        are not, so someone able to write the database could have rewritten them too.
        """
        # Checkpoints are read before the entries: each covers a prefix of what is read next.
        verifier = ChainVerifier(self.checkpoints(), public_key)
        head: tuple[int, str] | None = None
        log, hd = self._t.log, self._t.head
        # One statement, so the head and the entries come from one snapshot even while
        # others append. The outer join yields one all-NULL entry row for an empty log.
        query = (
            select(log, hd.c.seq.label("head_seq"), hd.c.hash.label("head_hash"))
            .select_from(hd.outerjoin(log, true()))
            .where(hd.c.id == HEAD_ID)
            .order_by(log.c.seq)
        )
        with self._engine.connect() as conn:
            for row in conn.execution_options(yield_per=_PAGE).execute(query):
                head = (int(row.head_seq), str(row.head_hash))
                if row.seq is not None and not self._verify_row(verifier, row):
                    break
            if head is None:
                self._report_missing_head(conn, verifier)
        return verifier.finish(head)

    def export(self, fp: IO[str]) -> int:
        """Write the export (JSON Lines, see :mod:`audit.export`) to ``fp``; returns entries."""
        checkpoints = self.checkpoints()  # before the entries, as in verify
        with self._engine.connect() as conn:
            query = select(self._t.log).order_by(self._t.log.c.seq)
            rows = conn.execution_options(yield_per=_PAGE).execute(query)
            return write_export(fp, (_readable_entry(row) for row in rows), checkpoints)

    def _append_locked(self, conn: Connection, prepared: list[_Prepared]) -> list[AuditEntry]:
        hd, log = self._t.head, self._t.log
        locked = conn.execute(
            update(hd).where(hd.c.id == HEAD_ID).values(seq=hd.c.seq).returning(hd.c.seq, hd.c.hash)
        ).first()
        if locked is None:
            raise AuditError(_NO_HEAD)
        wanted = [p[3] for p in prepared if p[3] is not None]
        found: dict[str, AuditEntry] = {}
        if wanted:
            query = select(log).where(log.c.idem_key.in_(wanted))
            found = {row.idem_key: _entry_from_row(row) for row in conn.execute(query)}
        seq, prev = int(locked.seq), str(locked.hash)
        at = self._now()
        rows: list[dict[str, Any]] = []
        entries: list[AuditEntry] = []
        for actor, event, payload_json, key in prepared:
            if key is not None and key in found:
                entries.append(found[key])
                continue
            seq += 1
            digest = entry_hash(
                seq=seq, at=at, actor=actor, event=event, payload_json=payload_json, prev_hash=prev
            )
            fields = {"seq": seq, "at": at, "actor": actor, "event": event, "prev_hash": prev}
            payload_text = payload_json.decode("utf-8")
            rows.append({**fields, "payload": payload_text, "hash": digest, "idem_key": key})
            # Read back from the stored text: the entry is what entries() will return later.
            entry = AuditEntry(**fields, payload=json.loads(payload_json), hash=digest)
            entries.append(entry)
            if key is not None:
                found[key] = entry  # the same key twice in one batch is one entry
            prev = digest
        if rows:
            conn.execute(insert(log), rows)
            conn.execute(update(hd).where(hd.c.id == HEAD_ID).values(seq=seq, hash=prev))
        return entries

    def _verify_row(self, verifier: ChainVerifier, row: Row[Any]) -> bool:
        try:
            entry = _entry_dict(row)
        except ValueError as error:
            verifier.fail(verifier.count + 1, f"entry {row.seq}: {error}")
            return False
        return verifier.add(entry)

    def _report_missing_head(self, conn: Connection, verifier: ChainVerifier) -> None:
        log = self._t.log
        last = conn.execute(select(log.c.seq).order_by(log.c.seq.desc()).limit(1)).first()
        count = 0 if last is None else int(last.seq)
        verifier.fail(None, f"{_NO_HEAD} (the log holds entries up to seq {count})")

    def _head_query(self) -> Select[Any]:
        hd = self._t.head
        return select(hd.c.seq, hd.c.hash).where(hd.c.id == HEAD_ID)

    def _now(self) -> str:
        moment = self._clock()
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise AuditError(
                "the audit clock returned a naive datetime; pass a clock that returns "
                "timezone-aware datetimes, e.g. lambda: datetime.now(UTC)"
            )
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_NO_HEAD = (
    "the audit_head row is missing: run the store's migrations (store.migrate.upgrade) on a "
    "new database; "
    "if the log already has entries, the database was changed outside the log: run verify"
)


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


_Prepared = tuple[str, str, bytes, str | None]  # actor, event, canonical payload, key


def _prepare(
    index: int, actor: str, event: str, payload: dict[str, Any], key: str | None = None
) -> _Prepared:
    """Check one item and canonicalize its payload, before any database work."""
    where = f"item {index}"
    for name, value in (("actor", actor), ("event", event)):
        if not isinstance(value, str) or not value.strip() or len(value) > _MAX_LABEL:
            raise ValueError(
                f"{where}: {name} must be a non-blank string of at most {_MAX_LABEL} "
                f"characters, got {value!r}"
            )
    if not isinstance(payload, dict):
        raise TypeError(f"{where} ({event}): payload must be a dict, got {type(payload).__name__}")
    try:
        payload_json = canonical_json(payload)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where} ({event}): payload {error}") from None
    if key is not None and (not key or len(key) > 300):
        raise ValueError(f"{where}: key must be 1 to 300 characters, got {key!r}")
    return actor, event, payload_json, key


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
    return AuditEntry.model_validate(_readable_entry(row))


def _readable_entry(row: Row[Any]) -> dict[str, Any]:
    """The row's entry, or an AuditError that sends the reader to verify."""
    try:
        return _entry_dict(row)
    except ValueError as error:
        raise AuditError(
            f"audit_log seq {row.seq} cannot be read ({error}); run verify to find the damage"
        ) from error
