"""Policy versions and which one is in force (migration 0005_policy).

A version is immutable: its TOML text, the digest of its content, who imported it, when, and
why. ``policy_states`` is the history of what was in force: each change (a version activated,
a rollback, a candidate in shadow or rolled out to a share of the orders, the kill switch)
adds a row, and the newest row is the state now. Its ``seq`` is the counter a process reads
to learn, in one small query, that the state changed.

Writes take a connection in a transaction the caller owns, so that a change and the audit
entry that records it commit together (``service.policies``); ``serialize`` makes changes one
at a time across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Connection, Engine, func, insert, select, text

from domain.errors import NotFound
from store.schema import policy_states, policy_versions

Mode = Literal["shadow", "rollout"]


@dataclass(frozen=True)
class PolicyVersion:
    id: int
    label: str
    digest: str
    content: str
    author: str
    created_at: datetime
    comment: str | None

    @property
    def ref(self) -> str:
        """As a decision records it (``domain.policy.Policy.ref``)."""
        return f"{self.label}@{self.digest[:12]}"


@dataclass(frozen=True)
class PolicyState:
    seq: int
    active: int
    activated_seq: int
    restores_seq: int | None
    candidate: int | None
    mode: Mode | None
    percent: int | None
    action: str
    by: str
    at: datetime
    comment: str | None


def _version(row: object) -> PolicyVersion:
    m = row._mapping  # type: ignore[attr-defined]
    return PolicyVersion(**{k: m[k] for k in PolicyVersion.__dataclass_fields__})


def _state(row: object) -> PolicyState:
    m = row._mapping  # type: ignore[attr-defined]
    return PolicyState(**{k: m[k] for k in PolicyState.__dataclass_fields__})


class PolicyVersions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- writing (in the caller's transaction) --------------------------------------------

    def serialize(self, conn: Connection) -> None:
        """Changes to the versions and the state one at a time across processes (SQLite's
        write transaction does already; on PostgreSQL an advisory lock, to the end of
        ``conn``'s transaction)."""
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/policies'))")
            )

    def add(
        self,
        conn: Connection,
        *,
        label: str,
        digest: str,
        content: str,
        author: str,
        comment: str | None,
    ) -> tuple[PolicyVersion, bool]:
        """Store a version; (it, True), or (the version with that digest already, False)."""
        found = self.by_digest(digest, conn)
        if found is not None:
            return found, False
        number = (conn.execute(select(func.max(policy_versions.c.id))).scalar() or 0) + 1
        version = PolicyVersion(
            id=number,
            label=label,
            digest=digest,
            content=content,
            author=author,
            created_at=datetime.now(UTC),
            comment=comment,
        )
        conn.execute(insert(policy_versions).values(**version.__dict__))
        return version, True

    def change(
        self,
        conn: Connection,
        *,
        active: int,
        activated_seq: int | None,
        restores_seq: int | None,
        candidate: int | None,
        mode: Mode | None,
        percent: int | None,
        action: str,
        by: str,
        comment: str | None = None,
    ) -> PolicyState:
        """Put a new state in force (``activated_seq`` None: this row activates ``active``)."""
        seq = (conn.execute(select(func.max(policy_states.c.seq))).scalar() or 0) + 1
        state = PolicyState(
            seq=seq,
            active=active,
            activated_seq=seq if activated_seq is None else activated_seq,
            restores_seq=restores_seq,
            candidate=candidate,
            mode=mode,
            percent=percent,
            action=action,
            by=by,
            at=datetime.now(UTC),
            comment=comment,
        )
        conn.execute(insert(policy_states).values(**state.__dict__))
        return state

    # --- reading -------------------------------------------------------------------------

    def _read(self, conn: Connection | None, query):  # type: ignore[no-untyped-def]
        if conn is not None:
            return conn.execute(query)
        with self.engine.connect() as own:
            return own.execute(query).all()

    def counter(self, conn: Connection | None = None) -> int:
        """The seq of the state in force (0 before the first): changes whenever it does."""
        query = select(func.max(policy_states.c.seq))
        rows = list(self._read(conn, query))
        return int(rows[0][0] or 0)

    def state(self, conn: Connection | None = None) -> PolicyState | None:
        """The state in force, or None before the store holds a policy."""
        query = select(policy_states).order_by(policy_states.c.seq.desc()).limit(1)
        rows = list(self._read(conn, query))
        return _state(rows[0]) if rows else None

    def state_at(self, seq: int, conn: Connection | None = None) -> PolicyState:
        rows = list(self._read(conn, select(policy_states).where(policy_states.c.seq == seq)))
        if not rows:
            raise NotFound(f"no policy state {seq}")
        return _state(rows[0])

    def history(self) -> list[PolicyState]:
        """Every state that was in force, oldest first."""
        return [_state(r) for r in self._read(None, select(policy_states).order_by("seq"))]

    def find(self, number: int, conn: Connection | None = None) -> PolicyVersion | None:
        rows = list(self._read(conn, select(policy_versions).where(policy_versions.c.id == number)))
        return _version(rows[0]) if rows else None

    def get(self, number: int, conn: Connection | None = None) -> PolicyVersion:
        found = self.find(number, conn)
        if found is None:
            raise NotFound(f"no policy version {number}; `exdesk policy list` shows them")
        return found

    def by_digest(self, digest: str, conn: Connection | None = None) -> PolicyVersion | None:
        query = select(policy_versions).where(policy_versions.c.digest == digest)
        rows = list(self._read(conn, query))
        return _version(rows[0]) if rows else None

    def by_ref(self, ref: str) -> PolicyVersion | None:
        """The version a decision's ``label@digest12`` names, or None."""
        label, _, short = ref.rpartition("@")
        if not label or len(short) != 12:
            return None
        query = select(policy_versions).where(
            policy_versions.c.label == label, policy_versions.c.digest.startswith(short)
        )
        rows = list(self._read(None, query))
        return _version(rows[0]) if rows else None

    def list(self) -> list[PolicyVersion]:
        """Every version, oldest first."""
        return [_version(r) for r in self._read(None, select(policy_versions).order_by("id"))]
