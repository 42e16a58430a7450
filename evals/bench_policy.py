"""Benchmark: what policy versions cost (issue 15), on the embedded defaults (SQLite).

    python -m evals.bench_policy [--quick]

- ``policy.refresh_us``: ``Exdesk.refresh_policy`` when nothing changed, the one query every
  order pays to learn whether another version was put in force (microseconds a call);
- ``policy.activate_ms_empty``: an activation with no open proposal (the baseline);
- ``policy.activate_ms_open``: the same activation with open proposals (HS codes to fix,
  waiting for approvals) whose orders it moves to the new version: each is decided again
  from its recorded inputs and kept (``service.policy_rebind``), in the change's transaction;
- ``policy.rebind_ms_per_proposal``: their difference, per open proposal: how much longer an
  activation holds the write lock for each approval it keeps or voids.

Medians of 3 rounds (of 2,000 refreshes; of one activation each, alternating between two
versions that decide these orders the same), measured in the same run. ``--quick``: fewer
open proposals (the JSON says how many).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from domain.models import Order, World
from evals import embedded, peak
from evals.bench_handle import L2_KINDS
from service import policies, usecases
from service.people import add_user
from service.policy_book import shipped_policy
from service.wiring import Exdesk

ROUNDS = 3
REFRESH_CALLS = 2_000


def sizes(quick: bool) -> dict[str, int]:
    return {"open_proposals": 40 if quick else 400, "activations": ROUNDS}


def _other_version() -> str:
    """The shipped policy under another label, with a change that decides no HS code fix
    differently (the duplicate window)."""
    text = shipped_policy().text
    old_label = f'version = "{shipped_policy().policy.version}"'
    assert old_label in text and "window_minutes = 30" in text
    return text.replace(old_label, 'version = "bench-2"').replace(
        "window_minutes = 30", "window_minutes = 31"
    )


def _activations(desk: Exdesk, versions: tuple[int, int], who: object) -> list[float]:
    took = []
    for n in range(ROUNDS):
        start = time.perf_counter()
        policies.activate(desk, versions[n % 2], by=who)  # type: ignore[arg-type]
        took.append((time.perf_counter() - start) * 1000)
    return took


def figures(quick: bool) -> dict[str, float]:
    size = sizes(quick)
    with tempfile.TemporaryDirectory() as data:
        desk = Exdesk(embedded.settings(Path(data)))
        try:
            sam, _ = add_user(desk, "bench", "supervisor")
            other = policies.import_policy(desk, _other_version(), "bench-2.toml", by=sam)
            versions = (other.version.id, desk.policies.state.active)

            rounds = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                for _ in range(REFRESH_CALLS):
                    desk.refresh_policy()
                rounds.append((time.perf_counter() - start) / REFRESH_CALLS * 1e6)
            refresh_us = statistics.median(rounds)

            empty = _activations(desk, versions, sam)  # ends on `other`: even rounds
            usecases.load_world(desk, "peak", World.model_validate(peak.world()))
            made = peak.orders(size["open_proposals"], 1.0, seed=15, prefix="PB", kinds=L2_KINDS)
            for _, body in made:
                usecases.handle(desk, "peak", Order.model_validate(body))
            waiting = len(desk.review.find())
            if waiting < size["open_proposals"]:
                raise RuntimeError(f"{waiting} open proposals, not {size['open_proposals']}")
            opened = _activations(desk, (versions[1], versions[0]), sam)
            state = desk.policy_store.state()
            assert state is not None
            kept = (policies.change_entry(desk, state) or {}).get("proposals_rebound", 0)
            if kept != waiting:
                raise RuntimeError(f"the last activation kept {kept} of {waiting} proposals")
        finally:
            desk.close()
    empty_ms, open_ms = statistics.median(empty), statistics.median(opened)
    return {
        "policy.refresh_us": refresh_us,
        "policy.activate_ms_empty": empty_ms,
        "policy.activate_ms_open": open_ms,
        "policy.rebind_ms_per_proposal": (open_ms - empty_ms) / waiting,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_policy", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(sizes(args.quick))
    for key, value in figures(args.quick).items():
        print(f"{key:<32}{value:>10.2f}")


if __name__ == "__main__":
    main()
