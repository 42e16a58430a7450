"""The policy page of the review desk: the policy in force as a form, what a change would
change (field by field, and on the decisions of the last N days), its problems beside each
field.

``GET /ui/policy`` shows the active version. ``POST /ui/policy/review`` takes the form back:
the changed text is validated as a policy file is, the differences from the active version are
listed, and when the text is a policy the what-if replay runs over the recorded decisions
(``service.policy_whatif``). The ranking's up/down buttons post the form with ``move`` (so they
work with the keyboard and without script; with script they move the entry in place, and the
entries can be dragged).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from domain.errors import ExdeskError
from domain.models import Strategy, User
from domain.policy import DEFAULT_POLICY_NAME, Policy
from service import policy_form as pf
from service.pages import Desk, PageUser
from service.policy_whatif import DEFAULT_DAYS, MAX_DAYS, Summary, whatif_on_history
from service.wiring import Exdesk

EDIT_ROLES = frozenset({"approver", "supervisor"})  # who drafts a policy change

Render = Callable[..., HTMLResponse]


def active_text(app: Exdesk) -> tuple[Policy, str]:
    """The policy in force and its text: the policy file this process was started with, or
    the shipped default."""
    path = app.settings.policy_file
    if path is not None:
        return app.policy, path.read_text(encoding="utf-8")
    text = resources.files("domain").joinpath(DEFAULT_POLICY_NAME).read_text(encoding="utf-8")
    return app.policy, text


async def _form(request: Request) -> pf.Form:
    data = await request.form()
    return pf.Form([(k, v) for k, v in data.multi_items() if isinstance(v, str)])


FormData = Annotated[pf.Form, Depends(_form)]


def _days(form: pf.Form) -> int:
    try:
        days = int(form.one("days") or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


def whatif(app: Exdesk, policy: Policy, days: int) -> Summary:
    return whatif_on_history(app.audit.entries(), app.audit.clear_values, policy, days=days)


def mount_policy_pages(
    api: FastAPI,
    *,
    render: Render,
    login_first: Callable[[Request], RedirectResponse],
    same_site: Callable[[Request], None],
) -> None:
    def page(
        request: Request,
        app: Exdesk,
        who: User,
        *,
        fields: dict[str, Any],
        checked: pf.Checked | None = None,
        changes: list[tuple[str, str, str]] | None = None,
        summary: Summary | None = None,
        days: int = DEFAULT_DAYS,
        status_code: int = 200,
    ) -> HTMLResponse:
        active, _ = active_text(app)
        return render(
            request,
            "policy.html",
            user=who,
            nav="policy",
            active=active,
            f=fields,
            checked=checked,
            problems=checked.problems if checked else [],
            errs=checked.for_field if checked else (lambda name: []),
            changes=changes,
            summary=summary,
            days=days,
            can_edit=who.role in EDIT_ROLES,
            strategies=[s.value for s in Strategy],
            tiers=pf.TIERS,
            roles=sorted(pf.VOTING_ROLES),
            countries=pf.countries_by_name(),
            status_code=status_code,
        )

    @api.get("/ui/policy", include_in_schema=False, response_class=HTMLResponse)
    def policy_page(request: Request, app: Desk, who: PageUser) -> Response:
        if who is None:
            return login_first(request)
        active, _ = active_text(app)
        return page(request, app, who, fields=pf.fields_of(active))

    @api.post("/ui/policy/review", include_in_schema=False, response_class=HTMLResponse)
    def review_policy(request: Request, app: Desk, who: PageUser, form: FormData) -> Response:
        same_site(request)
        if who is None:
            return login_first(request)
        if who.role not in EDIT_ROLES:
            raise HTTPException(
                403, f"{who.name} is {who.role}; approvers and supervisors change the policy"
            )
        active, text = active_text(app)
        how = form.one("move")
        if how:  # a ranking entry moved with its button: the form again, nothing checked
            form = pf.move(form, how)
            return page(request, app, who, fields=pf.fields_from_form(active, form))
        days = _days(form)
        checked = pf.check(pf.apply_form(text, active, form))
        fields = pf.fields_from_form(active, form)
        if checked.policy is None:
            return page(
                request, app, who, fields=fields, checked=checked, days=days, status_code=422
            )
        changes = pf.diff(active, checked.policy)
        summary = None
        if changes:
            try:
                summary = whatif(app, checked.policy, days)
            except ExdeskError as exc:
                checked.problems.append(("", f"the what-if replay failed: {exc}"))
        return page(
            request,
            app,
            who,
            fields=fields,
            checked=checked,
            changes=changes,
            summary=summary,
            days=days,
        )
