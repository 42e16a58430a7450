"""Benchmark: appending to and verifying the audit log.

    python -m evals.bench_audit [--entries 6000] [--batch 20] [--runs 5]

SQLite (WAL) always; PostgreSQL too when EXDESK_TEST_DATABASE_URL is set (in a schema of
its own, dropped afterwards). Prints medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from audit.log import AuditLog
from store.db import in_schema, make_engine, scratch_schema
from store.migrate import upgrade


@contextmanager
def sqlite_engine() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
        yield engine
        engine.dispose()


@contextmanager
def postgres_engine(url: str) -> Iterator[Engine]:
    with scratch_schema(url, "bench") as schema:
        engine = make_engine(in_schema(url, schema))
        yield engine
        engine.dispose()


Opener = Callable[[], AbstractContextManager[Engine]]


def one_run(open_engine: Opener, entries: int, batch: int) -> tuple[float, float]:
    items = [
        ("agent", "finding.detected", {"order_id": f"A-{n}", "kind": "stockout", "qty": n % 7})
        for n in range(entries)
    ]
    with open_engine() as engine:
        log = AuditLog(engine)
        upgrade(engine)
        started = time.perf_counter()
        for start in range(0, entries, batch):
            log.append_many(items[start : start + batch])
        appended = time.perf_counter() - started
        key = Ed25519PrivateKey.generate()
        log.checkpoint(key)
        started = time.perf_counter()
        result = log.verify(key.public_key())
        verified = time.perf_counter() - started
    assert result.ok and result.count == entries, result
    return appended, verified


def main() -> None:
    parser = argparse.ArgumentParser(description="audit log append and verify")
    parser.add_argument("--entries", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    targets: dict[str, Opener] = {"sqlite": sqlite_engine}
    url = os.environ.get("EXDESK_TEST_DATABASE_URL")
    if url:
        targets["postgresql"] = lambda: postgres_engine(url)
    print(
        f"audit log: {args.entries} entries in batches of {args.batch}, median of {args.runs} runs"
    )
    for name, opener in targets.items():
        runs = [
            one_run(opener, args.entries, args.batch) for _ in range(max(1, min(args.runs, 20)))
        ]
        append = statistics.median(r[0] for r in runs)
        verify = statistics.median(r[1] for r in runs)
        print(
            f"  {name:<10} append {append:6.2f} s ({args.entries / append:7.0f} entries/s)   "
            f"verify {verify:5.2f} s ({args.entries / verify:7.0f} entries/s)"
        )


if __name__ == "__main__":
    main()
