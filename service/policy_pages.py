"""The policy page of the review desk: the version in force as a form, what a change would
change (field by field, and on the decisions of the last N days), its problems beside each
field, drafts saved as versions (``service.policies``), and a supervisor putting one in force.

``GET /ui/policy`` shows the active version and the versions stored. ``POST /ui/policy/review``
takes the form back: the changed text is validated as a policy file is (contract §4's floors
included), the differences from the active version are listed, and when the text is a policy
the what-if replay runs over the recorded decisions (``service.policy_whatif``).
``POST /ui/policy/drafts`` does the same and stores the text as a version (a draft: it decides
nothing), then shows the version's page: its differences, the what-if summary, and for a
supervisor the button that activates it. The ranking's up/down buttons post the form with
``move`` (so they work with the keyboard and without script; with script they move the entry
in place, and the entries can be dragged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from domain.errors import ExdeskError, InputError, NotAllowed
from domain.models import Strategy, User
from domain.policy import Policy
from service import policies
from service import policy_form as pf
from service.pages import Desk, PageUser
from service.people import CAN, allow
from service.policy_compare import compare
from service.policy_whatif import DEFAULT_DAYS, MAX_DAYS, Summary, whatif_on_history
from service.wiring import Exdesk
from store.policies import PolicyState, PolicyVersion

Render = Callable[..., HTMLResponse]
DRAFT = "import policies"  # who saves a draft (service.people.CAN)
ACTIVATE = "change the policy in force"  # who activates, rolls back
VERSIONS_SHOWN = 30
PAGE_DECISIONS = 2000  # replayed for a page, most recent first (about 7 ms each)


def active_version(app: Exdesk) -> tuple[PolicyVersion, Policy]:
    """The version in force (the store's, as of now) and its policy."""
    app.refresh_policy()
    version = policies.resolve(app, None)
    return version, app.policies.version_policy(version.id)


def base_version(app: Exdesk, given: str | None) -> tuple[PolicyVersion, Policy]:
    """The version a form starts from (``base``: a version number), else the one in force."""
    if not given:
        return active_version(app)
    try:
        number = int(given)
        return app.policy_store.get(number), app.policies.version_policy(number)
    except (ValueError, ExdeskError):
        raise HTTPException(404, f"no policy version {given!r} to start from") from None


async def _form(request: Request) -> pf.Form:
    data = await request.form()
    return pf.Form([(k, v) for k, v in data.multi_items() if isinstance(v, str)])


FormData = Annotated[pf.Form, Depends(_form)]


def _days(value: str | None) -> int:
    try:
        days = int(value or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


def whatif(app: Exdesk, policy: Policy, days: int) -> Summary:
    """The what-if summary the pages show: of the most recent ``PAGE_DECISIONS`` decisions
    in the window (the CLI replays them all)."""
    return whatif_on_history(
        app.audit.entries(), app.audit.clear_values, policy, days=days, limit=PAGE_DECISIONS
    )


def _share(state: PolicyState | None) -> str:
    if state is None or state.candidate is None:
        return "no candidate"
    if state.mode == "rollout":
        return f"for {state.percent}% of the orders"
    return "in shadow (its decisions recorded and compared, never executed)"


def _refusal(exc: ExdeskError) -> tuple[str, int]:
    from service.http import http_error  # (service.http mounts these pages)

    return str(exc), http_error(exc).status_code


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
        base: tuple[PolicyVersion, Policy] | None = None,
        fields: dict[str, Any] | None = None,
        checked: pf.Checked | None = None,
        changes: list[tuple[str, str, str]] | None = None,
        summary: Summary | None = None,
        days: int = DEFAULT_DAYS,
        comment: str = "",
        status_code: int = 200,
        **said: Any,
    ) -> HTMLResponse:
        active, _ = active_version(app)
        start, policy = base or (active, _)
        state = app.policy_store.state()
        listed = [
            policies.describe(app, v, state)
            for v in reversed(app.policy_store.list()[-VERSIONS_SHOWN:])
            if state is not None
        ]
        return render(
            request,
            "policy.html",
            facts={
                "version": active.id,
                "ref": active.ref,
                "candidate": state.candidate if state else None,
                "share": _share(state),
            },
            user=who,
            nav="policy",
            active=active,
            base=start,
            pinned=app.settings.policy_file if app.policies.pinned else None,
            state=policies.state_json(state) if state is not None else None,
            rebinds=policies.change_entry(app, state) if state is not None else None,
            versions=listed,
            f=fields if fields is not None else pf.fields_of(policy),
            checked=checked,
            problems=checked.problems if checked else [],
            errs=checked.for_field if checked else (lambda name: []),
            changes=changes,
            summary=summary,
            days=days,
            comment=comment,
            can_edit=who.role in CAN[DRAFT],
            can_activate=who.role in CAN[ACTIVATE],
            strategies=[s.value for s in Strategy],
            tiers=pf.TIERS,
            roles=sorted(pf.VOTING_ROLES),
            countries=pf.countries_by_name(),
            status_code=status_code,
            **said,
        )

    def may(who: User, what: str) -> None:
        try:
            allow(who, what)
        except NotAllowed as exc:
            raise HTTPException(403, str(exc)) from None

    @api.get("/ui/policy", include_in_schema=False, response_class=HTMLResponse)
    def policy_page(request: Request, app: Desk, who: PageUser, start: str = "") -> Response:
        """The form of the version in force, or of version ``start`` (``?start=V``)."""
        if who is None:
            return login_first(request)
        return page(request, app, who, base=base_version(app, start))

    def checked_form(
        request: Request, app: Exdesk, who: User, form: pf.Form
    ) -> tuple[pf.Checked | None, Response | None]:
        """The form as a checked text, or the page to answer with (a move, or problems). The
        form's values are written into the text of the version it started from (``base``)."""
        base = base_version(app, form.one("base"))
        start, policy = base
        comment = form.one("comment") or ""
        how = form.one("move")
        if how:  # a ranking entry moved with its button: the form again, nothing checked
            form = pf.move(form, how)
            fields = pf.fields_from_form(policy, form)
            return None, page(request, app, who, base=base, fields=fields, comment=comment)
        days = _days(form.one("days"))
        checked = pf.check(pf.apply_form(start.content, policy, form))
        if checked.policy is None:
            fields = pf.fields_from_form(policy, form)
            answer = page(
                request,
                app,
                who,
                base=base,
                fields=fields,
                checked=checked,
                days=days,
                comment=comment,
                status_code=422,
            )
            return None, answer
        return checked, None

    @api.post("/ui/policy/review", include_in_schema=False, response_class=HTMLResponse)
    def review_policy(request: Request, app: Desk, who: PageUser, form: FormData) -> Response:
        same_site(request)
        if who is None:
            return login_first(request)
        may(who, DRAFT)
        checked, answer = checked_form(request, app, who, form)
        if answer is not None:
            return answer
        assert checked is not None and checked.policy is not None
        _, active = active_version(app)
        base = base_version(app, form.one("base"))
        days = _days(form.one("days"))
        changes = pf.diff(active, checked.policy)
        summary = whatif(app, checked.policy, days) if changes else None
        return page(
            request,
            app,
            who,
            base=base,
            fields=pf.fields_from_form(base[1], form),
            checked=checked,
            changes=changes,
            summary=summary,
            days=days,
            comment=form.one("comment") or "",
        )

    @api.post("/ui/policy/drafts", include_in_schema=False, response_class=HTMLResponse)
    def save_draft(request: Request, app: Desk, who: PageUser, form: FormData) -> Response:
        same_site(request)
        if who is None:
            return login_first(request)
        may(who, DRAFT)
        checked, answer = checked_form(request, app, who, form)
        if answer is not None:
            return answer
        assert checked is not None
        base = base_version(app, form.one("base"))
        try:
            imported = policies.import_policy(
                app, checked.text, pf.FORM_SOURCE, by=who, comment=form.one("comment")
            )
        except ExdeskError as exc:
            message, status = _refusal(exc)
            return page(
                request,
                app,
                who,
                base=base,
                fields=pf.fields_from_form(base[1], form),
                message=message,
                message_kind="error",
                status_code=status,
            )
        msg = "policy_draft_saved" if imported.new else "policy_same_content"
        days = _days(form.one("days"))
        return RedirectResponse(
            f"/ui/policy/versions/{imported.version.id}?days={days}&msg={msg}", status_code=303
        )

    def version_page(
        request: Request,
        app: Exdesk,
        who: User,
        number: int,
        *,
        days: int,
        refused: ExdeskError | None = None,
    ) -> Response:
        try:
            version = app.policy_store.get(number)
            policy = app.policies.version_policy(number)
        except ExdeskError:
            raise HTTPException(404, f"no policy version {number}") from None
        active, active_policy = active_version(app)
        state = app.policy_store.state()
        assert state is not None
        changes = pf.diff(active_policy, policy)
        summary = whatif(app, policy, days) if changes else None
        tried = any(s.candidate == number for s in app.policy_store.history())
        compared = compare(app, version, days=days) if tried else None
        said: dict[str, Any] = {}
        if refused is not None:
            message, status = _refusal(refused)
            said = {"message": message, "message_kind": "error", "status_code": status}
        return render(
            request,
            "policy_version.html",
            facts={"version": version.id, "ref": version.ref},
            user=who,
            nav="policy",
            v=policies.describe(app, version, state),
            active=active,
            changes=changes,
            summary=summary,
            compared=compared,
            days=days,
            can_activate=who.role in CAN[ACTIVATE] and version.id != active.id,
            **said,
        )

    @api.get("/ui/policy/versions/{number}", include_in_schema=False, response_class=HTMLResponse)
    def policy_version_page(
        request: Request, number: int, app: Desk, who: PageUser, days: str = ""
    ) -> Response:
        if who is None:
            return login_first(request)
        return version_page(request, app, who, number, days=_days(days))

    @api.post("/ui/policy/versions/{number}/activate", include_in_schema=False)
    def activate_version(
        request: Request, number: int, app: Desk, who: PageUser, form: FormData
    ) -> Response:
        same_site(request)
        if who is None:
            return login_first(request)
        try:
            allow(who, ACTIVATE)
            policies.activate(app, number, by=who, comment=form.one("comment") or None)
        except ExdeskError as exc:
            days = _days(form.one("days"))
            return version_page(request, app, who, number, days=days, refused=exc)
        return RedirectResponse("/ui/policy?msg=policy_activated", status_code=303)

    @api.post("/ui/policy/rollback", include_in_schema=False)
    def rollback_policy(request: Request, app: Desk, who: PageUser, form: FormData) -> Response:
        same_site(request)
        if who is None:
            return login_first(request)
        try:
            allow(who, ACTIVATE)
            policies.rollback(app, by=who, comment=form.one("comment") or None)
        except ExdeskError as exc:
            message, status = _refusal(exc)
            return page(
                request, app, who, message=message, message_kind="error", status_code=status
            )
        return RedirectResponse("/ui/policy?msg=policy_rolled_back", status_code=303)

    @api.post("/ui/policy/versions/{number}/candidate", include_in_schema=False)
    def candidate_version(
        request: Request, number: int, app: Desk, who: PageUser, form: FormData
    ) -> Response:
        """Run version ``number`` in shadow, or for a share of the orders (a supervisor)."""
        same_site(request)
        if who is None:
            return login_first(request)
        mode = form.one("mode") or ""
        try:
            allow(who, ACTIVATE)
            percent = None
            if mode.startswith("rollout-"):
                try:
                    percent = int(mode.removeprefix("rollout-"))
                except ValueError:
                    raise InputError(f"percent: {policies.ROLLOUT_STEPS}") from None
            elif mode != "shadow":
                raise InputError("mode: choose shadow or a rollout share")
            policies.set_candidate(
                app,
                number,
                mode="shadow" if percent is None else "rollout",
                percent=percent,
                by=who,
                comment=form.one("comment") or None,
            )
        except ExdeskError as exc:
            days = _days(form.one("days"))
            return version_page(request, app, who, number, days=days, refused=exc)
        return RedirectResponse("/ui/policy?msg=policy_candidate", status_code=303)

    @api.post("/ui/policy/kill", include_in_schema=False)
    def kill_candidate(request: Request, app: Desk, who: PageUser, form: FormData) -> Response:
        """The kill switch: every order back to the version in force at once."""
        same_site(request)
        if who is None:
            return login_first(request)
        try:
            allow(who, ACTIVATE)
            policies.kill(app, by=who, comment=form.one("comment") or None)
        except ExdeskError as exc:
            message, status = _refusal(exc)
            return page(
                request, app, who, message=message, message_kind="error", status_code=status
            )
        return RedirectResponse("/ui/policy?msg=policy_killed", status_code=303)
