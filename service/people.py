"""The people who work at the desk: adding them (with a token shown once), listing, revoking,
and who a token belongs to. What each role may do is here too, in one table."""

from __future__ import annotations

from domain.approvals import AGENT_ACTORS, person
from domain.errors import InputError, NotAllowed
from domain.models import ROLES, Role, User
from service.wiring import Exdesk

# What each role is for. Auditors read; operators submit orders and resolve customer holds;
# approvers and supervisors decide (and read).
CAN: dict[str, frozenset[Role]] = {
    "read": frozenset({"auditor", "operator", "approver", "supervisor"}),
    "submit": frozenset({"operator"}),
    "resolve": frozenset({"operator"}),
    # a customer's reply (contract §8.2): operators, and those above them
    "reply": frozenset({"operator", "approver", "supervisor"}),
    "decide": frozenset({"approver", "supervisor"}),
}


def allow(user: User, what: str) -> None:
    """NotAllowed unless ``user``'s role may do ``what`` (a key of ``CAN``)."""
    if user.role not in CAN[what]:
        roles = " or ".join(sorted(CAN[what]))
        raise NotAllowed(f"{user.name} is {user.role}; to {what} you must be {roles}")


def add_user(app: Exdesk, name: str, role: str) -> tuple[User, str]:
    """Add a person with one role; returns them and their API token (shown once)."""
    shown = " ".join(name.split())
    who = person(shown)
    if not who:
        raise InputError("a user needs a name with at least one visible character")
    if who in AGENT_ACTORS:
        raise InputError(f"{shown!r} is the agent's name; people cannot take it")
    if role not in ROLES:
        raise InputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    user, token = app.users.add(name=shown, person=who, role=role)
    app.audit.append("operator", "user.added", {"user": user.name, "role": user.role})
    return user, token


def revoke_user(app: Exdesk, name: str) -> User:
    user = app.users.revoke(person(name))
    app.audit.append("operator", "user.revoked", {"user": user.name, "role": user.role})
    return user


def authenticate(app: Exdesk, token: str | None) -> User:
    """The active user a token belongs to; NotAllowed when there is none."""
    user = app.users.by_token(token) if token else None
    if user is None:
        raise NotAllowed("a valid token is needed (Authorization: Bearer TOKEN)")
    return user
