"""Benchmark: screening clean orders, beside parsing the same file into the domain model only,
in the same run.

    python -m evals.bench_screen [--orders 100000] [--runs 3]

A file of clean orders (``evals.peak``, no exceptions, one world) is read line by line; each
order is parsed (``Order.model_validate_json``) and screened by the fast path's own
``agent.screen.Screener`` (its view of the world snapshot, every detector), with the policy and
the checkers built once, as ``exdesk run`` does for a batch. It must find nothing. The baseline
reads and parses the same file and does nothing else.

- ``screen.orders_per_s``: the screening rate of the large file (100,000 orders);
- ``screen.baseline_parse_per_s``: the parse-only rate of the same file;
- ``screen.rate_1k_per_s`` and ``screen.rate_100k_per_s``: the screening rate of a 1,000-order
  file and of the large one (their ratio says whether the rate holds as a file grows).

Medians of 3 runs, interleaved. ``--quick``: 10,000 orders for the large file (the JSON says so).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agent.context import Checkers
from agent.screen import Screener
from domain.models import Order, World
from domain.policy import Policy
from evals import peak
from service.wiring import load_policy
from store.world import WorldSnapshot
from tools.address import I18nAddressRules
from tools.hs_codes import HsCodes


def sizes(quick: bool) -> dict[str, int]:
    return {"small": 1_000, "large": 10_000 if quick else 100_000, "runs": 3}


class _Held:
    """World facts held in memory, as the store's snapshot holds them for a batch."""

    def __init__(self, world: World) -> None:
        self._snapshot = WorldSnapshot.build("bench", 0, world)

    def view(self, order: Order) -> World:
        return self._snapshot.view(order)

    def snapshot(self) -> WorldSnapshot:
        return self._snapshot


class Screen:
    """What a batch loads once: the world, the policy and the checkers."""

    def __init__(self, world: World, policy: Policy) -> None:
        self.policy = policy
        self.screener = Screener(_Held(world), Checkers(address=I18nAddressRules(), hs=HsCodes()))

    def file(self, path: Path) -> int:
        """Screen every order of ``path``; returns how many had a finding."""
        found = 0
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                order = Order.model_validate_json(line)
                if not self.screener.screen(order, self.policy).clean:
                    found += 1
        return found


def parse_file(path: Path) -> int:
    count = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            Order.model_validate_json(line)
            count += 1
    return count


def _write(folder: Path, count: int) -> Path:
    folder.mkdir()
    peak.write(folder, count, exceptions=0.0)
    return folder / "orders.jsonl"


def _timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def figures(quick: bool) -> dict[str, float]:
    size = sizes(quick)
    with tempfile.TemporaryDirectory() as tmp:
        small, large = (
            _write(Path(tmp) / "small", size["small"]),
            _write(Path(tmp) / "large", size["large"]),
        )
        world = World.model_validate_json((large.parent / "world.json").read_bytes())
        screen = Screen(world, load_policy(None))
        if screen.file(small):
            raise RuntimeError(
                "clean orders had findings: the generator and the detectors disagree"
            )
        times: dict[str, list[float]] = {"small": [], "large": [], "parse": []}
        for _ in range(size["runs"]):
            times["small"].append(_timed(lambda: screen.file(small)))
            times["large"].append(_timed(lambda: screen.file(large)))
            times["parse"].append(_timed(lambda: parse_file(large)))
    rate = {
        k: (size["small"] if k == "small" else size["large"]) / statistics.median(v)
        for k, v in times.items()
    }
    return {
        "screen.orders_per_s": rate["large"],
        "screen.baseline_parse_per_s": rate["parse"],
        "screen.rate_1k_per_s": rate["small"],
        "screen.rate_100k_per_s": rate["large"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_screen", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for key, value in figures(args.quick).items():
        print(f"{key:<30}{value:>12,.0f}")


if __name__ == "__main__":
    main()
