"""A schemathesis run against the reference shop (generated requests, valid and not, on a seeded
world): no server error, and every answer has a status and a body that docs/shop-api.json
documents for it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from domain.models import Action
from store.db import make_engine
from store.migrate import upgrade
from store.orders import OrderBook
from store.world import WorldRows
from tests.tools.conformance import CASES, ORDERS, WORLD
from tests.tools.test_shop_api import DOCUMENT
from tools.http_client import KEY_HEADER
from tools.reference_server import DEFAULT_WORLD, create_shop_app


def test_no_request_breaks_the_shop_or_its_document(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    upgrade(engine)
    WorldRows(engine).load(DEFAULT_WORLD, WORLD)
    for order in ORDERS.values():
        OrderBook(engine).submit(DEFAULT_WORLD, order)
    app = create_shop_app(engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    assert json.loads(DOCUMENT.read_text(encoding="utf-8"))["paths"].keys() == (
        app.openapi()["paths"].keys()
    )
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    calls: dict[str, int] = {}
    statuses: set[int] = set()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(checks=checks)
            statuses.add(response.status_code)
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1

        run()
    paths = app.openapi()["paths"]
    assert len(calls) == sum(len(methods) for methods in paths.values())
    assert statuses >= {404, 409, 422}, statuses  # refused, and nonsense rejected

    # Every operation's answer when it acts, as the document says it is.
    by_id = {op.ok().definition.raw["operationId"]: op.ok() for op in schema.get_all_operations()}
    answered: list[str] = []

    def call(action: Action) -> None:
        name = f"{action.tool}.{action.op}"
        args = dict(action.args)
        path = {"order_id": args.pop("order_id")} if "order_id" in args else {}
        case = by_id[name].Case(
            path_parameters=path, body=args, headers={KEY_HEADER: uuid.uuid4().hex}
        )
        response = case.call_and_validate(checks=checks)
        assert response.status_code == 200, (name, response.text)
        answered.append(name)

    for spec in CASES.values():
        for step in spec.setup:
            call(step)
        call(spec.action)
    for case in (
        by_id["orders.get"].Case(path_parameters={"order_id": "ORD-1"}),
        by_id["facts.view"].Case(body=ORDERS["ORD-1"].as_json()),
    ):
        assert case.call_and_validate(checks=checks).status_code == 200
    assert set(answered) >= set(CASES)
    engine.dispose()
