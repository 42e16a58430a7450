"""Several writers at once make one valid chain (threads, processes, both databases), and
writers that meet a held lock wait their turn."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine

from audit.errors import AuditError
from audit.keys import KeyFile, StaticKey, load_or_create_signing_key
from audit.log import AuditLog
from store.migrate import upgrade
from tests.audit.conftest import Database

PER_WRITER = 200


def _append(audit: AuditLog, writer: str, barrier: Any, batch: int = 1) -> None:
    items = [(writer, "test.append", {"n": n}) for n in range(PER_WRITER)]
    barrier.wait()
    for start in range(0, PER_WRITER, batch):
        audit.append_many(items[start : start + batch])


def _check(audit: AuditLog, writers: list[str], batch: int = 1) -> None:
    result = audit.verify()
    assert result.ok, result.problem
    assert result.count == PER_WRITER * len(writers)
    # every commit signed the tree it made: as many checkpoints as commits, none unsigned
    assert result.checkpointed_seq == result.count
    commits = -(-PER_WRITER // batch) * len(writers)
    sizes = [c.size for c in audit.checkpoints()]
    assert len(sizes) == commits and sizes == sorted(set(sizes))
    entries = list(audit.entries())
    for writer in writers:
        assert [e.payload["n"] for e in entries if e.actor == writer] == list(range(PER_WRITER))


def test_threads_appending_at_once_make_one_chain(log: AuditLog) -> None:
    writers = ["tool:a", "tool:b"]
    barrier = threading.Barrier(len(writers))
    threads = [threading.Thread(target=_append, args=(log, w, barrier)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check(log, writers)


def _process_main(database: Database, writer: str, barrier: Any, batch: int, key: Path) -> None:
    engine = database.engine()
    try:
        _append(AuditLog(engine, signer=KeyFile(key)), writer, barrier, batch)
    finally:
        engine.dispose()


@pytest.mark.parametrize("batch", [1, 7])
def test_processes_appending_at_once_make_one_chain(
    database: Database, engine: Any, tmp_path: Path, batch: int
) -> None:
    key = tmp_path / "keys" / "audit-signing-key.pem"
    log = AuditLog(engine, signer=StaticKey(load_or_create_signing_key(key)))
    upgrade(engine)
    writers = ["process:a", "process:b"]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(writers))
    processes = [
        context.Process(target=_process_main, args=(database, w, barrier, batch, key))
        for w in writers
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    _check(log, writers, batch)


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    holder.execute("COMMIT")
    holder.close()


def _impatient_log(tmp_path: Path) -> AuditLog:
    # the app's engine waits 30 s for a lock; this one gives up after 50 ms
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}", connect_args={"timeout": 0.05})
    audit = AuditLog(engine, signer=StaticKey(Ed25519PrivateKey.generate()))
    upgrade(engine)
    return audit


def test_a_batch_that_times_out_on_the_lock_is_tried_again(tmp_path: Path) -> None:
    audit = _impatient_log(tmp_path)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(tmp_path / "audit.db", 0.2, locked))
    holder.start()
    locked.wait()
    entries = audit.append_many([("agent", "e", {"i": i}) for i in range(3)])
    holder.join()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert audit.verify().ok


def test_a_lock_held_too_long_fails_with_advice(tmp_path: Path) -> None:
    audit = _impatient_log(tmp_path)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(tmp_path / "audit.db", 1.5, locked))
    holder.start()
    locked.wait()
    with pytest.raises(AuditError, match=r"none was written .*held the log for all 5 attempts"):
        audit.append("agent", "e", {})
    holder.join()
    assert audit.head()[0] == 0
