"""Benchmark: ``exdesk run`` end to end at a peak: generated orders (5% exceptions, one world,
``evals.peak``) decided, stored and audited by the command itself, in a process of its own so
that its peak RSS is its own.

    python -m evals.bench_run [--orders 100000] [--runs 3]

Each run starts from an empty data dir and times the whole command (start-up, loading the
world, every order, the checkpoint), and reads the child's peak RSS from ``wait4``. The
command must exit 0 having handled every order, and ``exdesk audit verify`` of what it wrote
(not timed) must pass. ``run.orders_per_s``, ``run.peak_rss_mb`` and
``run.audit_entries_per_order`` (what the log holds after the run, per order) are medians over
the runs. ``EXDESK_BENCH_RUN_ORDERS`` overrides the size (the JSON says which
size was run).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evals import embedded, peak

EXDESK = str(Path(sys.executable).with_name("exdesk"))
TIMEOUT_S = 4 * 3600


def sizes(quick: bool) -> dict[str, int]:
    orders = int(os.environ.get("EXDESK_BENCH_RUN_ORDERS", 0)) or (300 if quick else 100_000)
    return {"orders": orders, "exception_share_pct": 5, "runs": 1 if quick else 3}


def _waited(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, Any]:
    """The child's wait status and resource usage (its own peak RSS), killing it at the
    deadline."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage
        if time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise RuntimeError(f"exdesk run took longer than {TIMEOUT_S} s: killed")
        time.sleep(0.05)


def one_run(folder: Path, orders: int) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, audit entries) of one ``exdesk run`` of ``folder``'s orders
    on a fresh data dir; then, not timed, ``exdesk audit verify`` of what it wrote must pass."""
    with tempfile.TemporaryDirectory() as data, (Path(data) / "stdout").open("w+") as stdout:
        began = time.perf_counter()
        proc = subprocess.Popen(
            [EXDESK, "run", str(folder / "orders.jsonl"), "--world", str(folder / "world.json")],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env=embedded.environment(Path(data) / "desk"),
        )
        status, usage = _waited(proc, began + TIMEOUT_S)
        took = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        said = stdout.read()
        handled = re.search(r"(\d+) orders handled, (\d+) lines skipped", said)
        if proc.returncode != 0 or handled is None or int(handled[1]) != orders:
            raise RuntimeError(f"exdesk run exited {proc.returncode}: {said[-600:]}")
        verified = subprocess.run(
            [EXDESK, "audit", "verify"],
            capture_output=True,
            text=True,
            env=embedded.environment(Path(data) / "desk"),
            check=False,
        )
    entries = re.search(r"ok: (\d+) entries", verified.stdout)
    if verified.returncode != 0 or entries is None or int(entries[1]) < orders:
        raise RuntimeError(f"exdesk audit verify after the run: {verified.stdout[-600:]}")
    return took, usage.ru_maxrss / 1024, int(entries[1])  # ru_maxrss: KiB on Linux


def figures(quick: bool) -> dict[str, float]:
    size = sizes(quick)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        peak.write(folder, size["orders"], size["exception_share_pct"] / 100)
        runs = [one_run(folder, size["orders"]) for _ in range(size["runs"])]
    return {
        "run.orders_per_s": size["orders"] / statistics.median(r[0] for r in runs),
        "run.peak_rss_mb": statistics.median(r[1] for r in runs),
        "run.audit_entries_per_order": statistics.median(r[2] for r in runs) / size["orders"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_run", description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        made = peak.write(folder, args.orders)
        print(f"exdesk run of {args.orders} orders ({dict(made)}), {args.runs} runs")
        for n in range(args.runs):
            took, rss, entries = one_run(folder, args.orders)
            print(
                f"  run {n + 1}: {took:.1f} s, {args.orders / took:.0f} orders/s, "
                f"peak RSS {rss:.0f} MiB, {entries} audit entries"
            )


if __name__ == "__main__":
    main()
