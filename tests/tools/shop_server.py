"""The reference shop on 127.0.0.1 (a free port) for tests, and the HTTP backends of one world
as the conformance spec drives them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import Engine

from domain.models import Order, World
from tools.http_backends import PORTS, HttpShop
from tools.http_client import WORLD_HEADER, Leash
from tools.ports import WorldFacts
from tools.reference_server import Fault, Faults, serve_in_thread
from tools.registry import ToolBox


@dataclass
class Shop:
    url: str
    faults: Faults
    engine: Engine

    def arm(self, *faults: Fault) -> None:
        self.faults.arm(list(faults))

    def requests(self) -> list[dict[str, Any]]:
        return list(self.faults.requests)


@contextmanager
def serve_shop(engine: Engine) -> Iterator[Shop]:
    """The reference shop over ``engine`` in a thread, on a port of its own."""
    with serve_in_thread(engine) as served:
        yield Shop(served.url, served.faults, engine)


# Short enough that an injected timeout costs a test little, long enough for a loaded machine.
TEST_LEASH = Leash(
    timeout_s=2.0, connect_timeout_s=2.0, retries=3, backoff_s=0.02, backoff_max_s=0.2
)


class HttpPorts:
    """Every port over HTTP to the reference shop, for one world of its own."""

    def __init__(self, shop: Shop, *, leash: Leash = TEST_LEASH, world_id: str | None = None):
        self.world_id = world_id or uuid.uuid4().hex
        self.shop = HttpShop(dict.fromkeys(PORTS, shop.url), leash=leash)
        ports = self.shop.backends(self.world_id)
        self.facts: WorldFacts = ports.pop("facts")
        self.toolbox = ToolBox(**ports)
        self._admin = httpx.Client(
            base_url=shop.url, headers={WORLD_HEADER: quote(self.world_id, safe="")}
        )

    def _ok(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def load_world(self, world: World) -> None:
        self._ok(self._admin.put("/_reference/world", json=world.model_dump(mode="json")))

    def submit(self, order: Order) -> None:
        self._ok(self._admin.put("/_reference/orders", json=order.as_json()))

    def messages(self, order_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._ok(
            self._admin.get("/_reference/messages", params={"order_id": order_id})
        )
        return found

    def close(self) -> None:
        self.shop.close()
        self._admin.close()
