"""The people who work at the desk, and their API tokens.

A token is shown once, when it is made; only its SHA-256 is stored. A person is found by the
identity behind their name (``domain.approvals.person``), so two spellings of one name are one
person and cannot be added twice.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from domain.errors import InputError, NotFound
from domain.models import Role, User
from store.db import write
from store.schema import users

TOKEN_PREFIX = "exd_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: object) -> User:
    mapping = row._mapping  # type: ignore[attr-defined]
    return User.model_validate({k: mapping[k] for k in User.model_fields})


class Users:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, *, name: str, person: str, role: Role) -> tuple[User, str]:
        """Add a person; returns them and their new token (shown once, never stored)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = {
            "person": person,
            "name": name,
            "role": role,
            "token_hash": token_hash(token),
            "created_at": now,
        }
        try:
            write(self.engine, lambda conn: conn.execute(insert(users).values(**row)))
        except IntegrityError as exc:
            raise InputError(
                f"{name!r} is already a user (as {self.get(person).name!r}); "
                "`exdesk users revoke` them first to give them a new token"
            ) from exc
        return User(name=name, person=person, role=role, created_at=now), token

    def get(self, person: str) -> User:
        """The active user who is ``person``."""
        query = select(users).where(users.c.person == person, users.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no user {person!r}; `exdesk users list` shows them")
        return _user(row)

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

    def revoke(self, person: str) -> User:
        """Revoke the person's token; they may be added again with a new one."""
        user = self.get(person)
        now = datetime.now(UTC)
        query = (
            update(users)
            .where(users.c.person == person, users.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        write(self.engine, lambda conn: conn.execute(query))
        return user.model_copy(update={"revoked_at": now})
