"""Benchmark: the audit log's append, verify and proofs, each beside a bare baseline measured in
the same run on the same data.

    python -m evals.bench_audit [--entries 100000] [--appends 3000] [--batch 1] [--runs 3]

- append: entries shaped like the agent's (a tool call, an order's findings with personal
  data), one writer and four processes at once, in commits of ``--batch`` entries. Each commit
  makes the entries' canonical JSON, replaces personal values by salted digests, hashes, signs
  a checkpoint (Ed25519) and moves the head. Baseline: a plain INSERT of the same rows (the
  same text) into a table without triggers, in commits of the same size, by as many writers.
- verify: a log of ``--entries`` entries (commits of 20). Baselines: ``hashlib.sha256`` over
  the same entry bytes in memory, and reading the same rows and hashing them (the least any
  check of the database does); for the export, reading its lines and hashing them.
- proofs: an order's bundle (size, and the time ``verify_bundle`` takes), one entry's
  ``tlog-proof``.

SQLite (WAL) always; PostgreSQL too when EXDESK_TEST_DATABASE_URL is set (in a schema of its
own, dropped afterwards; ``--pg-entries`` for its verify log). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from audit.export import verify_export
from audit.keys import KeyFile, StaticKey, load_or_create_signing_key
from audit.log import AuditLog
from audit.models import entry_text
from audit.proof import about_order, build_bundle, tlog_proof, verify_bundle
from audit.verify import Trust
from store.db import in_schema, make_engine, scratch_schema
from store.migrate import upgrade

Opener = Callable[[], AbstractContextManager[str]]
BARE = (
    "CREATE TABLE bare_log (seq BIGINT PRIMARY KEY, at VARCHAR(40) NOT NULL, actor TEXT NOT "
    "NULL, event TEXT NOT NULL, payload TEXT NOT NULL, prev_hash VARCHAR(64) NOT NULL, hash "
    "VARCHAR(64) NOT NULL, idem_key VARCHAR(300) UNIQUE)"
)


def items(count: int, offset: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
    """Entries shaped like the agent's: tool calls and findings, some with personal data."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for n in range(offset, offset + count):
        order_id = f"ORD-{n // 4:07d}"
        if n % 4 == 0:
            payload: dict[str, Any] = {
                "order_id": order_id,
                "kinds": ["stockout"],
                "findings": [
                    {
                        "kind": "stockout",
                        "order_id": order_id,
                        "summary": "WH-SZX cannot ship every line",
                        "evidence": [f"SKU-{n % 97}: 3 short"],
                        "facts": {"short": {f"SKU-{n % 97}": 3}},
                    }
                ],
                "customer": {
                    "id": f"C-{n % 5000}",
                    "tier": "vip",
                    "name": f"Customer {n}",
                    "email": f"c{n}@example.com",
                },
                "ship_to": {
                    "name": f"Customer {n}",
                    "street_address": f"{n} Nanjing Road",
                    "city": "Shanghai",
                    "postal_code": "200000",
                    "country_code": "CN",
                },
            }
            out.append(("agent", "order.detected", payload))
        else:
            step = {
                "tool": "inventory",
                "op": "reserve",
                "key": f"{n:024x}:{n % 3}",
                "args": {
                    "warehouse_id": "WH-SHA",
                    "sku": f"SKU-{n % 97}",
                    "qty": n % 7 + 1,
                    "order_id": order_id,
                },
            }
            if n % 2:
                step["result"] = {"ok": True, "reserved": n % 7 + 1, "available_after": 12.5}
            out.append(("tool:inventory", "tool.called" if n % 2 else "tool.requested", step))
    return out


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'audit.db'}"


@contextmanager
def postgres_url(url: str) -> Iterator[str]:
    with scratch_schema(url, "bench") as schema:
        yield in_schema(url, schema)


def _log(engine: Engine, key: Path) -> AuditLog:
    return AuditLog(engine, signer=KeyFile(key))


# --- append ---------------------------------------------------------------------------------


def _append_worker(
    url: str, key: Path, start: int, count: int, batch: int, bare: bool, barrier: Any, done: Any
) -> None:
    engine = make_engine(url)
    try:
        work = items(count, start)
        rows = _bare_rows(work, start) if bare else []
        log = _log(engine, key)
        barrier.wait()
        began = time.perf_counter()
        for at in range(0, count, batch):
            if bare:
                with engine.begin() as conn:
                    conn.execute(text(_INSERT), rows[at : at + batch])
            else:
                log.append_many(work[at : at + batch])
        done.put(time.perf_counter() - began)
    finally:
        engine.dispose()


_INSERT = (
    "INSERT INTO bare_log (seq, at, actor, event, payload, prev_hash, hash, idem_key) "
    "VALUES (:seq, :at, :actor, :event, :payload, :prev_hash, :hash, :idem_key)"
)


def _bare_rows(work: list[tuple[str, str, dict[str, Any]]], start: int) -> list[dict[str, Any]]:
    """The rows a log would hold for ``work`` (the same text), made beforehand."""
    rows = []
    prev = "0" * 64
    for n, (actor, event, payload) in enumerate(work, start=start + 1):
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        line = entry_text(
            seq=n,
            at="2026-01-01T00:00:00.000000Z",
            actor=actor,
            event=event,
            payload_json=body,
            prev_hash=prev,
        )
        digest = hashlib.sha256(b"\0" + line.encode()).hexdigest()
        rows.append(
            {
                "seq": n,
                "at": "2026-01-01T00:00:00.000000Z",
                "actor": actor,
                "event": event,
                "payload": body,
                "prev_hash": prev,
                "hash": digest,
                "idem_key": None,
            }
        )
        prev = digest
    return rows


def append_run(opener: Opener, count: int, batch: int, writers: int, bare: bool) -> float:
    """Seconds for ``writers`` processes to append ``count`` entries in all (wall clock)."""
    context = multiprocessing.get_context("spawn")
    with opener() as url, tempfile.TemporaryDirectory() as keys:
        key = Path(keys) / "audit-signing-key.pem"
        load_or_create_signing_key(key)
        engine = make_engine(url)
        upgrade(engine)
        if bare:
            with engine.begin() as conn:
                conn.execute(text(BARE))
        engine.dispose()
        barrier, done = context.Barrier(writers + 1), context.Queue()
        share = count // writers
        procs = [
            context.Process(
                target=_append_worker, args=(url, key, w * share, share, batch, bare, barrier, done)
            )
            for w in range(writers)
        ]
        for proc in procs:
            proc.start()
        barrier.wait()
        began = time.perf_counter()
        for _ in procs:
            done.get(timeout=600)
        wall = time.perf_counter() - began
        for proc in procs:
            proc.join()
        if not bare:
            engine = make_engine(url)
            result = AuditLog(engine, signer=KeyFile(key)).verify()
            engine.dispose()
            assert result.ok and result.count == share * writers, result.problem
    return wall


# --- verify ----------------------------------------------------------------------------------


def build_log(engine: Engine, count: int) -> AuditLog:
    key = StaticKey(load_or_create_signing_key(Path(tempfile.mkdtemp()) / "k.pem"))
    log = AuditLog(engine, signer=key)
    upgrade(engine)
    work = items(count)
    for start in range(0, count, 20):
        log.append_many(work[start : start + 20])
    return log


def verify_runs(log: AuditLog, engine: Engine, runs: int) -> dict[str, float]:
    trust = _trust(log)
    every = Trust(keys=trust.keys, all_signatures=True)
    rows = _entry_bytes(engine)
    export = io.StringIO()
    log.export(export)
    lines = export.getvalue().splitlines(keepends=True)
    timings: dict[str, list[float]] = {
        k: []
        for k in (
            "verify",
            "verify_all_signatures",
            "bare_sha256",
            "read_and_sha256",
            "verify_export",
            "export_lines_sha256",
        )
    }
    for _ in range(runs):
        timings["verify"].append(_timed(lambda: _ok(log.verify(trust))))
        timings["verify_all_signatures"].append(_timed(lambda: _ok(log.verify(every))))
        timings["bare_sha256"].append(_timed(lambda: [hashlib.sha256(r).digest() for r in rows]))
        timings["read_and_sha256"].append(_timed(lambda: _read_and_hash(engine)))
        timings["verify_export"].append(_timed(lambda: _ok(verify_export(lines, trust))))
        timings["export_lines_sha256"].append(
            _timed(lambda: [hashlib.sha256(line.encode()).digest() for line in lines])
        )
    return {k: statistics.median(v) for k, v in timings.items()}


def _trust(log: AuditLog) -> Trust:
    key = log.verifier()
    assert key is not None
    return Trust(keys=(key,))


def _ok(result: Any) -> None:
    assert result.ok, result.problem


def _timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def _entry_bytes(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT seq, at, actor, event, payload, prev_hash FROM audit_log ORDER BY seq")
        ).all()
    return [
        b"\0"
        + entry_text(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            event=r.event,
            payload_json=r.payload,
            prev_hash=r.prev_hash,
        ).encode()
        for r in rows
    ]


def _read_and_hash(engine: Engine) -> None:
    query = text(
        "SELECT seq, at, actor, event, payload, prev_hash, hash FROM audit_log ORDER BY seq"
    )
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=1000).execute(query):
            hashlib.sha256(
                b"\0" + f"{r.seq}{r.at}{r.actor}{r.event}{r.payload}{r.prev_hash}".encode()
            ).digest()


def proof_figures(log: AuditLog, runs: int) -> dict[str, float]:
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None
    order_id = "ORD-0012345" if checkpoint.size > 50000 else "ORD-0000123"
    chosen = about_order(log.entries(), order_id)
    began = time.perf_counter()
    leaves = log.leaf_hashes(checkpoint.size)
    bundle = build_bundle(chosen, leaves, checkpoint, order_id)
    build = time.perf_counter() - began
    body = json.dumps(bundle)
    trust = _trust(log)
    times = []
    for _ in range(max(runs, 5)):
        began = time.perf_counter()
        result = verify_bundle(body, trust)
        times.append(time.perf_counter() - began)
        assert result.ok, result.problem
    item = bundle["entries"][0]
    one = tlog_proof(item["index"], [b"\0" * 32] * len(item["proof"]), bundle["checkpoint"])
    return {
        "entries": len(bundle["entries"]),
        "hashes_per_proof": len(item["proof"]),
        "bundle_bytes": len(body.encode()),
        "tlog_proof_bytes": len(one.encode()),
        "build_s": build,
        "verify_s": statistics.median(times),
    }


# --- figures (exdesk bench) ------------------------------------------------------------------

APPEND_BATCH = 100  # entries a commit, as a batch of orders appends them


def sizes(quick: bool) -> dict[str, int]:
    return {
        "append_entries": 2_000 if quick else 20_000,
        "append_batch": APPEND_BATCH,
        "verify_entries": 5_000 if quick else 100_000,
        "runs": 3,
    }


def append_once(count: int, batch: int, bare: bool) -> float:
    """Seconds for one writer in this process to append ``count`` entries to a fresh SQLite
    log in commits of ``batch`` (``bare``: plain INSERTs of the same rows, no log)."""
    with sqlite_url() as url, tempfile.TemporaryDirectory() as keys:
        engine = make_engine(url)
        try:
            upgrade(engine)
            work = items(count)
            if bare:
                with engine.begin() as conn:
                    conn.execute(text(BARE))
                rows = _bare_rows(work, 0)
                began = time.perf_counter()
                for at in range(0, count, batch):
                    with engine.begin() as conn:
                        conn.execute(text(_INSERT), rows[at : at + batch])
                return time.perf_counter() - began
            key = Path(keys) / "audit-signing-key.pem"
            load_or_create_signing_key(key)
            log = _log(engine, key)
            began = time.perf_counter()
            for at in range(0, count, batch):
                log.append_many(work[at : at + batch])
            took = time.perf_counter() - began
            _ok(log.verify(_trust(log)))
            return took
        finally:
            engine.dispose()


def figures(quick: bool) -> dict[str, float]:
    """``audit.append_per_s`` beside ``audit.append_baseline_per_s`` (one writer, SQLite,
    commits of APPEND_BATCH entries; the baseline is a bare batched INSERT of the same rows),
    ``audit.verify_per_s`` beside ``audit.verify_baseline_per_s`` (reading the same rows and
    SHA-256 over their bytes). Medians of 3 runs, interleaved with their baselines."""
    size = sizes(quick)
    count, entries, runs = size["append_entries"], size["verify_entries"], size["runs"]
    ours, bare = [], []
    for _ in range(runs):
        ours.append(append_once(count, APPEND_BATCH, bare=False))
        bare.append(append_once(count, APPEND_BATCH, bare=True))
    with sqlite_url() as url:
        engine = make_engine(url)
        try:
            log = build_log(engine, entries)
            trust = _trust(log)
            verify, read = [], []
            for _ in range(runs):
                verify.append(_timed(lambda: _ok(log.verify(trust))))
                read.append(_timed(lambda: _read_and_hash(engine)))
        finally:
            engine.dispose()
    return {
        "audit.append_per_s": count / statistics.median(ours),
        "audit.append_baseline_per_s": count / statistics.median(bare),
        "audit.verify_per_s": entries / statistics.median(verify),
        "audit.verify_baseline_per_s": entries / statistics.median(read),
    }


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="audit log: append, verify, proofs")
    parser.add_argument("--entries", type=int, default=100_000, help="entries of the verify log")
    parser.add_argument("--pg-entries", type=int, default=20_000)
    parser.add_argument("--appends", type=int, default=3000, help="entries appended per run")
    parser.add_argument("--batch", type=int, default=1, help="entries per commit when appending")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = max(1, min(args.runs, 20))
    targets: dict[str, tuple[Opener, int]] = {"sqlite": (sqlite_url, args.entries)}
    url = os.environ.get("EXDESK_TEST_DATABASE_URL")
    if url:
        targets["postgresql"] = (lambda: postgres_url(url), args.pg_entries)
    print(f"audit log, medians of {runs} runs")
    for name, (opener, entries) in targets.items():
        print(f"  {name}: append {args.appends} entries, {args.batch} per commit")
        for writers in (1, 4):
            ours = statistics.median(
                append_run(opener, args.appends, args.batch, writers, False) for _ in range(runs)
            )
            bare = statistics.median(
                append_run(opener, args.appends, args.batch, writers, True) for _ in range(runs)
            )
            print(
                f"    {writers} writer{'s' if writers > 1 else ' '}  "
                f"log {args.appends / ours:7.0f} entries/s   "
                f"bare INSERT {args.appends / bare:7.0f}/s   "
                f"log = {bare / ours:5.1%} of bare"
            )
        with opener() as db_url:
            engine = make_engine(db_url)
            began = time.perf_counter()
            log = build_log(engine, entries)
            built = time.perf_counter() - began
            figures = verify_runs(log, engine, runs)
            proofs = proof_figures(log, runs)
            engine.dispose()
        rate = {k: entries / v for k, v in figures.items()}
        print(f"  {name}: verify {entries} entries (built in {built:.1f} s, commits of 20)")
        print(
            f"    verify (database)      {rate['verify']:9.0f} entries/s   "
            f"= {figures['bare_sha256'] / figures['verify']:5.1%} of bare sha256 "
            f"({rate['bare_sha256']:.0f}/s), "
            f"{figures['read_and_sha256'] / figures['verify']:5.1%} of read+sha256 "
            f"({rate['read_and_sha256']:.0f}/s)"
        )
        print(
            f"    verify, every signature {rate['verify_all_signatures']:8.0f} entries/s   "
            f"= {figures['bare_sha256'] / figures['verify_all_signatures']:5.1%} of bare sha256"
        )
        print(
            f"    verify-export          {rate['verify_export']:9.0f} entries/s   "
            f"= {figures['bare_sha256'] / figures['verify_export']:5.1%} of bare sha256, "
            f"{figures['export_lines_sha256'] / figures['verify_export']:5.1%} of hashing the "
            f"export's lines ({rate['export_lines_sha256']:.0f}/s)"
        )
        print(
            f"    proof bundle: {proofs['entries']:.0f} entries, {proofs['hashes_per_proof']:.0f} "
            f"hashes a proof, {proofs['bundle_bytes'] / 1024:.1f} KiB "
            f"(one tlog-proof {proofs['tlog_proof_bytes']:.0f} B); built in "
            f"{proofs['build_s'] * 1000:.0f} ms, verified in {proofs['verify_s'] * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()
