"""Shadow and gray release (issue 15): a candidate in shadow decides beside the active version
on live orders, recorded and compared, never executed (tool calls counted); a rollout decides
its share of the live orders and the kill switch sends them back; the comparison per version
over HTTP and the CLI. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from agent.runner import RunResult
from domain.models import Order, World
from service import policies, usecases
from service.cli import app as cli
from service.pages import TOKEN_COOKIE
from service.people import add_user
from service.policy_book import bucket
from service.shadow import SHADOW_EVENT
from service.wiring import Exdesk
from store.schema import outbox, tool_calls
from tests.service.test_http import Desk, auth, client, desk  # noqa: F401 (fixtures)
from tests.service.test_policy_versions import STRICT, _delay_order, app, settings  # noqa: F401


def _handle(ex: Exdesk, order_id: str) -> RunResult:
    case = _delay_order(order_id)
    usecases.load_world(ex, "w", World.model_validate(case["world"]))
    return usecases.handle(ex, "w", Order.model_validate(case["order"]))


def _tool_calls(ex: Exdesk, order_id: str) -> list[str]:
    """The tool calls the log holds for one order (requested or called)."""
    return [
        f"{e.event} {e.payload.get('tool')}.{e.payload.get('op')}"
        for e in ex.audit.entries()
        if e.event.startswith("tool.") and json.dumps(e.payload).find(f'"{order_id}"') >= 0
    ]


def _shadow_entries(ex: Exdesk) -> list[dict[str, Any]]:
    return [e.payload for e in ex.audit.entries() if e.event == SHADOW_EVENT]


def test_a_shadow_decides_beside_the_active_version_and_never_executes(
    app: Exdesk,  # noqa: F811
) -> None:
    sam, _ = add_user(app, "Sam Lee", "supervisor")
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.activate(app, strict.id, by=sam)  # delays wait for people now
    before = _handle(app, "S-1")
    assert [d.status.value for d in before.decisions.values()] == ["awaiting_approval"]
    calls_without = _tool_calls(app, "S-1")
    assert calls_without  # (the hold the awaiting plan placed: the count counts)
    assert _shadow_entries(app) == []

    # the shipped default, which would notify at once (L1), in shadow
    policies.set_candidate(app, 1, mode="shadow", by=sam)
    shadowed = _handle(app, "S-2")
    assert [(d.status.value, d.tier.value) for d in shadowed.decisions.values()] == [
        ("awaiting_approval", "L2")
    ]
    assert shadowed.order_after.status == "on_hold"
    calls_with = _tool_calls(app, "S-2")
    assert [c.replace("S-2", "S-1") for c in calls_with] == calls_without  # nothing more ran
    assert not any("notify" in c and "send" in c for c in calls_with if "called" in c)

    (entry,) = _shadow_entries(app)
    assert entry["order_id"] == "S-2" and entry["version"] == 1
    assert entry["active"] == strict.ref and entry["candidate"].startswith("2026-12-06.1@")
    assert entry["decided"]["top"] == {"carrier_delay": {"strategy": "notify_delay", "tier": "L2"}}
    assert entry["would"]["top"] == {"carrier_delay": {"strategy": "notify_delay", "tier": "L1"}}
    assert entry["differs"] is True

    _handle(app, "S-2")  # the same order again: its run stands, compared once
    assert len(_shadow_entries(app)) == 1
    policies.kill(app, by=sam)
    _handle(app, "S-3")
    assert len(_shadow_entries(app)) == 1  # no shadow: nothing recorded beside
    assert app.audit.verify().ok


def _at_the_backends(ex: Exdesk) -> Counter[str]:
    """Every operation the simulated systems carried out (each claims its key in
    ``tool_calls``) and every message they sent (``outbox``), by name."""
    with ex.engine.connect() as conn:
        ops = [row.op for row in conn.execute(select(tool_calls.c.op))]
        sent = [f"sent:{row.channel}" for row in conn.execute(select(outbox.c.channel))]
    return Counter(ops + sent)


def test_a_shadow_that_would_wait_calls_no_tool_counted_at_the_backends(
    app: Exdesk,  # noqa: F811
) -> None:
    """The other way round: the active version acts at once (a delay notice with a voucher,
    L1), the shadow would hold the order for two approvals. What the simulated systems did,
    counted where they record it, is what the same orders cost without a shadow."""
    sam, _ = add_user(app, "Sam Lee", "supervisor")
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    for n in range(3):
        assert [d.status.value for d in _handle(app, f"N-{n}").decisions.values()] == ["executed"]
    without = _at_the_backends(app)
    assert without and sum(without.values()) % 3 == 0
    policies.set_candidate(app, strict.id, mode="shadow", by=sam)
    for n in range(3):
        assert [d.status.value for d in _handle(app, f"Y-{n}").decisions.values()] == ["executed"]
    with_shadow = _at_the_backends(app)
    assert with_shadow == without + without  # the same again, nothing more
    entries = _shadow_entries(app)
    assert [e["order_id"] for e in entries] == ["Y-0", "Y-1", "Y-2"]
    assert all(e["would"]["top"]["carrier_delay"]["tier"] == "L2" for e in entries)
    assert not any(o.startswith("Y-") for o in (p.order_id for p in app.review.find()))


def test_a_rollout_decides_its_share_of_live_orders_and_the_kill_switch_ends_it(
    app: Exdesk,  # noqa: F811
) -> None:
    sam, _ = add_user(app, "Sam Lee", "supervisor")
    strict = policies.import_policy(app, STRICT, "strict.toml", by=sam).version
    policies.set_candidate(app, strict.id, mode="rollout", percent=25, by=sam)
    ids = [f"G-{n}" for n in range(40)]
    inside = next(i for i in ids if bucket(strict.id, i) < 25)
    outside = next(i for i in ids if bucket(strict.id, i) >= 25)
    assert [d.tier.value for d in _handle(app, inside).decisions.values()] == ["L2"]
    assert [d.tier.value for d in _handle(app, outside).decisions.values()] == ["L1"]
    policies.kill(app, by=sam)
    again = next(i for i in ids if bucket(strict.id, i) < 25 and i != inside)
    assert [d.tier.value for d in _handle(app, again).decisions.values()] == ["L1"]


def test_the_comparison_per_version_over_http_and_the_cli(
    client: TestClient,  # noqa: F811
    desk: Desk,  # noqa: F811
) -> None:
    draft = {"text": STRICT, "comment": "delays need people"}
    v = client.post("/policies", json=draft, headers=auth(desk, "alice")).json()["version"]
    shadow = client.post(f"/policies/{v}/shadow", json={}, headers=auth(desk, "sue"))
    assert shadow.status_code == 200 and shadow.json()["state"]["mode"] == "shadow"
    for n in range(3):
        case = _delay_order(f"C-{n}")
        body = {"order": case["order"], "world": case["world"], "world_id": "w"}
        decided = client.post("/orders", json=body, headers=auth(desk, "olive")).json()
        assert decided["exceptions"][0]["decision"]["tier"] == "L1"  # the active one decides
    # an order with no delay event: no exception under either version
    clean = {"order": _delay_order("C-clean")["order"], "world_id": "w"}
    assert client.post("/orders", json=clean, headers=auth(desk, "olive")).status_code == 200

    result = client.get(f"/policies/{v}/compare", headers=auth(desk, "olive")).json()
    active_ref = result["active"]["ref"]
    assert result["live"][active_ref]["decisions"] == 4  # three delays and a clean order
    assert result["live"][active_ref]["tiers"] == {"L1": 3}
    assert result["live"][result["ref"]]["decisions"] == 0  # it decided nothing live
    assert result["shadow"]["decisions"] == 4 and result["shadow"]["differences"] == 3
    assert result["shadow"]["decided"]["tiers"] == {"L1": 3}
    assert result["shadow"]["would"]["tiers"] == {"L2": 3}
    assert sorted(o["order_id"] for o in result["shadow"]["orders"]) == ["C-0", "C-1", "C-2"]
    assert (
        client.get(f"/policies/{v}/compare?days=0", headers=auth(desk, "olive")).status_code == 422
    )
    # the same comparison on the version's page
    client.cookies.set(TOKEN_COOKIE, desk.tokens["olive"])
    page = client.get(f"/ui/policy/versions/{v}").text
    client.cookies.clear()
    shown = dict(re.findall(r'id="compare-shadow-([a-z]+)">([^<]*)<', page))
    assert shown == {"decisions": "4", "differences": "3"}
    table = page[page.index('id="compare-orders"') :]
    table = table[: table.index("</table>")]
    assert sorted(re.findall(r">(C-\d)</a>", table)) == ["C-0", "C-1", "C-2"]
    assert 'id="compare-live"' in page and f"version {result['active']['version']}" in page

    # a rollout to 100 %: every order is the candidate's, live
    client.post(f"/policies/{v}/rollout", json={"percent": 100}, headers=auth(desk, "sue"))
    case = _delay_order("C-9")
    body = {"order": case["order"], "world": case["world"], "world_id": "w"}
    decided = client.post("/orders", json=body, headers=auth(desk, "olive")).json()
    assert decided["exceptions"][0]["decision"]["tier"] == "L2"
    killed = client.post("/policies/kill", json={"comment": "stop"}, headers=auth(desk, "sue"))
    assert killed.status_code == 200 and killed.json()["state"]["candidate"] is None
    result = client.get(f"/policies/{v}/compare", headers=auth(desk, "olive")).json()
    assert result["live"][result["ref"]]["tiers"] == {"L2": 1}

    env = {"EXDESK_DATABASE_URL": desk.settings.database_url} if desk.settings.database_url else {}
    shown = CliRunner(env=env).invoke(
        cli, ["policy", "compare", str(v), "--data-dir", str(desk.settings.data_dir)]
    )
    assert shown.exit_code == 0, shown.output
    assert "in shadow: 4 orders compared, 3 would be decided differently" in shown.output
    assert "order C-0: decided" in shown.output
