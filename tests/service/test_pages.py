"""The review desk's pages in a real browser: Debian's chromium, driven by Playwright, against
the service started by the test on 127.0.0.1. Two people log in one after the other and
approve an L2 plan; it runs. Screenshots of the queue and the proposal are kept in the test's
output folder (printed)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from service.http import create_app
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import add_people, example

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HOSTILE = "<script>alert('order')</script><b>bold?</b>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The service on a free port, with an L2 proposal waiting and three people."""
    settings = Settings(data_dir=tmp_path / "d")
    app = Exdesk(settings)
    try:
        tokens = add_people(
            app,
            {"张伟 Zhang Wei": "approver", "bob": "approver", "audrey": "auditor"},
        )
        case = example("EX-customs-bad_hs-005")
        order: dict[str, Any] = case["order"]
        order["fulfillment"]["promised_by"] = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        order["notes"] = HOSTILE
        order["ship_to"]["name"] = "王芳"
        from domain.models import Order, World
        from service import usecases

        usecases.load_world(app, "default", World.model_validate(case["world"]))
        usecases.handle(app, "default", Order.model_validate(order))
    finally:
        app.close()
    with serve(settings) as base:
        yield base, tokens


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The service on a free port of 127.0.0.1, in a thread; its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, sweep_interval=0), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not start in 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_two_people_approve_an_l2_plan_in_the_browser(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed: apt-get install chromium fonts-noto-cjk")
    from playwright.sync_api import expect, sync_playwright

    base, tokens = served
    shots = tmp_path / "screenshots"
    shots.mkdir()
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        def login(name: str) -> None:
            page.goto(f"{base}/ui/login")
            page.fill("#token", tokens[name])
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_contain_text("Waiting for a decision")

        page.goto(f"{base}/ui/queue")
        expect(page).to_have_url(f"{base}/ui/login")  # not signed in: the login page
        login("张伟 Zhang Wei")
        row = page.locator("table.queue tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("L2")
        expect(row).to_contain_text("customs fix hs code")
        page.screenshot(path=str(shots / "queue.png"), full_page=True)
        row.locator("a").first.click()
        expect(page.locator("h1")).to_contain_text("customs fix hs code")
        expect(page.locator("table.diff")).to_contain_text("761699")
        page.locator("details", has_text="The whole order now").locator("summary").click()
        expect(page.locator("pre").last).to_contain_text(HOSTILE)  # shown as text
        expect(page.locator("pre").last).to_contain_text("王芳")
        page.screenshot(path=str(shots / "proposal.png"), full_page=True)
        page.fill("#reason", "HS code matches the catalog")
        page.click("#approve")
        expect(page.locator(".flash")).to_contain_text("still needed: 1 more approval")
        page.click("text=Sign out")

        login("audrey")
        page.locator("table.queue a").first.click()
        expect(page.locator("#approve")).to_have_count(0)  # auditors read
        page.click("text=Sign out")

        login("bob")
        page.locator("table.queue a").first.click()
        page.click("#approve")
        expect(page.locator(".flash")).to_contain_text("executed")
        expect(page.locator(".status")).to_have_text("executed")
        page.screenshot(path=str(shots / "executed.png"), full_page=True)
        page.click("text=Audit")
        expect(page.locator(".verdict")).to_contain_text("Verified")
        browser.close()
    assert dialogs == []  # nothing from the order ran as script
    for name in ("queue.png", "proposal.png", "executed.png"):
        assert (shots / name).stat().st_size > 10_000
    print(f"screenshots: {shots}")
    (tmp_path / "screenshots.json").write_text(json.dumps(sorted(p.name for p in shots.iterdir())))
