"""The policy page (service/policy_pages.py) over HTTP: the form as a browser submits it (every
field the page renders, collected from its HTML), reviewed: what changes, the what-if summary,
problems next to the field they name, escaping, roles, the move buttons."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from service.audit_access import existing_log
from service.http import create_app
from service.pages import TOKEN_COOKIE
from service.policy_whatif import whatif_on_history
from service.settings import Settings
from service.wiring import Exdesk, load_policy
from tests.factories import add_people
from tests.service.policy_support import record_history

HOSTILE = "<script>alert('policy')</script>"


class _FormFields(HTMLParser):
    """The name/value pairs a browser submits for the page's form, as rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[str, str]] = []
        self._select: str | None = None
        self._option: dict[str, str | None] | None = None
        self._first: str | None = None
        self._chosen: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name:
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.items.append((name, a.get("value") or "on"))
            else:
                self.items.append((name, a.get("value") or ""))
        elif tag == "select" and name:
            self._select, self._first, self._chosen = name, None, None
        elif tag == "option" and self._select:
            self._option = a

    def handle_data(self, data: str) -> None:
        if self._option is not None and self._select:
            value = self._option.get("value")
            value = data if value is None else value
            self._first = value if self._first is None else self._first
            if "selected" in self._option:
                self._chosen = value
            self._option = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select:
            chosen = self._chosen if self._chosen is not None else self._first
            self.items.append((self._select, chosen or ""))
            self._select = None


def form_of(page: str) -> list[tuple[str, str]]:
    parser = _FormFields()
    parser.feed(page[page.index('id="policy-form"') :])
    return parser.items


def changed(items: list[tuple[str, str]], **values: str) -> list[tuple[str, str]]:
    names = {k.replace("__", "."): v for k, v in values.items()}
    return [(k, names.get(k, v)) for k, v in items]


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def field_errors(page: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, message in re.findall(r'data-field="([^"]*)">([^<]*)</p>', page):
        out.setdefault(html.unescape(name), []).append(html.unescape(message))
    return out


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, str]]:
    data = tmp_path_factory.mktemp("policy-page")
    record_history(data)
    settings = Settings(data_dir=data)
    app = Exdesk(settings)
    try:
        tokens = add_people(app, {"sam": "supervisor", "alice": "approver", "audrey": "auditor"})
    finally:
        app.close()
    return settings, tokens


@pytest.fixture
def client(desk: tuple[Settings, dict[str, str]]) -> Iterator[TestClient]:
    settings, tokens = desk
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        client.cookies.set(TOKEN_COOKIE, tokens["alice"])
        yield client


def review(client: TestClient, items: list[tuple[str, str]], **headers: str) -> str:
    answer = client.post(
        "/ui/policy/review",
        content=urlencode(items),
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
    )
    assert answer.status_code in (200, 422), answer.text[:500]
    return answer.text


def test_the_active_policy_as_a_form_comes_back_unchanged(client: TestClient) -> None:
    page = client.get("/ui/policy")
    assert page.status_code == 200
    items = form_of(page.text)
    names = {k for k, _ in items}
    assert {"limits.l1_usd", "tiers.cancel_order", "customs.embargoed", "ranking.stockout"} <= names
    assert {"approvals.L2.approvals", "deadlines.L3_hours", "customs.required_by_hs.hs_prefix"} <= (
        names
    )
    assert "Korea, Democratic People&#39;s Republic of" in page.text  # names beside the codes
    answer = review(client, items)
    assert 'id="no-change"' in answer and 'id="problems"' not in answer


def test_a_lower_l1_limit_is_reviewed_with_its_what_if_summary(
    client: TestClient, desk: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    items = changed(form_of(client.get("/ui/policy").text), limits__l1_usd="5", version="low")
    page = review(client, items)
    diff = text_of(
        page[page.index('id="policy-diff"') : page.index("</table>", page.index("policy-diff"))]
    )
    assert "limits.l1_usd 50 5" in diff and "version 2026-12-06.1 low" in diff

    # the summary is what `exdesk policy whatif` gives for the same text
    policy_file = tmp_path / "low.toml"
    text = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()
    policy_file.write_text(
        text.replace("l1_usd = 50", "l1_usd = 5").replace('"2026-12-06.1"', '"low"'),
        encoding="utf-8",
    )
    with existing_log(desk[0]) as opened:
        summary = whatif_on_history(
            opened.log.entries(), opened.log.clear_values, load_policy(policy_file)
        )
    assert summary.changed == 3 and summary.approvals_added == 6
    shown = dict(re.findall(r'id="whatif-([a-z0-9-]+)">([^<]*)<', page))
    assert shown["decisions"] == str(summary.decisions)
    assert shown["changed"] == str(summary.changed)
    assert shown["tier"] == str(summary.tier_changed)
    assert shown["approvals"] == str(summary.approvals_added)
    assert shown["l1-l2"] == f"{summary.moved_usd('L1→L2')} USD"
    listed = text_of(page[page.index('id="whatif-orders"') :])
    for decision in summary.decisions_changed:
        assert decision.order_id in listed


def test_problems_are_named_beside_their_fields_and_the_values_stay(client: TestClient) -> None:
    items = changed(form_of(client.get("/ui/policy").text), limits__l1_usd="-3")
    items = [(k, v) for k, v in items if not (k == "approvals.L3.roles" and v == "supervisor")]
    items += [("customs.embargoed", "XX")]
    answer = client.post(
        "/ui/policy/review",
        content=urlencode(items),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 422
    errors = field_errors(answer.text)
    assert set(errors) == {"limits.l1_usd", "customs.embargoed", "approvals.L3.roles"}
    assert "greater than or equal to 0" in errors["limits.l1_usd"][0]
    assert "'XX' is not an assigned ISO 3166-1 alpha-2 code" in errors["customs.embargoed"][0]
    assert "L3 needs a supervisor" in errors["approvals.L3.roles"][0]
    assert re.search(
        r'name="limits.l1_usd" id="l1_usd" value="-3"[^>]*aria-invalid="true"', answer.text
    )
    assert 'value="XX" checked' in answer.text  # what was typed stays, to correct
    assert 'id="whatif"' not in answer.text  # nothing is tested until it is a policy


def test_untrusted_text_is_escaped(client: TestClient) -> None:
    items = changed(form_of(client.get("/ui/policy").text), version=HOSTILE)
    items += [
        ("customs.required_by_hs.hs_prefix", "9303"),
        ("customs.required_by_hs.document", HOSTILE),
    ]
    page = review(client, items)
    assert HOSTILE not in page
    assert html.escape(HOSTILE, quote=True) in page or "&lt;script&gt;" in page
    assert "9303: " in text_of(page)


def test_the_move_buttons_reorder_a_ranking_without_script(client: TestClient) -> None:
    items = form_of(client.get("/ui/policy").text)
    before = [v for k, v in items if k == "ranking.carrier_delay"]
    moved = review(client, [*items, ("move", "ranking.carrier_delay:0:down")])
    after = [v for k, v in form_of(moved) if k == "ranking.carrier_delay"]
    assert after == [before[1], before[0], *before[2:]]
    assert 'id="review"' not in moved  # moving is not reviewing
    page = review(client, form_of(moved))
    assert "ranking.carrier_delay" in text_of(page[page.index('id="policy-diff"') :])
    # nonsense moves change nothing
    for how in ("ranking.carrier_delay:0:up", "ranking.carrier_delay:99:down", "limits:0:up", "x"):
        again = review(client, [*items, ("move", how)])
        assert [v for k, v in form_of(again) if k == "ranking.carrier_delay"] == before


def test_a_country_added_by_name_is_reviewed(client: TestClient) -> None:
    items = form_of(client.get("/ui/policy").text)
    items = [(k, "RU" if k == "customs.embargoed" and v == "" else v) for k, v in items]
    page = review(client, items)
    assert "RU (Russian Federation)" in text_of(page[page.index('id="policy-diff"') :])


def test_roles_sign_in_and_origin(
    client: TestClient, desk: tuple[Settings, dict[str, str]]
) -> None:
    items = form_of(client.get("/ui/policy").text)
    client.cookies.set(TOKEN_COOKIE, desk[1]["audrey"])
    page = client.get("/ui/policy").text
    assert "<fieldset disabled>" in page and 'id="review-button"' not in page
    answer = client.post(
        "/ui/policy/review",
        content=urlencode(items),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 403
    client.cookies.set(TOKEN_COOKIE, desk[1]["alice"])
    answer = client.post(
        "/ui/policy/review",
        content=urlencode(items),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "origin": "https://evil.example",
        },
    )
    assert answer.status_code == 403
    client.cookies.clear()
    answer = client.get("/ui/policy", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


def post(client: TestClient, url: str, items: list[tuple[str, str]]) -> Response:
    return client.post(
        url,
        content=urlencode(items),
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def test_a_policy_weaker_than_the_contract_is_refused_beside_its_field(
    client: TestClient,
) -> None:
    items = changed(form_of(client.get("/ui/policy").text), limits__l1_usd="60")
    items = [(k, v) for k, v in items if not (k == "customs.embargoed" and v == "CU")]
    answer = post(client, "/ui/policy/drafts", items)
    assert answer.status_code == 422
    errors = field_errors(answer.text)
    assert "above the contract's L1 limit of 50" in errors["limits.l1_usd"][0]
    assert "CU is not embargoed" in errors["customs.embargoed"][0]


def test_save_a_draft_see_it_tested_and_a_supervisor_activates_it(
    desk: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, tokens = desk
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        client.cookies.set(TOKEN_COOKIE, tokens["alice"])
        first = client.get("/ui/policy").text
        active_before = re.search(r'id="active-ref">version (\d+)', first)
        assert active_before is not None
        items = changed(form_of(first), limits__l1_usd="5", version="draft-5")
        items += [("comment", "fewer L1 plans")]  # (a textarea: not collected above)
        saved = post(client, "/ui/policy/drafts", items)
        assert saved.status_code == 303, saved.text[:300]
        where = saved.headers["location"]
        number = int(re.search(r"/ui/policy/versions/(\d+)\?", where).group(1))  # type: ignore[union-attr]
        page = client.get(where).text
        assert f"Saved as policy version {number}" in page and "a draft" in page
        assert 'id="whatif"' in page and 'id="activate"' not in page  # approvers do not activate
        assert "fewer L1 plans" in page
        shown = dict(re.findall(r'id="whatif-([a-z0-9-]+)">([^<]*)<', page))
        assert shown["changed"] == "3" and shown["approvals"] == "6"
        assert (
            post(client, "/ui/policy/drafts", items)
            .headers["location"]
            .endswith("msg=policy_same_content")
        )  # the same content again: the same version
        refused = post(client, f"/ui/policy/versions/{number}/activate", [])
        assert (
            refused.status_code == 403
            and "to change the policy in force you must be supervisor" in refused.text
        )

        client.cookies.set(TOKEN_COOKIE, tokens["sam"])
        page = client.get(where).text
        assert 'id="activate"' in page
        done = post(client, f"/ui/policy/versions/{number}/activate", [("comment", "try it")])
        assert (
            done.status_code == 303
            and done.headers["location"] == "/ui/policy?msg=policy_activated"
        )
        page = client.get(done.headers["location"]).text
        assert f"Policy version {number} (draft-5@" in page and "is in force" in page
        assert f'id="active-ref">version {number} · draft-5@' in page
        assert 'name="limits.l1_usd" id="l1_usd" value="5"' in page
    app = Exdesk(settings)  # the store says so, and the log recorded who
    try:
        assert app.policy.limits.l1_usd == 5 and app.policy.version == "draft-5"
        events = [(e.event, e.actor) for e in app.audit.entries()]
        assert ("policy.imported", "person:alice") in events
        assert ("policy.activated", "person:sam") in events
    finally:
        app.close()
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        client.cookies.set(TOKEN_COOKIE, tokens["sam"])
        back = post(client, "/ui/policy/rollback", [])
        assert back.status_code == 303
        page = client.get(back.headers["location"]).text
        assert f"version {active_before.group(1)} (" in page and "Rolled back" in page
        again = post(client, f"/ui/policy/versions/{active_before.group(1)}/activate", [])
        assert again.status_code == 422 and "active already" in again.text
        assert client.get("/ui/policy/versions/999").status_code == 404


def test_a_form_opened_before_another_activation_keeps_its_base(
    desk: tuple[Settings, dict[str, str]],
) -> None:
    """The form's values go into the version it was opened from: a value another person
    activated meanwhile is not reverted without a word, it shows in what would change."""
    settings, tokens = desk
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        client.cookies.set(TOKEN_COOKIE, tokens["sam"])
        opened = form_of(client.get("/ui/policy").text)
        base = dict(opened)["base"]
        # meanwhile: a version with a lower L2 limit is saved and activated
        other = changed(opened, limits__l2_usd="1500", version="l2-1500")
        where = post(client, "/ui/policy/drafts", other).headers["location"]
        number = re.search(r"/versions/(\d+)", where).group(1)  # type: ignore[union-attr]
        assert post(client, f"/ui/policy/versions/{number}/activate", []).status_code == 303
        # the form opened before: only the L1 limit changed in it
        page = review(client, changed(opened, limits__l1_usd="20", version="l1-20"))
        assert f"This form starts from version {base}" in text_of(page)
        diff = text_of(page[page.index('id="policy-diff"') : page.index("</table>")])
        assert "limits.l1_usd 50 20" in diff and "limits.l2_usd 1500 2000" in diff
        # a new draft from the version in force has no such line
        fresh = form_of(client.get("/ui/policy").text)
        assert dict(fresh)["base"] == number
        page = review(client, changed(fresh, limits__l1_usd="20", version="l1-20"))
        assert "This form starts from version" not in page
        diff = text_of(page[page.index('id="policy-diff"') : page.index("</table>")])
        assert "limits.l1_usd 50 20" in diff and "limits.l2_usd" not in diff
        # and from any stored version, by its page's link
        start = client.get(f"/ui/policy?start={base}").text
        assert dict(form_of(start))["base"] == base and 'id="base-note"' in start
        assert client.get("/ui/policy?start=999").status_code == 404
        # put back what the other tests expect
        assert post(client, "/ui/policy/rollback", []).status_code == 303


def test_the_page_replays_the_most_recent_decisions_and_says_so(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import policy_pages

    monkeypatch.setattr(policy_pages, "PAGE_DECISIONS", 2)
    items = changed(form_of(client.get("/ui/policy").text), limits__l1_usd="5")
    page = review(client, items)
    shown = dict(re.findall(r'id="whatif-([a-z0-9-]+)">([^<]*)<', page))
    assert shown["decisions"] == "2"
    assert "Only the most recent 2 of the 4 decisions" in text_of(page)


def test_a_supervisor_shadows_rolls_out_and_kills_a_candidate(
    desk: tuple[Settings, dict[str, str]],
) -> None:
    settings, tokens = desk
    with TestClient(create_app(settings, sweep_interval=0)) as client:
        client.cookies.set(TOKEN_COOKIE, tokens["alice"])
        items = changed(form_of(client.get("/ui/policy").text), limits__l1_usd="7", version="c7")
        where = post(client, "/ui/policy/drafts", items).headers["location"]
        number = re.search(r"/versions/(\d+)", where).group(1)  # type: ignore[union-attr]
        url = f"/ui/policy/versions/{number}/candidate"
        assert 'id="shadow"' not in client.get(where).text  # approvers do not
        assert post(client, url, [("mode", "shadow")]).status_code == 403

        client.cookies.set(TOKEN_COOKIE, tokens["sam"])
        assert 'id="rollout-25"' in client.get(where).text
        sent = post(client, url, [("mode", "shadow")])
        assert sent.status_code == 303, sent.text[:300]
        page = client.get(sent.headers["location"]).text
        assert f"Policy version {number} runs in shadow" in text_of(page)
        assert 'id="kill"' in page
        sent = post(client, url, [("mode", "rollout-25"), ("comment", "a quarter")])
        page = client.get(sent.headers["location"]).text
        assert f"Policy version {number} runs for 25% of the orders" in text_of(page)
        assert post(client, url, [("mode", "rollout-0")]).status_code == 422
        assert post(client, url, [("mode", "everything")]).status_code == 422
        app = Exdesk(settings)
        try:
            state = app.policy_store.state()
            assert state is not None
            assert (state.candidate, state.mode, state.percent) == (int(number), "rollout", 25)
        finally:
            app.close()
        sent = post(client, "/ui/policy/kill", [])
        page = client.get(sent.headers["location"]).text
        assert "Stopped: every order is decided under version" in text_of(page)
        assert 'id="kill"' not in page
        again = post(client, "/ui/policy/kill", [])
        assert again.status_code == 422 and "nothing to stop" in again.text


def test_a_process_pinned_to_a_policy_file_says_so(
    desk: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, tokens = desk
    pinned = tmp_path / "pinned.toml"
    text = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()
    pinned.write_text(text.replace('"2026-12-06.1"', '"pinned"'), encoding="utf-8")
    with TestClient(
        create_app(settings.model_copy(update={"policy_file": pinned}), sweep_interval=0)
    ) as client:
        client.cookies.set(TOKEN_COOKIE, tokens["alice"])
        page = client.get("/ui/policy").text
        assert f"This process decides by the policy file {pinned}" in page
        assert 'value="pinned"' not in page  # the form is the store's version in force
