"""The review desk over HTTP: a FastAPI app on the same store, graph and checkpointer as the
CLI (``create_app(settings)``). Every request but ``/health`` needs ``Authorization: Bearer
TOKEN`` (or, for the pages, the token cookie set at login); each role does only what it is for.

The pages live in ``service.pages`` on the same app.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from agent.context import Context
from agent.runner import RunResult
from domain.errors import (
    ApprovalError,
    ExdeskError,
    InputError,
    NotAllowed,
    NotFound,
    StaleDigest,
    ToolError,
)
from domain.models import Kind, Order, ProposalStatus, Tier, User, World
from knowledge.errors import CaseMemoryUnavailable
from service import explain, replies, review, usecases
from service.pages import TOKEN_COOKIE, mount_pages
from service.people import allow, authenticate
from service.relay import Relay, RelayThread, sinks_for
from service.reports import case_report
from service.settings import Settings
from service.wiring import Exdesk
from tools.event_sinks import SinkError

log = logging.getLogger(__name__)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: Order
    world: World | None = None
    world_id: str = Field(default="default", min_length=1, max_length=200)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digest: str = Field(min_length=12, max_length=200, description="the digest you reviewed")
    reason: str | None = Field(default=None, max_length=4000)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4000)


class ActionEditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=1000)
    args: dict[str, Any]


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digest: str = Field(min_length=12, max_length=200)
    changes: list[ActionEditIn] = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=4000)


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000, description="the customer's words")
    world_id: str = Field(default="default", min_length=1, max_length=200)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    reason: str = Field(min_length=1, max_length=4000)
    world_id: str = Field(default="default", min_length=1, max_length=200)


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def http_error(exc: ExdeskError) -> HTTPException:
    """The HTTP answer to each kind of refusal; the message says what to do."""
    if isinstance(exc, NotAllowed):
        return _error(403, str(exc))
    if isinstance(exc, NotFound):
        return _error(404, str(exc))
    if isinstance(exc, StaleDigest | ApprovalError):
        return _error(409, str(exc))
    if isinstance(exc, InputError | ToolError):
        return _error(422, str(exc))
    return _error(503, str(exc))


def run_summary(kind: Kind, run: RunResult | None) -> dict[str, Any] | None:
    if run is None:
        return None
    decision = run.decisions.get(kind)
    return {
        "decision": decision.as_json() if decision is not None else None,
        "order_id": run.order_id,
        "order_status": run.order_after.status,
        "holds": [h.kind for h in run.order_after.holds],
    }


class Sweeper:
    """Escalates and expires proposals every ``interval`` seconds while the service runs."""

    def __init__(self, app: Exdesk, interval: float) -> None:
        self._app, self._interval = app, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="exdesk-sweeper", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                review.sweep(self._app)
            except ExdeskError:
                continue  # the next round tries again; every step is idempotent

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def relay_thread(app: Exdesk) -> RelayThread | None:
    """The events relay in the background, when a sink is configured (docs/events.md)."""
    if not app.settings.events_sinks:
        return None
    try:
        relay = Relay.from_settings(app.outbox, app.settings, sinks_for(app.settings))
    except SinkError as exc:
        log.error("events are not relayed: %s", exc)
        return None
    thread = RelayThread(relay, app.settings.events_poll_s)
    thread.start()
    return thread


def desk(request: Request) -> Exdesk:
    """The app's exdesk (one per service process, opened at start)."""
    app: Exdesk = request.app.state.exdesk
    return app


def user(request: Request, app: Annotated[Exdesk, Depends(desk)]) -> User:
    """Who is asking: the bearer token's user (or, for the pages, the login cookie's)."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.cookies.get(TOKEN_COOKIE)
    try:
        return authenticate(app, token)
    except NotAllowed as exc:
        raise HTTPException(
            401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="exdesk"'}
        ) from exc


Desk = Annotated[Exdesk, Depends(desk)]
Who = Annotated[User, Depends(user)]


def create_app(settings: Settings, *, sweep_interval: float | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(api: FastAPI) -> Any:
        desk = Exdesk(settings)
        api.state.exdesk = desk
        try:
            desk.host_case_memory()
        except CaseMemoryUnavailable as exc:  # another process keeps it busy: serve anyway
            log.warning("the case memory is not hosted here: %s", exc)
        sweeper = Sweeper(
            desk, settings.sweep_interval_s if sweep_interval is None else sweep_interval
        )
        sweeper.start()
        relay = relay_thread(desk)
        try:
            yield
        finally:
            if relay is not None:
                relay.stop()
            sweeper.stop()
            desk.close()

    api = FastAPI(
        title="exdesk",
        summary="The exception desk for orders: submit orders, review and approve L2/L3 plans.",
        version="1",
        lifespan=lifespan,
    )

    def guarded(call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except ExdeskError as exc:
            raise http_error(exc) from exc

    @api.get("/health", tags=["service"])
    def health() -> dict[str, bool]:
        """Whether the service is up. Needs no token."""
        return {"ok": True}

    @api.post("/orders", tags=["orders"])
    def submit_order(body: OrderIn, app: Desk, who: Who) -> dict[str, Any]:
        """Run the agent on an order (and its world, once loaded it may be left out). Answers
        with the case's report entry, as one case of `exdesk eval`."""
        guarded(allow, who, "submit")
        if body.world is not None:
            # the order must fit the world it comes with before anything is stored
            guarded(
                Context,
                order=body.order,
                world=body.world,
                policy=app.policy,
                checkers=app.checkers,
            )
            actor = f"person:{who.name}"
            guarded(usecases.load_world, app, body.world_id, body.world, actor=actor)
        result = guarded(
            usecases.handle,
            app,
            body.world_id,
            body.order,
            actor=f"person:{who.name}",
            role=who.role,
        )
        return case_report(body.order.order_id, result)

    @api.get("/proposals", tags=["proposals"])
    def list_proposals(
        app: Desk,
        who: Who,
        status: ProposalStatus | None = ProposalStatus.PENDING,
        kind: Kind | None = None,
        tier: Tier | None = None,
    ) -> list[dict[str, Any]]:
        """Proposals, most urgent first (tier, money at stake, promised delivery)."""
        guarded(allow, who, "read")
        rows = review.queue(
            app,
            status=status,
            kind=kind.value if kind else None,
            tier=tier.value if tier else None,
        )
        return [
            {
                "proposal_id": p.proposal_id,
                "order_id": p.order_id,
                "world_id": p.world_id,
                "kind": p.kind.value,
                "strategy": p.strategy.value,
                "tier": p.tier.value,
                "status": p.status.value,
                "cost_usd": str(p.plan.cost_usd),
                "promised_by": order.fulfillment.promised_by.isoformat() if order else None,
                "created_at": p.created_at.isoformat(),
                "deadline": p.deadline.isoformat() if p.deadline else None,
                "escalated": p.escalated_at is not None,
                "still_needed": usecases.missing(app, p),
            }
            for p, order in rows
        ]

    @api.get("/proposals/{proposal_id}", tags=["proposals"])
    def show_proposal(proposal_id: str, app: Desk, who: Who) -> dict[str, Any]:
        """The plan's actions and arguments, the order now and after (a diff), cost, tier and
        why, rationale, evidence, approvals so far and what is still needed, the deadline, and
        the digest an approval must carry."""
        guarded(allow, who, "read")
        proposal = guarded(app.review.get, proposal_id)
        detail: dict[str, Any] = guarded(review.detail, app, proposal)
        return detail

    @api.get("/proposals/{proposal_id}/explanation", tags=["proposals"])
    def explain_proposal(
        proposal_id: str, request: Request, app: Desk, who: Who, lang: str | None = None
    ) -> dict[str, Any]:
        """The plan in plain language, in your language (``lang``, else Accept-Language),
        marked as the model's when a model wrote it; written once per plan."""
        guarded(allow, who, "read")
        proposal = guarded(app.review.get, proposal_id)
        said = guarded(
            explain.explanation,
            app,
            proposal,
            explain.language(lang or request.headers.get("accept-language")),
        )
        return {
            "proposal_id": proposal_id,
            "plan_digest": proposal.plan_digest,
            **(explain.shown(said) or {}),
        }

    def _vote(
        app: Exdesk, who: User, proposal_id: str, decision: str, body: ApproveIn | RejectIn
    ) -> dict[str, Any]:
        guarded(allow, who, "decide")
        outcome = guarded(
            usecases.vote,
            app,
            proposal_id,
            by=None,
            role=None,
            user=who,
            decision="approve" if decision == "approve" else "reject",
            reason=body.reason,
            digest=getattr(body, "digest", None),
        )
        app.checkpoint()
        proposal = outcome.proposal
        return {
            "proposal_id": proposal_id,
            "counted": outcome.counted,
            "status": app.review.get(proposal_id).status.value,
            "still_needed": outcome.missing,
            "ran": run_summary(proposal.kind, outcome.run),
        }

    @api.post("/proposals/{proposal_id}/approve", tags=["proposals"])
    def approve(proposal_id: str, body: ApproveIn, app: Desk, who: Who) -> dict[str, Any]:
        """Approve the plan you reviewed (its digest). The last approval it needs runs it, once,
        and the answer says what ran. A digest that no longer matches is a 409 that says
        which of plan, order or policy changed."""
        return _vote(app, who, proposal_id, "approve", body)

    @api.post("/proposals/{proposal_id}/reject", tags=["proposals"])
    def reject(proposal_id: str, body: RejectIn, app: Desk, who: Who) -> dict[str, Any]:
        """Reject the plan, with a reason: it does not run; the order stays held for a person."""
        return _vote(app, who, proposal_id, "reject", body)

    @api.post("/proposals/{proposal_id}/edit", tags=["proposals"])
    def edit(proposal_id: str, body: EditIn, app: Desk, who: Who) -> dict[str, Any]:
        """Change some action arguments. The edit is checked and tiered again, gets a new
        digest, and the approvals so far no longer count."""
        proposal = guarded(
            review.edit,
            app,
            proposal_id,
            user=who,
            changes=[review.ActionEdit(c.index, c.args) for c in body.changes],
            digest=body.digest,
            reason=body.reason,
        )
        detail: dict[str, Any] = guarded(review.detail, app, proposal)
        return detail

    @api.post("/orders/{order_id}/resolve", tags=["orders"])
    def resolve(order_id: str, body: ResolveIn, app: Desk, who: Who) -> dict[str, Any]:
        """Lift a hold the customer answered (an address confirmed, a new payment method,
        a duplicate explained), with what they said."""
        guarded(allow, who, "resolve")
        order = guarded(
            usecases.resolve_hold, app, body.world_id, order_id, body.kind, who, body.reason
        )
        return {
            "order_id": order_id,
            "status": order.status,
            "holds": [h.kind for h in order.holds],
        }

    @api.post("/orders/{order_id}/replies", tags=["orders"])
    def reply(order_id: str, body: ReplyIn, app: Desk, who: Who) -> dict[str, Any]:
        """Hand over a customer's reply to an order waiting on them (contract §8.2). A
        confirmation of the address they were asked about writes it and lifts the hold;
        another valid address asks again; anything else goes to a person with the quote."""
        guarded(allow, who, "reply")
        got, new = guarded(replies.receive, app, body.world_id, order_id, body.text, by=who.name)
        app.checkpoint()
        order = app.orders.current(body.world_id, order_id)
        return {
            **got.as_json(),
            "new": new,
            "order_status": order.status if order else None,
            "holds": [h.kind for h in order.holds] if order else [],
        }

    @api.get("/orders/{order_id}/timeline", tags=["orders"])
    def order_timeline(order_id: str, app: Desk, who: Who) -> list[dict[str, Any]]:
        """Everything that happened to an order, from the audit log."""
        guarded(allow, who, "read")
        return review.timeline(app, order_id)

    @api.get("/audit/verify", tags=["audit"])
    def audit_verify(app: Desk, who: Who) -> dict[str, Any]:
        """Walk the audit log: ok, or the first entry that does not verify."""
        guarded(allow, who, "read")
        return app.audit.verify(app.public_key()).model_dump(mode="json")

    @api.exception_handler(ExdeskError)
    def _exdesk_error(request: Request, exc: ExdeskError) -> JSONResponse:
        error = http_error(exc)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    from service.http_people import mount_people  # (it builds on this module's dependencies)
    from service.http_policies import mount_policies

    mount_people(api)
    mount_policies(api)
    mount_pages(api)
    return api
