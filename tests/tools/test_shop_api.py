"""The shop API: ``docs/shop-api.json`` is the reference shop's own document, every action of the
registry has its endpoint and its HTTP backend, and the shop honours ``Idempotency-Key``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from store.db import make_engine
from tests.tools.conformance import ORD_1, Harness, act
from tests.tools.shop_server import HttpPorts, Shop, serve_shop
from tools import http_backends
from tools.http_client import KEY_HEADER, REPLAYED_HEADER, WORLD_HEADER
from tools.reference_server import create_shop_app, main, shop_document
from tools.registry import ACTIONS

DOCUMENT = Path(__file__).parents[2] / "docs" / "shop-api.json"


def test_the_document_is_the_reference_shops_own() -> None:
    served = shop_document(create_shop_app(make_engine("sqlite://")))
    kept = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert served == kept, (
        "docs/shop-api.json is not what the reference shop serves: write it again with "
        "`python -m tools.reference_server --print-openapi > docs/shop-api.json`"
    )


def test_every_action_has_its_endpoint_and_backend() -> None:
    paths = json.loads(DOCUMENT.read_text(encoding="utf-8"))["paths"]
    named = {op["operationId"] for methods in paths.values() for op in methods.values()}
    assert named >= {f"{tool}.{op}" for tool, op in ACTIONS}
    classes = {
        "orders": http_backends.HttpOrders,
        "inventory": http_backends.HttpInventory,
        "customs": http_backends.HttpCustoms,
        "payment": http_backends.HttpPayment,
        "carrier": http_backends.HttpCarrier,
        "notify": http_backends.HttpNotify,
    }
    assert all(callable(getattr(classes[tool], op, None)) for tool, op in ACTIONS)
    for path, methods in paths.items():
        for method, op in methods.items():
            if method == "post" and path != "/facts/view":
                headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
                assert KEY_HEADER in headers, f"POST {path} takes no {KEY_HEADER}"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with serve_shop(engine) as served:
        yield served
    engine.dispose()


def test_a_duplicate_request_gets_the_first_answer_and_acts_once(shop: Shop) -> None:
    ports = HttpPorts(shop, world_id="dup")
    Harness(ports).seed()
    send = {"template": "delay_notice", "data": {"eta": "2026-12-05"}}
    headers = {KEY_HEADER: "dup-1", WORLD_HEADER: "dup"}
    with httpx.Client(base_url=shop.url) as client:
        url = f"/notify/orders/{ORD_1.order_id}/messages"
        first = client.post(url, json=send, headers=headers)
        second = client.post(url, json=send, headers=headers)
        other = client.post(url, json=send, headers={**headers, KEY_HEADER: "dup-2"})
        missing = client.post(url, json=send, headers={WORLD_HEADER: "dup"})
        reused = client.post(
            "/inventory/reservations",
            json={"warehouse_id": "WH-A", "sku": "SKU-1", "qty": 1},
            headers=headers,
        )
    assert (first.status_code, second.status_code, other.status_code) == (200, 200, 200)
    assert second.json() == first.json() == {"sent": "delay_notice"}
    assert REPLAYED_HEADER not in first.headers
    assert second.headers[REPLAYED_HEADER] == "true"
    assert other.headers.get(REPLAYED_HEADER) is None
    assert len(ports.messages(ORD_1.order_id)) == 2  # dup-1 once, dup-2 once
    assert missing.status_code == 422 and KEY_HEADER in missing.json()["detail"]
    assert (
        reused.status_code == 409
        and "every call needs a key of its own" in (reused.json()["detail"])
    )
    ports.close()


def test_an_unknown_order_is_404_and_a_malformed_body_422(shop: Shop) -> None:
    with httpx.Client(base_url=shop.url) as client:
        unknown = client.get("/orders/NOPE")
        bad = client.post(
            "/inventory/reservations",
            json={"warehouse_id": "WH-A", "sku": "SKU-1", "qty": 0},
            headers={KEY_HEADER: "k"},
        )
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["detail"]
    assert bad.status_code == 422 and bad.json()["detail"].startswith("body.qty")


def test_a_world_named_in_any_script_reaches_its_world(shop: Shop) -> None:
    """World ids are exdesk's (any text); the header carries them percent-encoded."""
    ports = HttpPorts(shop, world_id="上海 shop/1")
    harness = Harness(ports).seed()
    harness.call(act("orders.place_hold", kind="stockout", reason="x"), "hold")
    assert ports.toolbox.orders.get(ORD_1.order_id).status == "on_hold"
    other = HttpPorts(shop, world_id="上海 shop/2")
    Harness(other).seed()
    assert other.toolbox.orders.get(ORD_1.order_id).status == "open"
    ports.close()
    other.close()


def test_the_reference_shop_reports_load_errors_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = tmp_path / "orders.jsonl"
    bad = {**ORD_1.as_json(), "lines": [{**ORD_1.as_json()["lines"][0], "qty": 0}]}
    orders.write_text(json.dumps(ORD_1.as_json()) + "\n" + json.dumps(bad) + "\n")
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    assert main(["--database-url", url, "--orders", str(orders)]) == 2
    said = capsys.readouterr().err
    assert f"{orders} line 2: lines.0.qty:" in said and "Traceback" not in said
    assert main(["--database-url", url, "--world", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
