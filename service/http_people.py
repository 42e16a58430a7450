"""People management over HTTP: who works at the desk, added, changed and revoked by a
supervisor with their token (``service.people``). The first supervisor is added from the
command line (`exdesk users add NAME --role supervisor`): every request here needs a token."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import ExdeskError
from domain.models import ROLES, User
from service.http import Desk, Who, http_error
from service.people import add_user, allow, revoke_user, set_role


class PersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="their name, as others know them")
    role: str = Field(description=f"one of {', '.join(ROLES)}")


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(description=f"one of {', '.join(ROLES)}")


def person_json(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
        "added_by": user.added_by,
        "added_at": (user.added_at or user.created_at).isoformat(),
        "revoked_at": user.revoked_at.isoformat() if user.revoked_at else None,
    }


def guarded(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except ExdeskError as exc:
        raise http_error(exc) from exc


def mount_people(api: FastAPI) -> None:
    """The /users routes on ``api`` (``service.http.create_app`` mounts them)."""

    @api.get("/users", tags=["people"])
    def list_people(app: Desk, user: Who) -> list[dict[str, Any]]:
        """Everyone who was added, revoked or not: role, who gave them that role and when."""
        guarded(allow, user, "read")
        return [person_json(u) for u in app.users.list()]

    @api.post("/users", tags=["people"], status_code=201)
    def add_person(body: PersonIn, app: Desk, user: Who) -> dict[str, Any]:
        """Add a person (supervisors only). The answer holds their API token, shown only
        now: give it to them. The audit entry names you."""
        guarded(allow, user, "people")
        added, token = guarded(add_user, app, body.name, body.role, by=user)
        return {**person_json(added), "token": token}

    @api.post("/users/{name}/role", tags=["people"])
    def change_person(name: str, body: RoleIn, app: Desk, user: Who) -> dict[str, Any]:
        """Give a person another role (supervisors only); their token stays."""
        guarded(allow, user, "people")
        return person_json(guarded(set_role, app, name, body.role, by=user))

    @api.post("/users/{name}/revoke", tags=["people"])
    def revoke_person(name: str, app: Desk, user: Who) -> dict[str, Any]:
        """Revoke a person's token at once (supervisors only; never the last supervisor)."""
        guarded(allow, user, "people")
        return person_json(guarded(revoke_user, app, name, by=user))
