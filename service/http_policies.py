"""Policy versions over HTTP (``service.policies``): everyone at the desk reads; approvers and
supervisors import drafts; supervisors put a version in force, roll back, run a candidate in
shadow or for a share of the orders, and stop it. A version is named by its number or by the
ref decisions record (``label@digest12``). Changes take effect in the running service at its
next order, and in every other process sharing the store at theirs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from service import policies
from service.http import Desk, Who
from service.http_people import guarded
from service.people import allow
from service.policy_compare import compare
from service.wiring import Exdesk
from store.policies import PolicyState


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1,
        max_length=policies.MAX_POLICY_CHARS,
        description="the policy, as the text of a policy file (TOML)",
    )
    comment: str | None = Field(default=None, max_length=4000, description="why")
    source: str = Field(
        default="draft", min_length=1, max_length=200, description="its name in error messages"
    )


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=4000, description="why")


class RolloutIn(ChangeIn):
    percent: int = Field(ge=1, le=100, description="the share of orders: 5, 25, 100 ...")


def _listing(app: Exdesk) -> dict[str, Any]:
    state = app.policies.state
    return {
        "state": policies.state_json(state),
        "versions": [policies.describe(app, v, state) for v in app.policy_store.list()],
    }


def _changed(app: Exdesk, state: PolicyState) -> dict[str, Any]:
    """The state put in force, and how many open proposals it kept or voided (each says
    how on ``GET /proposals/{id}``: its ``status`` and ``detail``)."""
    entry = policies.change_entry(app, state) or {}
    proposals = {
        "rebound": entry.get("proposals_rebound", 0),
        "void": entry.get("proposals_void", 0),
    }
    return {"state": policies.state_json(state), "proposals": proposals}


def mount_policies(api: FastAPI) -> None:
    """The /policies routes on ``api`` (``service.http.create_app`` mounts them)."""

    @api.get("/policies", tags=["policies"])
    def list_policies(app: Desk, who: Who) -> dict[str, Any]:
        """Every stored version (oldest first) and the state in force: the active version,
        a candidate in shadow or rollout and its share."""
        guarded(allow, who, "read")
        app.refresh_policy()
        return _listing(app)

    @api.post("/policies", tags=["policies"], status_code=201)
    def import_policy(body: DraftIn, app: Desk, who: Who, response: Response) -> dict[str, Any]:
        """Store a draft as a new version (approvers and supervisors; it decides nothing until
        a supervisor activates it). Checked as a policy file is and against contract §4's
        floors: a refusal (422) names the line and field. The same content again answers 200
        with the version it was stored as."""
        guarded(allow, who, "import policies")
        done = guarded(
            policies.import_policy, app, body.text, body.source, by=who, comment=body.comment
        )
        if not done.new:
            response.status_code = 200
        state = app.policies.state
        return {**policies.describe(app, done.version, state), "new": done.new}

    @api.post("/policies/rollback", tags=["policies"])
    def rollback_policy(body: ChangeIn, app: Desk, who: Who) -> dict[str, Any]:
        """Put back the version that was active before the current one (supervisors)."""
        guarded(allow, who, "change the policy in force")
        return _changed(app, guarded(policies.rollback, app, by=who, comment=body.comment))

    @api.post("/policies/kill", tags=["policies"])
    def kill_candidate(body: ChangeIn, app: Desk, who: Who) -> dict[str, Any]:
        """The kill switch: every order back to the active version at once (supervisors)."""
        guarded(allow, who, "change the policy in force")
        return _changed(app, guarded(policies.kill, app, by=who, comment=body.comment))

    @api.get("/policies/{version}", tags=["policies"])
    def show_policy(version: str, app: Desk, who: Who) -> dict[str, Any]:
        """One version: who imported it, when and why, its text and the policy it reads as."""
        guarded(allow, who, "read")
        app.refresh_policy()
        found = guarded(policies.resolve, app, version)
        policy = app.policies.version_policy(found.id)
        return {
            **policies.describe(app, found, app.policies.state),
            "text": found.content,
            "policy": policy.model_dump(mode="json"),
        }

    @api.get("/policies/{a}/diff/{b}", tags=["policies"])
    def diff_policies(a: str, b: str, app: Desk, who: Who) -> dict[str, Any]:
        """What changes from version a to version b: field by field, and the text's unified
        diff."""
        guarded(allow, who, "read")
        result: dict[str, Any] = guarded(policies.diff, app, a, b)
        return result

    @api.get("/policies/{version}/compare", tags=["policies"])
    def compare_policy(
        version: str, app: Desk, who: Who, days: Annotated[int, Query(ge=1, le=3650)] = 30
    ) -> dict[str, Any]:
        """How a version fares beside the active one over the last `days` days: the live
        decisions of each (decisions, exceptions, top strategies, tiers), and in shadow what
        it would have decided beside each live decision, with the orders where they differ."""
        guarded(allow, who, "read")
        app.refresh_policy()
        found = guarded(policies.resolve, app, version)
        result: dict[str, Any] = compare(app, found, days=days)
        return result

    @api.post("/policies/{version}/activate", tags=["policies"])
    def activate_policy(version: str, body: ChangeIn, app: Desk, who: Who) -> dict[str, Any]:
        """Put a version in force for every order from now on (supervisors); ends any shadow
        or rollout. Audited, naming you."""
        guarded(allow, who, "change the policy in force")
        number = guarded(policies.resolve, app, version).id
        state = guarded(policies.activate, app, number, by=who, comment=body.comment)
        return _changed(app, state)

    @api.post("/policies/{version}/shadow", tags=["policies"])
    def shadow_policy(version: str, body: ChangeIn, app: Desk, who: Who) -> dict[str, Any]:
        """Run a version in shadow (supervisors): it decides every order beside the active
        one; its decisions are recorded and compared, never executed."""
        guarded(allow, who, "change the policy in force")
        number = guarded(policies.resolve, app, version).id
        state = guarded(
            policies.set_candidate, app, number, mode="shadow", by=who, comment=body.comment
        )
        return _changed(app, state)

    @api.post("/policies/{version}/rollout", tags=["policies"])
    def rollout_policy(version: str, body: RolloutIn, app: Desk, who: Who) -> dict[str, Any]:
        """Let a version decide a share of the orders (supervisors), chosen by a stable hash
        of the version and the order id."""
        guarded(allow, who, "change the policy in force")
        number = guarded(policies.resolve, app, version).id
        state = guarded(
            policies.set_candidate,
            app,
            number,
            mode="rollout",
            percent=body.percent,
            by=who,
            comment=body.comment,
        )
        return _changed(app, state)
