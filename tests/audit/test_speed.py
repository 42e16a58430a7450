"""The audit log keeps up with a busy desk: thousands of entries a second on SQLite.

Timings on a shared machine are noisy, so the best of up to three runs counts.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.log import AuditLog
from tests.audit.conftest import make_engine

ENTRIES, BATCH, LIMIT_S, RUNS = 6000, 20, 5.0, 3


def _measure(folder: Path) -> tuple[float, float]:
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'audit.db'}", {})
    log = AuditLog(engine)
    log.create_schema()
    items = [
        ("agent", "finding.detected", {"order_id": f"A-{n}", "kind": "stockout", "qty": n % 7})
        for n in range(ENTRIES)
    ]
    started = time.perf_counter()
    for start in range(0, ENTRIES, BATCH):
        log.append_many(items[start : start + BATCH])
    appended = time.perf_counter() - started
    log.checkpoint(Ed25519PrivateKey.generate())

    started = time.perf_counter()
    result = log.verify()
    verified = time.perf_counter() - started
    engine.dispose()
    assert result.ok and result.count == ENTRIES
    return appended, verified


def test_appending_6000_entries_in_batches_of_20_takes_well_under_5_s(tmp_path: Path) -> None:
    runs: list[tuple[float, float]] = []
    while len(runs) < RUNS and (not runs or max(min(runs)) >= LIMIT_S):
        runs.append(_measure(tmp_path / f"run{len(runs)}"))
    appended, verified = min(runs)
    assert appended < LIMIT_S, f"append took {appended:.2f} s at best of {len(runs)}"
    assert verified < LIMIT_S, f"verify took {verified:.2f} s at best of {len(runs)}"
