"""Page messages come from a fixed set of ids, never from the query string (issue 17): a link
cannot make the desk say anything in its own voice."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.http import create_app
from service.pages import MESSAGES, TOKEN_COOKIE, page_message
from service.people import add_user, revoke_user
from service.settings import Settings
from service.wiring import Exdesk
from tests.service.test_approvers_added import pending

PHISH = "Your token expired, call +1-555-0100"


def flash(html: str) -> str | None:
    start = html.find('<p class="flash')
    return None if start < 0 else html[start : html.index("</p>", start)]


def test_unknown_ids_and_free_text_show_nothing() -> None:
    assert page_message("token_expired") == MESSAGES["token_expired"]
    assert page_message(PHISH) is None and page_message("") is None
    filled = page_message("vote_recorded", {"still_needed": "x"})
    assert filled is not None and filled[0].endswith("still needed: x")
    empty = page_message("vote_recorded")  # nothing to fill in: a dash, never the braces
    assert empty is not None and empty[0].endswith("still needed: —")


def test_the_query_string_cannot_write_the_desks_messages(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    app = Exdesk(settings)
    try:
        sam, sam_token = add_user(app, "sam", "supervisor")
        _, alice_token = add_user(app, "alice", "approver", by=sam)
        _, gone_token = add_user(app, "gone", "approver", by=sam)
        revoke_user(app, "gone", by=sam)
        pid = pending(app)
        digest = app.review.get(pid).plan_digest
    finally:
        app.close()
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        for query in (f"done={PHISH}&kind=error", f"msg={PHISH}", "msg=<b>x</b>", "msg=__class__"):
            page = client.get(f"/ui/login?{query}")
            assert page.status_code == 200 and flash(page.text) is None, query
            assert "555" not in page.text and "&lt;b&gt;" not in page.text
        page = client.get("/ui/login?msg=token_expired&kind=ok")
        assert MESSAGES["token_expired"][0] in (flash(page.text) or "")
        assert 'class="flash error"' in page.text  # the kind is the message's, not the query's

        # a revoked token's cookie: back to the login page, saying why (by id)
        client.cookies.set(TOKEN_COOKIE, gone_token)
        sent = client.get("/ui/queue", follow_redirects=False)
        assert sent.status_code == 303 and sent.headers["location"] == "/ui/login?msg=token_expired"

        client.cookies.set(TOKEN_COOKIE, alice_token)
        forged = client.get(f"/ui/proposals/{pid}?msg=vote_recorded&still_needed={PHISH}")
        assert PHISH not in forged.text  # filled in from the proposal, not the query
        assert "still needed: 2 more approval" in (flash(forged.text) or "")

        stale = client.post(f"/ui/proposals/{pid}/approve", data={"digest": "0" * 24})
        assert stale.status_code == 409  # the page itself, saying why; no redirect
        assert 'class="flash error"' in stale.text and "digest" in (flash(stale.text) or "")

        current = client.get(
            f"/proposals/{pid}", headers={"Authorization": f"Bearer {alice_token}"}
        )
        voted = client.post(
            f"/ui/proposals/{pid}/approve",
            data={"digest": current.json()["digest"]},
            follow_redirects=False,
        )
        assert voted.headers["location"] == f"/ui/proposals/{pid}?msg=vote_recorded"
        shown = client.get(voted.headers["location"])
        assert "still needed: 1 more approval" in (flash(shown.text) or "")

        client.cookies.set(TOKEN_COOKIE, sam_token)
        bad = client.post(
            f"/ui/proposals/{pid}/edit", data={"digest": digest, "index": 0, "args": "{nope"}
        )
        assert bad.status_code == 422 and "not JSON" in (flash(bad.text) or "")
        done = client.post(
            f"/ui/proposals/{pid}/approve", data={"digest": current.json()["digest"]}
        )
        assert "This proposal is now executed" in (flash(done.text) or ""), flash(done.text)
