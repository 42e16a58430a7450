"""Policy versions over HTTP (issue 15): who reads, who imports, who activates; an activation
takes effect in the running service without restart, whether made through it or by another
process. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from service import policies
from tests.service.test_http import Desk, auth, client, desk  # noqa: F401 (fixtures)
from tests.service.test_policy_versions import POLICY_TEXT, STRICT, _delay_order


def _decide(served: TestClient, people: Desk, order_id: str) -> dict[str, Any]:
    case = _delay_order(order_id)
    body = {"order": case["order"], "world": case["world"], "world_id": "w"}
    response = served.post("/orders", json=body, headers=auth(people, "olive"))
    assert response.status_code == 200, response.text
    (exception,) = response.json()["exceptions"]
    return dict(exception["decision"])


def test_who_reads_imports_and_activates(client: TestClient, desk: Desk) -> None:  # noqa: F811
    for name in ("olive", "audrey", "alice", "sue"):
        listed = client.get("/policies", headers=auth(desk, name))
        assert listed.status_code == 200
    assert client.get("/policies").status_code == 401
    body = listed.json()
    assert body["state"]["active"] == 1 and body["state"]["can_roll_back"] is False
    assert [(v["version"], v["status"]) for v in body["versions"]] == [(1, "active")]

    draft = {"text": STRICT, "comment": "delays need people", "source": "strict.toml"}
    assert client.post("/policies", json=draft, headers=auth(desk, "olive")).status_code == 403
    made = client.post("/policies", json=draft, headers=auth(desk, "alice"))
    assert made.status_code == 201 and made.json()["new"] is True
    assert (made.json()["version"], made.json()["author"]) == (2, "alice")
    again = client.post("/policies", json=draft, headers=auth(desk, "sue"))
    assert again.status_code == 200 and (again.json()["version"], again.json()["new"]) == (2, False)

    weak = {"text": POLICY_TEXT.replace('cancel_order = "L3"', 'cancel_order = "L1"')}
    refused = client.post("/policies", json=weak, headers=auth(desk, "sue"))
    assert refused.status_code == 422
    assert "draft line" in refused.json()["detail"]
    assert "tiers.cancel_order" in refused.json()["detail"]

    shown = client.get("/policies/2", headers=auth(desk, "olive")).json()
    assert shown["text"] == STRICT and shown["policy"]["tiers"]["notify_delay"] == "L2"
    assert (
        client.get(f"/policies/{shown['ref']}", headers=auth(desk, "olive")).json()["version"] == 2
    )
    assert client.get("/policies/9", headers=auth(desk, "olive")).status_code == 404
    assert (
        client.get("/policies/99999999999999999999", headers=auth(desk, "olive")).status_code == 404
    )
    changes = client.get("/policies/1/diff/2", headers=auth(desk, "alice")).json()
    assert {"field": "tiers.notify_delay", "before": "L1", "after": "L2"} in changes["fields"]
    assert '-notify_delay = "L1"' in changes["text"]

    for name in ("olive", "alice", "audrey"):
        tried = client.post("/policies/2/activate", json={}, headers=auth(desk, name))
        assert tried.status_code == 403 and "supervisor" in tried.json()["detail"]
    done = client.post("/policies/2/activate", json={"comment": "go"}, headers=auth(desk, "sue"))
    assert done.status_code == 200 and done.json()["state"]["active"] == 2
    state = client.get("/policies", headers=auth(desk, "olive")).json()["state"]
    assert (state["by"], state["comment"], state["can_roll_back"]) == ("sue", "go", True)
    back = client.post("/policies/rollback", json={}, headers=auth(desk, "sue"))
    assert back.status_code == 200 and back.json()["state"]["active"] == 1
    assert client.post("/policies/rollback", json={}, headers=auth(desk, "sue")).status_code == 422


def test_an_activation_takes_effect_in_the_running_service_without_restart(
    client: TestClient,  # noqa: F811
    desk: Desk,  # noqa: F811
) -> None:
    assert _decide(client, desk, "H-1")["tier"] == "L1"
    draft = {"text": STRICT}
    version = client.post("/policies", json=draft, headers=auth(desk, "alice")).json()["version"]
    assert _decide(client, desk, "H-2")["tier"] == "L1"
    client.post(f"/policies/{version}/activate", json={}, headers=auth(desk, "sue"))
    decided = _decide(client, desk, "H-3")
    assert (decided["status"], decided["tier"]) == ("awaiting_approval", "L2")

    # another process (the CLI, a worker) rolls back: the service takes it up at its next order
    other = desk.app()
    try:
        sue = other.users.find("sue")
        policies.rollback(other, by=sue)
    finally:
        other.close()
    assert _decide(client, desk, "H-4") == {
        "status": "executed",
        "strategy": "notify_delay",
        "tier": "L1",
    }
    app = desk.app()
    try:
        changes = [(e.actor, e.event) for e in app.audit.entries() if e.event.startswith("policy.")]
        assert [c for c in changes if c[1] != "policy.recorded"] == [
            ("person:alice", "policy.imported"),
            ("person:sue", "policy.activated"),
            ("person:sue", "policy.rolled_back"),
        ]
    finally:
        app.close()
