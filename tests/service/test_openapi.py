"""The service's OpenAPI document describes every route, and a schemathesis run against it
(generated requests, valid and not, with a real token) finds no server error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from domain.models import Order, World
from service import usecases
from service.http import create_app
from service.people import add_user
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import example

ROUTES = {
    ("get", "/health"),
    ("post", "/orders"),
    ("get", "/proposals"),
    ("get", "/proposals/{proposal_id}"),
    ("post", "/proposals/{proposal_id}/approve"),
    ("post", "/proposals/{proposal_id}/reject"),
    ("post", "/proposals/{proposal_id}/edit"),
    ("post", "/orders/{order_id}/resolve"),
    ("post", "/orders/{order_id}/replies"),
    ("get", "/proposals/{proposal_id}/explanation"),
    ("get", "/orders/{order_id}/timeline"),
    ("get", "/audit/verify"),
    ("get", "/users"),
    ("post", "/users"),
    ("post", "/users/{name}/role"),
    ("post", "/users/{name}/revoke"),
    ("get", "/policies"),
    ("post", "/policies"),
    ("post", "/policies/rollback"),
    ("post", "/policies/kill"),
    ("get", "/policies/{version}"),
    ("get", "/policies/{a}/diff/{b}"),
    ("post", "/policies/{version}/activate"),
    ("post", "/policies/{version}/shadow"),
    ("post", "/policies/{version}/rollout"),
    ("get", "/policies/{version}/compare"),
}


@dataclass
class Served:
    api: FastAPI
    token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app on a desk with a supervisor and an L2 proposal waiting."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi") / "d")
    desk = Exdesk(settings)
    _, token = add_user(desk, "sam", "supervisor")
    case = example("EX-customs-bad_hs-005")
    usecases.load_world(desk, "default", World.model_validate(case["world"]))
    usecases.handle(desk, "default", Order.model_validate(case["order"]))
    api = create_app(settings, sweep_interval=0)
    api.state.exdesk = desk  # what the lifespan does when the service starts
    yield Served(api, token)
    desk.close()


def test_the_document_describes_every_route(served: Served) -> None:
    document = served.api.openapi()
    described = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert described == ROUTES
    assert json.dumps(document)  # serialisable as it is served


def test_no_request_makes_a_server_error(served: Served) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", served.api)
    headers = {"Authorization": f"Bearer {served.token}"}
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            assert response.status_code < 500
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1

        run()
    assert len(calls) == len(ROUTES) and min(calls.values()) >= 1


def test_the_run_would_catch_a_server_error(served: Served) -> None:
    """A route that breaks fails the run (as its exception or as a 500): it is not vacuous."""
    from starlette.testclient import TestClient

    broken = FastAPI()

    @broken.get("/boom")
    def boom() -> dict[str, str]:
        raise RuntimeError("broken")

    run = schemathesis.openapi.from_asgi("/openapi.json", broken)
    (operation,) = [op.ok() for op in run.get_all_operations()]
    case = operation.Case()
    with pytest.raises(Exception, match=r"broken|Server error"):
        case.call_and_validate(checks=[not_a_server_error])
    assert TestClient(broken, raise_server_exceptions=False).get("/boom").status_code == 500
