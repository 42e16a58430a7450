"""The review desk's pages, server-rendered (Jinja2, autoescaped: nothing from an order is
read as HTML) on the same app as the API, behind a token login kept in a cookie.

The cookie is HttpOnly and SameSite=Strict, and every form post must come from this site
(its Origin, when the browser sends one, is checked), so another site cannot post for you.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from domain.errors import ExdeskError, NotAllowed
from domain.models import Kind, ProposalStatus, User, VoteDecision
from service import explain, review, usecases
from service.people import CAN, allow, authenticate
from service.wiring import Exdesk

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "exdesk_token"


def _ago(moment: datetime, now: datetime) -> str:
    seconds = (now - moment).total_seconds()
    return _span(abs(seconds)) + (" ago" if seconds >= 0 else " from now")


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _desk(request: Request) -> Exdesk:
    app: Exdesk = request.app.state.exdesk
    return app


def _page_user(request: Request, app: Annotated[Exdesk, Depends(_desk)]) -> User | None:
    """The signed-in user (the login cookie), or None: the page sends them to log in."""
    try:
        return authenticate(app, request.cookies.get(TOKEN_COOKIE))
    except NotAllowed:
        return None


Desk = Annotated[Exdesk, Depends(_desk)]
PageUser = Annotated[User | None, Depends(_page_user)]


def _still_held(app: Exdesk, world_id: str, order_id: str) -> bool:
    order = app.orders.current(world_id, order_id)
    return order is not None and bool(order.holds)


def mount_pages(api: FastAPI) -> None:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    # JSON as readable text (Chinese as Chinese); autoescaping then makes it safe HTML.
    templates.env.filters["json"] = lambda value, indent=None: json.dumps(
        value, ensure_ascii=False, indent=indent
    )
    api.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def login_first() -> RedirectResponse:
        return RedirectResponse("/ui/login", status_code=303)

    def same_site(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
            raise HTTPException(403, "forms are accepted only from this site")

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        context.setdefault("message", request.query_params.get("done"))
        context.setdefault("message_kind", request.query_params.get("kind"))
        return templates.TemplateResponse(request, name, context)

    def back(path: str, message: str, kind: str = "ok") -> RedirectResponse:
        return RedirectResponse(f"{path}?done={quote(message)}&kind={kind}", status_code=303)

    @api.get("/", include_in_schema=False)
    @api.get("/ui", include_in_schema=False)
    @api.get("/ui/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/queue", status_code=303)

    @api.get("/ui/login", include_in_schema=False, response_class=HTMLResponse)
    def login_page(request: Request) -> HTMLResponse:
        return render(request, "login.html", user=None)

    @api.post("/ui/login", include_in_schema=False)
    def login(request: Request, app: Desk, token: Annotated[str, Form()]) -> Response:
        same_site(request)
        try:
            authenticate(app, token.strip())
        except NotAllowed:
            return render(
                request,
                "login.html",
                user=None,
                message="That token is not valid (or was revoked).",
                message_kind="error",
            )
        response = RedirectResponse("/ui/queue", status_code=303)
        response.set_cookie(
            TOKEN_COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=12 * 3600,
        )
        return response

    @api.post("/ui/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        same_site(request)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(TOKEN_COOKIE)
        return response

    @api.get("/ui/queue", include_in_schema=False, response_class=HTMLResponse)
    def queue_page(
        request: Request,
        app: Desk,
        who: PageUser,
        kind: str = "",
        tier: str = "",
        status: str = "pending",
    ) -> Response:
        if who is None:
            return login_first()
        wanted = ProposalStatus(status) if status in ProposalStatus._value2member_map_ else None
        now = datetime.now(UTC)
        rows = []
        for p, order in review.queue(app, status=wanted, kind=kind or None, tier=tier or None):
            deadline = p.deadline
            rows.append(
                {
                    "proposal_id": p.proposal_id,
                    "order_id": p.order_id,
                    "kind": p.kind.value,
                    "strategy": p.strategy.value,
                    "tier": p.tier.value,
                    "cost_usd": p.plan.cost_usd,
                    "deadline": deadline.isoformat() if deadline else None,
                    "deadline_in": _ago(deadline, now) if deadline else None,
                    "overdue": bool(deadline and deadline < now),
                    "escalated": p.escalated_at is not None,
                    "age": _span((now - p.created_at.astimezone(UTC)).total_seconds()),
                    "still_needed": usecases.missing(app, p),
                    "promised_by": order.fulfillment.promised_by if order else None,
                }
            )
        return render(
            request,
            "queue.html",
            user=who,
            nav="queue",
            rows=rows,
            kinds=[k.value for k in Kind],
            statuses=[s.value for s in ProposalStatus],
            kind=kind,
            tier=tier,
            status=status,
            replies=[
                r for r in app.replies.for_people() if _still_held(app, r.world_id, r.order_id)
            ],
        )

    @api.get("/ui/proposals/{proposal_id}", include_in_schema=False, response_class=HTMLResponse)
    def proposal_page(
        request: Request, proposal_id: str, app: Desk, who: PageUser, explain_it: str = ""
    ) -> Response:
        if who is None:
            return login_first()
        lang = explain.language(request.headers.get("accept-language"))
        try:
            proposal = app.review.get(proposal_id)
            detail = review.detail(app, proposal, lang=lang)
            explained = (
                explain.shown(explain.explanation(app, proposal, lang)) if explain_it else None
            )
        except ExdeskError as exc:
            return back("/ui/queue", str(exc), "error")
        return render(
            request,
            "proposal.html",
            user=who,
            nav="queue",
            p=detail,
            explained=explained,
            can_decide=who.role in CAN["decide"],
        )

    def decided(proposal_id: str, outcome: usecases.VoteOutcome) -> RedirectResponse:
        if outcome.run is not None:
            decision = outcome.run.decisions.get(outcome.proposal.kind)
            status = decision.status.value if decision else "settled"
            detail = f": {decision.detail}" if decision and decision.detail else ""
            after = outcome.run.order_after.status
            message = f"{proposal_id} {status}{detail}; the order is now {after}"
        else:
            message = f"Your vote is recorded; still needed: {outcome.missing}"
        return back(f"/ui/proposals/{proposal_id}", message)

    def vote_form(
        request: Request,
        proposal_id: str,
        app: Desk,
        who: PageUser,
        decision: VoteDecision,
        reason: str,
        digest: str | None = None,
    ) -> Response:
        """An approval or a rejection from a form, as the person logged in."""
        same_site(request)
        if who is None:
            return login_first()
        try:
            allow(who, "decide")
            outcome = usecases.vote(
                app,
                proposal_id,
                by=None,
                role=None,
                user=who,
                decision=decision,
                reason=reason.strip() or None,
                digest=digest,
            )
            app.checkpoint()
        except ExdeskError as exc:
            return back(f"/ui/proposals/{proposal_id}", str(exc), "error")
        return decided(proposal_id, outcome)

    @api.post("/ui/proposals/{proposal_id}/approve", include_in_schema=False)
    def approve_form(
        request: Request,
        proposal_id: str,
        app: Desk,
        who: PageUser,
        digest: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        return vote_form(request, proposal_id, app, who, "approve", reason, digest)

    @api.post("/ui/proposals/{proposal_id}/reject", include_in_schema=False)
    def reject_form(
        request: Request,
        proposal_id: str,
        app: Desk,
        who: PageUser,
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        return vote_form(request, proposal_id, app, who, "reject", reason)

    @api.post("/ui/proposals/{proposal_id}/edit", include_in_schema=False)
    def edit_form(
        request: Request,
        proposal_id: str,
        app: Desk,
        who: PageUser,
        digest: Annotated[str, Form()],
        index: Annotated[int, Form()],
        args: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        same_site(request)
        if who is None:
            return login_first()
        try:
            parsed = json.loads(args)
        except ValueError as exc:
            page = f"/ui/proposals/{proposal_id}"
            return back(page, f"the arguments are not JSON: {exc}", "error")
        if not isinstance(parsed, dict):
            page = f"/ui/proposals/{proposal_id}"
            return back(page, "the arguments must be a JSON object", "error")
        try:
            review.edit(
                app,
                proposal_id,
                user=who,
                changes=[review.ActionEdit(index, parsed)],
                digest=digest,
                reason=reason.strip() or None,
            )
        except ExdeskError as exc:
            return back(f"/ui/proposals/{proposal_id}", str(exc), "error")
        return back(f"/ui/proposals/{proposal_id}", "Edited: the plan must be approved anew")

    @api.get("/ui/orders/{order_id}", include_in_schema=False, response_class=HTMLResponse)
    def order_page(request: Request, order_id: str, app: Desk, who: PageUser) -> Response:
        if who is None:
            return login_first()
        return render(
            request,
            "timeline.html",
            user=who,
            order_id=order_id,
            entries=review.timeline(app, order_id),
        )

    @api.get("/ui/audit", include_in_schema=False, response_class=HTMLResponse)
    def audit_page(request: Request, app: Desk, who: PageUser) -> Response:
        if who is None:
            return login_first()
        result = app.audit.verify(app.public_key())
        return render(request, "audit.html", user=who, nav="audit", result=result)
