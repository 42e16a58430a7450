"""The policy page in a real browser (Debian's chromium, driven by Playwright) against the
service started by the test on 127.0.0.1, over a recorded history.

A supervisor lowers the L1 limit on the policy page, reorders a ranking by dragging and with
the keyboard, reviews the change and its what-if summary, saves the draft, activates it; the
next order submitted to the running service is decided under it (its split shipment, L1 under
the old limit, waits for two approvals). Screenshots are kept in the test's output folder
(printed), as the review desk's browser test keeps its own."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import add_people
from tests.service.policy_support import record_history
from tests.service.test_pages import CHROMIUM, FLAGS, serve

HOSTILE = "<script>alert('policy')</script>"
NEXT_CASE = "DEV-stock-split-l1-105"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], dict[str, Any]]]:
    data = tmp_path / "d"
    cases = record_history(data)
    settings = Settings(data_dir=data)
    app = Exdesk(settings)
    try:
        tokens = add_people(app, {"sam": "supervisor", "olga": "operator"})
    finally:
        app.close()
    with serve(settings) as base:
        yield base, tokens, cases[NEXT_CASE]


def test_lower_the_l1_limit_in_the_browser_and_the_next_order_is_decided_under_it(
    served: tuple[str, dict[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed: apt-get install chromium fonts-noto-cjk")
    from playwright.sync_api import expect, sync_playwright

    base, tokens, case = served
    shots = tmp_path / "screenshots"
    shots.mkdir()
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{base}/ui/login")
        page.fill("#token", tokens["sam"])
        page.click("button[type=submit]")
        page.click("header nav >> text=Policy")
        expect(page.locator("h1")).to_contain_text("Policy")
        active_ref = page.locator("#active-ref").inner_text()
        expect(page.locator("#l1_usd")).to_have_value("50")
        expect(page.locator("#embargoed")).to_contain_text("Korea, Democratic People's Republic of")

        # a ranking: drag an entry above another, then put it back with the keyboard
        ranking = page.locator("ol.rank[data-name='ranking.duplicate_order'] li")
        expect(ranking.first).to_contain_text("hold duplicate")
        ranking.nth(1).drag_to(ranking.first)
        expect(ranking.first).to_contain_text("manual review")
        down = ranking.first.locator("button.down")
        down.focus()
        page.keyboard.press("Enter")
        expect(ranking.first).to_contain_text("hold duplicate")
        expect(ranking.nth(1)).to_contain_text("manual review")

        page.fill("#l1_usd", "abc")
        page.click("#review-button")
        expect(page.locator(".field-error[data-field='limits.l1_usd']")).to_contain_text(
            "valid decimal"
        )
        expect(page.locator("#l1_usd")).to_have_value("abc")
        page.screenshot(path=str(shots / "policy-error.png"), full_page=True)

        page.fill("#l1_usd", "5")
        page.fill("input[name=version]", "2026-12-07.1")
        page.fill("#comment", f"fewer plans at once {HOSTILE}")
        page.click("#review-button")
        expect(page.locator("#policy-diff")).to_contain_text("limits.l1_usd")
        expect(page.locator("#policy-diff tbody tr")).to_have_count(2)  # the limit and the label
        expect(page.locator("#whatif-changed")).to_have_text("3")
        expect(page.locator("#whatif-approvals")).to_have_text("6")
        expect(page.locator("#whatif-orders")).to_contain_text("DEV-0105")
        l1_l2 = page.locator("#whatif-l1-l2").inner_text()
        assert l1_l2.endswith(" USD") and float(l1_l2.split()[0]) > 0
        page.screenshot(path=str(shots / "policy-review.png"), full_page=True)

        page.click("#save-draft")
        expect(page.locator(".flash")).to_contain_text("a draft: it decides nothing")
        expect(page.locator("#whatif-changed")).to_have_text("3")
        expect(page.locator("#version-facts")).to_contain_text(HOSTILE)  # the comment, as text
        page.screenshot(path=str(shots / "policy-draft.png"), full_page=True)

        page.fill("#activate-form textarea", "reviewed on history")
        page.click("#activate")
        expect(page.locator(".flash")).to_contain_text("is in force")
        expect(page.locator("#active-ref")).to_contain_text("2026-12-07.1@")
        assert page.locator("#active-ref").inner_text() != active_ref
        expect(page.locator("#l1_usd")).to_have_value("5")
        page.screenshot(path=str(shots / "policy-active.png"), full_page=True)

        # the next order, submitted to the running service: decided under the new version
        order = copy.deepcopy(case["order"])
        order["order_id"] = "NEXT-0105"
        answer = httpx.post(
            f"{base}/orders",
            json={"order": order, "world": case["world"], "world_id": "next"},
            headers={"Authorization": f"Bearer {tokens['olga']}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        report = answer.json()
        decision = report["exceptions"][0]["decision"]
        assert report["exceptions"][0]["plans"][0]["tier"] == "L2", report
        assert decision.get("status") == "awaiting_approval", decision

        page.click("header nav >> text=Queue")
        row = page.locator("table.queue tbody tr", has_text="NEXT-0105")
        expect(row).to_contain_text("L2")
        expect(row).to_contain_text("split shipment")
        row.locator("a").first.click()
        expect(page.locator("ul.reasons")).to_contain_text("is over 5 USD: L2")
        page.screenshot(path=str(shots / "next-order.png"), full_page=True)
        browser.close()
    assert dialogs == []  # nothing typed ran as script
    for name in ("policy-review.png", "policy-draft.png", "policy-active.png", "next-order.png"):
        assert (shots / name).stat().st_size > 10_000
    print(f"screenshots: {shots}")
    (tmp_path / "screenshots.json").write_text(json.dumps(sorted(p.name for p in shots.iterdir())))
