"""The people who work at the desk, and their API tokens.

A token is shown once, when it is made; only its SHA-256 is stored. A person is found by the
identity behind their name (``domain.approvals.person``), so two spellings of one name are one
person and cannot be added twice. Each row says who gave the person their role and when
(``added_by``, ``added_at``: a supervisor's name, or none for the first supervisor, added
without a token).

Writes take a connection in a transaction the caller owns, so that a change to the people and
the audit entry that records it commit together (``service.people``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from domain.errors import NotFound
from domain.models import Role, User
from store.schema import users

TOKEN_PREFIX = "exd_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: object) -> User:
    mapping = row._mapping  # type: ignore[attr-defined]
    return User.model_validate({k: mapping[k] for k in User.model_fields})


def _active(person: str):  # type: ignore[no-untyped-def]
    return (users.c.person == person) & users.c.revoked_at.is_(None)


class Users:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- writing (in the caller's transaction) --------------------------------------------

    def serialize(self, conn: Connection) -> None:
        """Make changes to the people one at a time across processes, to the end of ``conn``'s
        transaction (on SQLite the write transaction does already; on PostgreSQL an advisory
        lock does): two first supervisors added at once are one and a refusal."""
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/users'))")
            )

    def add(
        self,
        conn: Connection,
        *,
        name: str,
        person: str,
        role: Role,
        added_by: str | None,
    ) -> tuple[User, str]:
        """Add a person; returns them and their new token (shown once, never stored). An
        active person of that identity raises IntegrityError (the unique index)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        user = User(
            name=name, person=person, role=role, created_at=now, added_by=added_by, added_at=now
        )
        conn.execute(
            insert(users).values(
                **user.model_dump(exclude={"revoked_at"}), token_hash=token_hash(token)
            )
        )
        return user, token

    def revoke(self, conn: Connection, person: str) -> User:
        """Revoke the person's token; they may be added again with a new one."""
        user = self.get(person, conn)
        now = datetime.now(UTC)
        conn.execute(update(users).where(_active(person)).values(revoked_at=now))
        return user.model_copy(update={"revoked_at": now})

    def set_role(self, conn: Connection, person: str, role: Role, *, by: str) -> User:
        """Give the person another role: ``by`` is then who gave them the role they have (as
        ``added_by``, from now)."""
        user = self.get(person, conn)
        change = {"role": role, "added_by": by, "added_at": datetime.now(UTC)}
        conn.execute(update(users).where(_active(person)).values(**change))
        return user.model_copy(update=change)

    # --- reading -------------------------------------------------------------------------

    def find(self, person: str, conn: Connection | None = None) -> User | None:
        """The active user who is ``person``, or None."""
        query = select(users).where(_active(person))
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        return None if row is None else _user(row)

    def get(self, person: str, conn: Connection | None = None) -> User:
        """The active user who is ``person``; NotFound, saying what to do, otherwise."""
        user = self.find(person, conn)
        if user is None:
            raise NotFound(f"no user {person!r}; `exdesk users list` shows them")
        return user

    def latest(self, person: str) -> User | None:
        """The newest row of ``person``, active or revoked (who they were last)."""
        query = select(users).where(users.c.person == person).order_by(users.c.id.desc())
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return None if row is None else _user(row)

    def supervisors(self, conn: Connection) -> list[User]:
        """The active supervisors, oldest first."""
        query = select(users).where(users.c.role == "supervisor", users.c.revoked_at.is_(None))
        return [_user(r) for r in conn.execute(query.order_by(users.c.id))]

    def ever_a_supervisor(self, conn: Connection) -> bool:
        """Whether anyone was ever a supervisor here (then nobody is added without a token)."""
        query = select(func.count()).select_from(users).where(users.c.role == "supervisor")
        return bool(conn.execute(query).scalar())

    def by_token(self, token: str) -> User | None:
        """The active user holding ``token``, or None."""
        query = select(users).where(
            users.c.token_hash == token_hash(token), users.c.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _user(row)

    def list(self) -> list[User]:
        """Everyone, revoked or not, oldest first."""
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.id))]

    def any(self) -> bool:
        """Whether anyone was ever added (then every vote needs a token)."""
        with self.engine.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(users)).scalar())
