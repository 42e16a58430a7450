"""Personal data out of the chain: names, phones, emails, street lines and free-text notes
enter entries only as salted digests; the clear values are held beside the log.

Each value becomes ``personal:<HMAC-SHA256(salt, value) hex>``, where the salt belongs to the
value's *subject*: the order the value is about (the nearest ``order_id`` around it in the
payload, ``order:<id>``), else ``log``. The clear value is stored in ``audit_personal`` under
that reference, the salt in ``audit_subjects``. An erasure deletes a subject's salt and clear
values: the entries (and so the hash chain, the Merkle tree and every signed checkpoint) stay
as they were, and the references left in them can no longer be tied to anyone, since without
the salt nobody can test guesses against them.

Which values: every string under a key ``email``, ``phone``, ``street_address``, ``notes``,
``quote`` (words a model quoted from a note), ``model_prompt`` / ``model_answer`` (what was
said to a model and what it answered) or ``message_text`` (words written for a customer);
a ``name`` in an object that is an address or a contact (under ``customer``, ``ship_to``, … or
beside a ``street_address``, ``email`` or ``phone``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, select

from audit.schema import AuditTables
from audit.statements import Statements

PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "street_address",
        "notes",
        "quote",
        "model_prompt",
        "model_answer",
        "message_text",
    }
)
CONTACT_PARENTS = frozenset({"customer", "ship_to", "bill_to", "address", "contact"})
CONTACT_SIBLINGS = frozenset({"street_address", "email", "phone"})
PREFIX = "personal:"
_SCALARS = frozenset({str, int, float, bool, type(None)})
LOG_SUBJECT = "log"


def subject_of_order(order_id: str) -> str:
    return f"order:{order_id}"


def make_ref(salt: bytes, value: str) -> str:
    return PREFIX + hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()


def is_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX) and len(value) == len(PREFIX) + 64


class Pseudonymizer:
    """Replaces personal values in payloads, inside the appending transaction, before it
    takes the log's head lock (so that the lock is held for the chain's own work only).

    Salts are read FOR SHARE (PostgreSQL): an erasure of the subject waits until this
    transaction commits, then deletes what it wrote too. A salt this transaction makes is
    inserted with ON CONFLICT DO NOTHING and read back, so two processes making the same
    subject's salt at once both use the one that landed. On SQLite a transaction whose
    reads another writer overtook fails at its first write ("database is locked") and is
    run again from the start."""

    def __init__(self, conn: Connection, sql: Statements) -> None:
        self._conn = conn
        self._sql = sql
        self._salts: dict[str, bytes] = {}
        self._values: dict[str, tuple[str, str]] = {}  # ref → (subject, value)

    def prepare(self, payloads: Iterable[Mapping[str, Any]]) -> None:
        """Read (or make) the salts of the payloads' subjects at once: a batch of entries
        about many orders costs a query and an insert, not two statements an order."""
        self._load({_subject(p, LOG_SUBJECT) for p in payloads})

    def _load(self, subjects: set[str]) -> None:
        wanted = subjects - set(self._salts)
        if not wanted:
            return
        self._read(wanted)
        made = {subject: secrets.token_hex(32) for subject in sorted(wanted - set(self._salts))}
        if not made:
            return
        rows = [{"subject": k, "salt": v} for k, v in made.items()]
        landed = {str(s) for s in self._conn.scalars(self._sql.insert_subject, rows)}
        self._salts.update({k: bytes.fromhex(made[k]) for k in landed})
        if len(landed) < len(made):
            self._read(set(made) - landed)  # another process's salt landed first: use it

    def _read(self, subjects: set[str]) -> None:
        rows = self._conn.execute(self._sql.salts_of, {"b_subjects": sorted(subjects)})
        self._salts.update({str(row.subject): bytes.fromhex(str(row.salt)) for row in rows})

    def redact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        subject = _subject(payload, LOG_SUBJECT)
        return self._object(payload, subject, None)

    def flush(self) -> None:
        """Store the clear values met since the last flush (each reference once)."""
        if not self._values:
            return
        rows = [
            {"ref": ref, "subject": subject, "value": value}
            for ref, (subject, value) in self._values.items()
        ]
        self._conn.execute(self._sql.insert_personal, rows)
        self._values.clear()

    def _object(self, obj: Mapping[str, Any], subject: str, parent: str | None) -> dict[str, Any]:
        subject = _subject(obj, subject)
        contact = parent in CONTACT_PARENTS or not CONTACT_SIBLINGS.isdisjoint(obj)
        out: dict[str, Any] = {}
        for key, value in obj.items():
            kind = type(value)
            if kind is str:
                personal = key in PERSONAL_KEYS or (contact and key == "name")
                out[key] = (
                    self._ref(subject, value) if personal and value and not is_ref(value) else value
                )
            elif kind in _SCALARS:  # most values: nothing to look into
                out[key] = value
            elif kind is dict:
                out[key] = self._object(value, subject, key)
            else:
                out[key] = self._value(value, subject, key)
        return out

    def _value(self, value: Any, subject: str, key: str | None) -> Any:
        if isinstance(value, Mapping):
            return self._object(value, subject, key)
        if isinstance(value, list | tuple):
            return [
                item if type(item) in _SCALARS else self._value(item, subject, key)
                for item in value
            ]
        return value

    def _ref(self, subject: str, value: str) -> str:
        ref = make_ref(self._salt(subject), value)
        self._values[ref] = (subject, value)
        return ref

    def _salt(self, subject: str) -> bytes:
        if subject not in self._salts:
            self._load({subject})
        return self._salts[subject]


def _subject(obj: Mapping[str, Any], default: str) -> str:
    order_id = obj.get("order_id")
    if isinstance(order_id, str) and order_id:
        return subject_of_order(order_id)[:300]
    return default


def refs_in(value: Any) -> set[str]:
    """Every personal-data reference anywhere in a JSON value."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif is_ref(item):
            found.add(item)
    return found


def restore(value: Any, clear: Mapping[str, str]) -> Any:
    """``value`` with each reference replaced by its clear value, where one is known."""
    if isinstance(value, Mapping):
        return {k: restore(v, clear) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [restore(v, clear) for v in value]
    if isinstance(value, str) and value in clear:
        return clear[value]
    return value


def clear_values(conn: Connection, tables: AuditTables, refs: Iterable[str]) -> dict[str, str]:
    personal = tables.personal
    wanted = sorted(set(refs))
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(personal.c.ref, personal.c.value).where(personal.c.ref.in_(chunk))
        out.update({row.ref: row.value for row in conn.execute(query)})
    return out


def salts_of(conn: Connection, tables: AuditTables, refs: Iterable[str]) -> dict[str, str]:
    """ref → the salt (hex) that made it, for references whose clear value is still held."""
    personal, subjects = tables.personal, tables.subjects
    query = (
        select(personal.c.ref, subjects.c.salt)
        .join(subjects, subjects.c.subject == personal.c.subject)
        .where(personal.c.ref.in_(sorted(set(refs))))
    )
    return {row.ref: row.salt for row in conn.execute(query)}


def erase(conn: Connection, tables: AuditTables, subject: str) -> int:
    """Delete a subject's clear values and salt; returns how many values went.

    In the log's erasing transaction, call ``drop_salt`` first, then take the head lock, then
    this: see ``drop_salt``."""
    personal = tables.personal
    gone = conn.execute(delete(personal).where(personal.c.subject == subject)).rowcount
    drop_salt(conn, tables, subject)
    return int(gone or 0)


def drop_salt(conn: Connection, tables: AuditTables, subject: str) -> None:
    """Delete a subject's salt, waiting (PostgreSQL) for the transactions that read it FOR
    SHARE to end (``Pseudonymizer``; they read before they take the head lock, so the eraser
    must not hold it yet). Those that made the salt anew are not seen here: they hold the
    head lock until they commit, so the eraser, taking it next, waits for them too."""
    subjects = tables.subjects
    conn.execute(delete(subjects).where(subjects.c.subject == subject))
