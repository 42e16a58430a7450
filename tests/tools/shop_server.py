"""The reference shop on 127.0.0.1 (a free port) for tests, and the HTTP backends of one world
as the conformance spec drives them."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine

from domain.models import Order, World
from store.migrate import upgrade
from tools.http_backends import PORTS, HttpShop
from tools.http_client import WORLD_HEADER, Leash
from tools.ports import WorldFacts
from tools.reference_server import Fault, Faults, create_shop_app
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
    upgrade(engine)
    faults = Faults()
    app = create_shop_app(engine, faults=faults)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the reference shop did not start")
        time.sleep(0.02)
    try:
        yield Shop(f"http://127.0.0.1:{port}", faults, engine)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
        self._admin = httpx.Client(base_url=shop.url, headers={WORLD_HEADER: self.world_id})

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
