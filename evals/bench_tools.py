"""Benchmark: a tool call through the HTTP backends to the reference shop, beside the same call
on the simulated backend over the same kind of database, measured in the same run.

Run ``python -m evals.bench_tools [--calls N] [--repeat R]``. Each side makes ``N`` calls of
each kind (``inventory.reserve`` and ``notify.send`` under fresh keys, a repeat of a key,
``orders.get``, ``facts.view``), ``R`` rounds; the figures are medians over every call of a
kind, in milliseconds, and the ratio HTTP / simulated. The shop runs in a thread of this
process on 127.0.0.1, over SQLite in a temporary folder: the overhead is the HTTP round trip,
FastAPI and JSON, not a network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from domain.models import Action, Order, World
from store.db import make_engine
from store.migrate import upgrade
from store.orders import OrderBook
from store.world import WorldRows
from tools.http_backends import PORTS, HttpShop
from tools.ports import WorldFacts
from tools.reference_server import DEFAULT_WORLD, serve_in_thread
from tools.registry import ToolBox
from tools.simulated import SimulatedBackend

_EXAMPLES = Path(__file__).parent / "data" / "examples.jsonl"
KINDS = ("inventory.reserve", "notify.send", "replay", "orders.get", "facts.view")


def _seed(engine_url: str) -> tuple[Order, World]:
    case = next(
        json.loads(line)
        for line in _EXAMPLES.read_text(encoding="utf-8").splitlines()
        if "EX-inject-stock-012" in line
    )
    world, order = World.model_validate(case["world"]), Order.model_validate(case["order"])
    world = world.model_copy(
        update={"inventory": [r.model_copy(update={"on_hand": 10**6}) for r in world.inventory]}
    )
    engine = make_engine(engine_url)
    upgrade(engine)
    WorldRows(engine).load(DEFAULT_WORLD, world)
    OrderBook(engine).submit(DEFAULT_WORLD, order)
    engine.dispose()
    return order, world


def _timed(calls: int, rounds: int, toolbox: ToolBox, facts: WorldFacts, order: Order) -> dict:
    reserve = Action(
        tool="inventory",
        op="reserve",
        args={"warehouse_id": "WH-SZX", "sku": "HDP-BT-200", "qty": 1},
    )
    send = Action(tool="notify", op="send", args={"order_id": order.order_id, "template": "t"})
    toolbox.call(send, key="bench:repeat")
    runs: dict[str, Callable[[], object]] = {
        "inventory.reserve": lambda: toolbox.call(reserve, key=f"bench:{uuid.uuid4().hex}"),
        "notify.send": lambda: toolbox.call(send, key=f"bench:{uuid.uuid4().hex}"),
        "replay": lambda: toolbox.call(send, key="bench:repeat"),
        "orders.get": lambda: toolbox.orders.get(order.order_id),
        "facts.view": lambda: facts.view(order),
    }
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(rounds):
        for kind, run in runs.items():
            for _ in range(calls):
                start = time.perf_counter()
                run()
                times[kind].append((time.perf_counter() - start) * 1000)
    return {kind: statistics.median(values) for kind, values in times.items()}


def http_figures(calls: int = 100, rounds: int = 3) -> dict[str, float]:
    """``tools.<kind>.simulated_ms``, ``tools.<kind>.http_ms`` and ``tools.<kind>.ratio``."""
    with tempfile.TemporaryDirectory() as folder:
        sim_url = f"sqlite:///{Path(folder) / 'desk.db'}"
        shop_url = f"sqlite:///{Path(folder) / 'shop.db'}"
        order, _ = _seed(sim_url)
        _seed(shop_url)
        sim_engine, shop_engine = make_engine(sim_url), make_engine(shop_url)
        simulated = SimulatedBackend(sim_engine, DEFAULT_WORLD)
        local = _timed(calls, rounds, simulated.toolbox(), simulated.facts, order)
        with serve_in_thread(shop_engine) as served:
            shop = HttpShop(dict.fromkeys(PORTS, served.url))
            ports = shop.backends(DEFAULT_WORLD)
            facts = ports.pop("facts")
            remote = _timed(calls, rounds, ToolBox(**ports), facts, order)
            shop.close()
        sim_engine.dispose()
        shop_engine.dispose()
    out: dict[str, float] = {}
    for kind in KINDS:
        out[f"tools.{kind}.simulated_ms"] = round(local[kind], 3)
        out[f"tools.{kind}.http_ms"] = round(remote[kind], 3)
        out[f"tools.{kind}.ratio"] = round(remote[kind] / local[kind], 2)
    return out


def figures(quick: bool) -> dict[str, float]:
    """For ``exdesk bench``: medians over every call of a kind, 3 rounds."""
    return http_figures(calls=20 if quick else 100, rounds=3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_tools")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    figures = http_figures(args.calls, args.repeat)
    print(f"{'call':<20}{'simulated ms':>14}{'HTTP ms':>10}{'ratio':>8}")
    for kind in KINDS:
        print(
            f"{kind:<20}{figures[f'tools.{kind}.simulated_ms']:>14.2f}"
            f"{figures[f'tools.{kind}.http_ms']:>10.2f}{figures[f'tools.{kind}.ratio']:>8.2f}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
