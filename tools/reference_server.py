"""The reference shop: the shop API (``docs/shop-api.json``) served over the simulated backends'
world, for trying exdesk's HTTP backends end to end and as the model a shop's own service
follows.

Every acting endpoint honours ``Idempotency-Key``: the key is claimed in the same transaction
as the change (``SimulatedBackend.once``), so a duplicate request, at once or later, returns
the first answer (with ``Idempotent-Replayed: true``) and does nothing; a refused request keeps
no record of its key. ``Exdesk-World`` picks the simulated world (default ``default``).

Endpoints under ``/_reference`` are this server's own, not the shop API: load a world, submit
orders, read what was sent, and inject faults (``Faults``) for tests and drills.

Run it: ``python -m tools.reference_server --database-url sqlite:///shop.db --world world.json
--orders orders.jsonl --port 8100``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import Engine

from domain.errors import ToolRejected, ToolUnavailable
from domain.models import Order, World
from store.db import make_engine
from store.migrate import upgrade
from store.orders import OrderBook
from store.world import WorldRows
from tools.http_client import REPLAY_OF_HEADER, REPLAYED_HEADER
from tools.ports import Result
from tools.shop_faults import Fault, Faults, Injected, faulted, problem
from tools.shop_routes import DEFAULT_WORLD, UnknownOrder, World_, add_shop_routes
from tools.simulated import SimulatedBackend

__all__ = ["DEFAULT_WORLD", "Fault", "Faults", "create_shop_app", "shop_document"]


def create_shop_app(engine: Engine, *, faults: Faults | None = None) -> FastAPI:
    """The reference shop over the simulated worlds of ``engine`` (migrated already)."""
    plan = faults or Faults()
    app = FastAPI(
        title="exdesk shop API",
        version="1",
        description=(
            "What a shop's systems provide so that exdesk can act on its orders: one group of "
            "endpoints per tool port, each under its port's name. Every POST but /facts/view "
            "carries Idempotency-Key: the shop acts once per key and answers a repeat with the "
            "first answer and Idempotent-Replayed: true. 4xx (but 408, 429) is a refusal and "
            "keeps no record of the key; 408, 429, 5xx and timeouts are retried with the same "
            "key. See README, 'Connecting your shop'."
        ),
    )
    app.state.faults = plan
    worlds, books = WorldRows(engine), OrderBook(engine)

    @app.exception_handler(ToolRejected)
    def _rejected(request: Request, exc: ToolRejected) -> JSONResponse:
        return problem(409, "rejected", str(exc))

    @app.exception_handler(ToolUnavailable)
    def _unavailable(request: Request, exc: ToolUnavailable) -> JSONResponse:
        return problem(503, "unavailable", str(exc))

    @app.exception_handler(Injected)
    def _injected(request: Request, exc: Injected) -> JSONResponse:
        return problem(exc.status, "unavailable", "injected fault (nothing was done)")

    @app.exception_handler(UnknownOrder)
    def _unknown(request: Request, exc: UnknownOrder) -> JSONResponse:
        return problem(404, "rejected", f"order {exc.order_id!r} is not known to this world")

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return problem(422, "invalid", f"{where}: {first['msg']}")

    def act(
        op: str,
        world: str,
        key: str | None,
        request_id: str | None,
        run: Callable[[SimulatedBackend], Result],
    ) -> JSONResponse:
        with faulted(plan.take(op, key, request_id)) as answer:
            result = dict(run(SimulatedBackend(engine, unquote(world))))
            headers: dict[str, str] = {}
            if result.pop("replayed", False):
                headers[REPLAYED_HEADER] = "true"
                if key is not None and (first := plan.acted_for(key)):
                    headers[REPLAY_OF_HEADER] = first
            elif key is not None and request_id:
                plan.acted(key, request_id)
            return answer(JSONResponse(content=result, headers=headers))

    add_shop_routes(app, act)

    # --- this server's own: not the shop API ----------------------------------------------------

    @app.put("/_reference/world", include_in_schema=False)
    def load_world(world_body: World, world: World_ = DEFAULT_WORLD) -> dict[str, str]:
        worlds.load(unquote(world), world_body)
        return {"loaded": world}

    @app.put("/_reference/orders", include_in_schema=False)
    def submit(order: Order, world: World_ = DEFAULT_WORLD) -> dict[str, Any]:
        done = books.submit(unquote(world), order)
        return {"order_id": order.order_id, "version": done.version, "changed": done.changed}

    @app.get("/_reference/messages", include_in_schema=False)
    def messages(
        order_id: Annotated[str | None, Query()] = None, world: World_ = DEFAULT_WORLD
    ) -> list[dict[str, Any]]:
        return SimulatedBackend(engine, unquote(world)).outbox(order_id)

    @app.put("/_reference/faults", include_in_schema=False)
    def arm(faults: list[Fault]) -> dict[str, int]:
        plan.arm(faults)
        return {"armed": len(faults)}

    @app.get("/_reference/requests", include_in_schema=False)
    def seen() -> list[dict[str, Any]]:
        return list(plan.requests)

    return app


@contextmanager
def serve_in_thread(engine: Engine, *, faults: Faults | None = None) -> Iterator[Served]:
    """The reference shop over ``engine`` (migrated here) in a thread of this process, on a
    free port of 127.0.0.1, until the block ends: for tests and benchmarks."""
    import uvicorn

    upgrade(engine)
    plan = faults or Faults()
    app = create_shop_app(engine, faults=plan)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Set on the listening socket so that every connection has it: asyncio sets it only on
    # sockets it makes itself, and without it each answer waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError("the reference shop did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", plan)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass(frozen=True)
class Served:
    url: str
    faults: Faults


def shop_document(app: FastAPI) -> dict[str, Any]:
    """The shop API's OpenAPI document, as ``docs/shop-api.json`` holds it."""
    return app.openapi()


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise SystemExit(f"{path} line {number}: not JSON ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m tools.reference_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default="sqlite:///reference-shop.db")
    parser.add_argument("--world", type=Path, help="a world file (contract §2) to load first")
    parser.add_argument("--orders", type=Path, help="an orders file (JSON Lines) to submit first")
    parser.add_argument("--world-id", default=DEFAULT_WORLD)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--print-openapi", action="store_true", help="print the document, exit")
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url)
    app = create_shop_app(engine)
    if args.print_openapi:
        print(json.dumps(shop_document(app), indent=2, ensure_ascii=False))
        return 0
    upgrade(engine)
    where = str(args.world)
    try:
        if args.world:
            text = args.world.read_text(encoding="utf-8")
            WorldRows(engine).load(args.world_id, World.model_validate_json(text))
        if args.orders:
            for number, data in _read_jsonl(args.orders):
                where = f"{args.orders} line {number}"
                OrderBook(engine).submit(args.world_id, Order.model_validate(data))
    except OSError as exc:
        print(f"cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(the record)"
        print(f"{where}: {field}: {first['msg']}; fix it and start again", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
