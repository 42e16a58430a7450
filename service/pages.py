"""The review desk's pages, server-rendered (Jinja2, autoescaped: nothing from an order is
read as HTML) on the same app as the API, behind a token login kept in a cookie.

The cookie is HttpOnly and SameSite=Strict, and every form post must come from this site
(its Origin, when the browser sends one, is checked), so another site cannot post for you.

A page's message comes from a fixed set (``MESSAGES``), named in the query string by its id
(``?msg=vote_recorded``) and filled in from the desk's own state, never with text from the
query string: a link cannot make the desk say anything. An unknown id shows nothing. A refused
form answers with the page itself and the reason, not with a redirect.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from domain.errors import ExdeskError, InputError, NotAllowed
from domain.models import Kind, ProposalStatus, User, VoteDecision
from service import explain, review, usecases
from service.people import CAN, allow, authenticate
from service.wiring import Exdesk

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "exdesk_token"

# Every message a page shows after a redirect: id -> (text, kind). ``{name}`` fills in from
# what the page itself shows (the proposal as it stands), never from the request.
MESSAGES: dict[str, tuple[str, str]] = {
    "token_expired": (
        "Your token is no longer valid (revoked, or the session ended): sign in again.",
        "error",
    ),
    "signed_out": ("You are signed out.", "ok"),
    "vote_recorded": ("Your vote is recorded; still needed: {still_needed}", "ok"),
    "proposal_settled": ("This proposal is now {status}; the order is {order_status}.", "ok"),
    "edited": ("Edited: the plan must be approved anew.", "ok"),
    "proposal_unavailable": (
        "That proposal cannot be shown: it is not on this desk, or its order is gone.",
        "error",
    ),
    "policy_draft_saved": (
        "Saved as policy version {version} ({ref}), a draft: it decides nothing until a "
        "supervisor activates it.",
        "ok",
    ),
    "policy_same_content": ("This policy is stored already, as version {version} ({ref}).", "ok"),
    "policy_activated": (
        "Policy version {version} ({ref}) is in force: the next order is decided under it.",
        "ok",
    ),
    "policy_rolled_back": ("Rolled back: policy version {version} ({ref}) is in force.", "ok"),
    "policy_candidate": ("Policy version {candidate} runs {share}.", "ok"),
    "policy_killed": (
        "Stopped: every order is decided under version {version} ({ref}) again.",
        "ok",
    ),
}


class _Facts(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def page_message(msg: str | None, facts: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """The text and kind of message ``msg`` (an id of ``MESSAGES``), or None for any other."""
    known = MESSAGES.get(msg or "")
    if known is None:
        return None
    text, kind = known
    return text.format_map(_Facts(facts or {})), kind


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

    def login_first(request: Request) -> RedirectResponse:
        expired = "?msg=token_expired" if request.cookies.get(TOKEN_COOKIE) else ""
        response = RedirectResponse(f"/ui/login{expired}", status_code=303)
        if expired:
            response.delete_cookie(TOKEN_COOKIE)
        return response

    def same_site(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
            raise HTTPException(403, "forms are accepted only from this site")

    def render(
        request: Request,
        name: str,
        *,
        facts: dict[str, Any] | None = None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        if "message" not in context:
            shown = page_message(request.query_params.get("msg"), facts)
            context["message"], context["message_kind"] = shown or (None, None)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def back(path: str, msg: str) -> RedirectResponse:
        assert msg in MESSAGES, msg  # (a page says only what MESSAGES holds)
        return RedirectResponse(f"{path}?msg={msg}", status_code=303)

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
        response = RedirectResponse("/ui/login?msg=signed_out", status_code=303)
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
            return login_first(request)
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
                    "detail": p.detail,
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

    def show_proposal(
        request: Request,
        proposal_id: str,
        app: Exdesk,
        who: User,
        *,
        explain_it: str = "",
        refused: ExdeskError | None = None,
    ) -> Response:
        """The proposal page; ``refused``: a form that was refused, said on the page itself
        (with the HTTP status of the refusal)."""
        lang = explain.language(request.headers.get("accept-language"))
        try:
            proposal = app.review.get(proposal_id)
            detail = review.detail(app, proposal, lang=lang)
            explained = (
                explain.shown(explain.explanation(app, proposal, lang)) if explain_it else None
            )
        except ExdeskError:
            return back("/ui/queue", "proposal_unavailable")
        said: dict[str, Any] = {}
        if refused is not None:
            from service.http import http_error  # (service.http mounts these pages)

            said = {"message": str(refused), "message_kind": "error"}
            said["status_code"] = http_error(refused).status_code
        facts = {
            "still_needed": detail["still_needed"] or "nothing",
            "status": detail["status"],
            "order_status": detail["order"]["status"],
        }
        return render(
            request,
            "proposal.html",
            facts=facts,
            user=who,
            nav="queue",
            p=detail,
            explained=explained,
            can_decide=who.role in CAN["decide"],
            **said,
        )

    @api.get("/ui/proposals/{proposal_id}", include_in_schema=False, response_class=HTMLResponse)
    def proposal_page(
        request: Request, proposal_id: str, app: Desk, who: PageUser, explain_it: str = ""
    ) -> Response:
        if who is None:
            return login_first(request)
        return show_proposal(request, proposal_id, app, who, explain_it=explain_it)

    def decided(proposal_id: str, outcome: usecases.VoteOutcome) -> RedirectResponse:
        settled = outcome.run is not None
        return back(
            f"/ui/proposals/{proposal_id}", "proposal_settled" if settled else "vote_recorded"
        )

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
            return login_first(request)
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
            return show_proposal(request, proposal_id, app, who, refused=exc)
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
            return login_first(request)
        try:
            parsed = json.loads(args)
        except ValueError as exc:
            bad = InputError(f"the arguments are not JSON: {exc}")
            return show_proposal(request, proposal_id, app, who, refused=bad)
        if not isinstance(parsed, dict):
            bad = InputError("the arguments must be a JSON object")
            return show_proposal(request, proposal_id, app, who, refused=bad)
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
            return show_proposal(request, proposal_id, app, who, refused=exc)
        return back(f"/ui/proposals/{proposal_id}", "edited")

    @api.get("/ui/orders/{order_id}", include_in_schema=False, response_class=HTMLResponse)
    def order_page(request: Request, order_id: str, app: Desk, who: PageUser) -> Response:
        if who is None:
            return login_first(request)
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
            return login_first(request)
        result = app.audit.verify(app.public_key())
        return render(request, "audit.html", user=who, nav="audit", result=result)

    from service.policy_pages import mount_policy_pages  # (it imports this module)

    mount_policy_pages(api, render=render, login_first=login_first, same_site=same_site)
