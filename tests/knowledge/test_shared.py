"""The shared case-memory folder: one process hosts it, the others are its clients; when the
host closes or dies, another takes over, and nothing acknowledged is lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from domain.models import Kind, Strategy
from knowledge import wire
from knowledge.cases import Outcome, PastCase
from knowledge.embedder import HashEmbedder
from knowledge.errors import CaseMemoryUnavailable
from knowledge.shared import SharedFolderMemory, socket_path
from tests.knowledge.backends import ROOT
from tests.knowledge.support import case

STOCK = [Strategy.REALLOCATE_WAREHOUSE, Strategy.BACKORDER, Strategy.SPLIT_SHIPMENT]


def _many(count: int, prefix: str = "M") -> list[PastCase]:
    return [
        case(f"{prefix}-{i}", Kind.STOCKOUT, f"short at WH-{i % 7} by {i}", Strategy.BACKORDER)
        for i in range(count)
    ]


def test_the_first_user_hosts_and_the_next_is_its_client(
    tmp_path: Path, cases: list[PastCase]
) -> None:
    folder = tmp_path / "cases"
    first, second = (SharedFolderMemory(folder, HashEmbedder(), timeout=5) for _ in range(2))
    try:
        assert second.search(cases[0].summary, kind=cases[0].kind) == []
        assert not folder.exists() and not first.hosting  # nothing stored: nothing opened
        assert first.import_cases(cases) == len(cases)
        assert first.hosting and socket_path(folder).exists()
        assert second.search(cases[0].summary, kind=cases[0].kind)[0]["case_id"] == "C-1"
        assert not second.hosting  # it asked the host
        assert second.learn(case("L-1", Kind.STOCKOUT, "learned", Strategy.BACKORDER))
        assert first.count() == len(cases) + 1
        assert second.record_outcome("L-1", Outcome(success=False))
        assert [a[0]["success"] for a in first.search_many([("learned", Kind.STOCKOUT)])] == [False]
        assert [c["case_id"] for c in second.cases(["L-1", "NO-SUCH", "C-1"])] == ["L-1", "C-1"]
        second.reset()
        assert first.count() == 0 and second.count() == 0
    finally:
        first.close()
        second.close()


def test_a_host_that_closes_hands_over(tmp_path: Path, cases: list[PastCase]) -> None:
    folder = tmp_path / "cases"
    host = SharedFolderMemory(folder, HashEmbedder(), timeout=5)
    client = SharedFolderMemory(folder, HashEmbedder(), timeout=5)
    host.import_cases(cases)
    assert client.count() == len(cases) and not client.hosting
    host.close()
    assert not socket_path(folder).exists()
    try:
        assert client.count() == len(cases)  # its connection broke: it took over
        assert client.hosting
        assert host.count() == len(cases) and not host.hosting  # now the client of the other
    finally:
        host.close()
        client.close()


def _host_process(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.knowledge.host_helper"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(f"{folder}\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == f"hosting {folder}"
    return proc


def test_a_host_killed_mid_import_loses_nothing_acknowledged(tmp_path: Path) -> None:
    folder = tmp_path / "cases"
    proc = _host_process(folder)
    client = SharedFolderMemory(folder, HashEmbedder(), timeout=30)
    try:
        first = _many(600, "A")
        assert client.import_cases(first) == 600  # through the other process
        assert not client.hosting
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # the next requests find the host gone, take the lock it held and go on
        second = _many(600, "B")
        assert client.import_cases(second) == 600
        assert client.hosting
        assert client.count() == 1200
        found = client.evidence("short at WH-3 by 3", Kind.STOCKOUT, STOCK)
        assert found and all(c["strategy"] == "backorder" for c in found)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_host_killed_while_clients_search_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "cases"
    importer = SharedFolderMemory(folder, HashEmbedder())
    importer.import_cases(_many(50))
    importer.close()
    proc = _host_process(folder)
    clients = [SharedFolderMemory(folder, HashEmbedder(), timeout=30) for _ in range(3)]
    try:
        assert [c.count() for c in clients] == [50, 50, 50]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert [c.count() for c in clients] == [50, 50, 50]
        assert sum(c.hosting for c in clients) == 1  # exactly one took over
    finally:
        for c in clients:
            c.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_folder_locked_by_another_waits_a_bounded_time(
    tmp_path: Path, cases: list[PastCase]
) -> None:
    folder = tmp_path / "cases"
    writer = SharedFolderMemory(folder, HashEmbedder())
    writer.import_cases(cases)
    writer.close()
    patient = SharedFolderMemory(folder, HashEmbedder(), timeout=0.3)
    holder = FileLock(str(folder.with_name("cases.lock")))
    with holder:  # held, and nobody answers on the socket (an older exdesk, say)
        started = time.perf_counter()
        with pytest.raises(CaseMemoryUnavailable, match="busy for 0 s"):
            patient.search(cases[0].summary)
        assert time.perf_counter() - started < 5
    try:
        assert patient.search(cases[0].summary)
    finally:
        patient.close()


def test_a_long_data_dir_puts_the_socket_in_a_private_folder(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90) / "cases"
    deep.parent.mkdir(parents=True)
    address = socket_path(deep)
    assert address.parent != deep.parent and len(os.fsencode(str(address))) <= 100
    assert address.parent.stat().st_mode & 0o077 == 0
    assert socket_path(deep) == address  # the same folder, the same socket
    memory = SharedFolderMemory(deep, HashEmbedder())
    other = SharedFolderMemory(deep, HashEmbedder())
    try:
        memory.import_cases(_many(3))
        assert other.count() == 3 and not other.hosting
    finally:
        memory.close()
        other.close()


def test_a_malformed_request_is_answered_and_the_host_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "cases"
    memory = SharedFolderMemory(folder, HashEmbedder())
    memory.import_cases(_many(3))
    try:
        for header in ({"op": "drop_everything", "embedder": "hash-256"}, {"op": "count"}):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(socket_path(folder)))
                wire.send(sock, header)
                answer, _ = wire.receive(sock)
                assert "error" in answer and "ok" not in answer
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(socket_path(folder)))
            sock.sendall(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # a 4 GiB header: refused unread
            answer, _ = wire.receive(sock)
            assert "too large" in answer["error"]
        assert memory.count() == 3
    finally:
        memory.close()


def _worker(folder: str, worker: int) -> int:
    memory = SharedFolderMemory(Path(folder), HashEmbedder(), timeout=60)
    try:
        for i in range(5):
            memory.learn(
                case(
                    f"W{worker}-{i}", Kind.STOCKOUT, f"short at WH-{worker} {i}", Strategy.BACKORDER
                )
            )
            memory.evidence(f"short at WH-{worker}", Kind.STOCKOUT, STOCK)
        return memory.count()
    finally:
        memory.close()


def test_several_processes_share_one_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cases"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        counts = pool.starmap(_worker, [(str(folder), w) for w in range(3)])
    assert all(5 <= n <= 15 for n in counts)
    last = SharedFolderMemory(folder, HashEmbedder())
    try:
        assert last.count() == 15
    finally:
        last.close()
