"""The case-memory backends the conformance suite runs on, each opened on a fresh store.

- ``edge``: Qdrant's embedded engine held open in this process (an eval's memory);
- ``shared-host``: the shared data-dir folder, hosted by this process;
- ``shared-client``: the same, hosted by another process (``host_helper``): every call
  crosses the Unix socket;
- ``qdrant-memory`` / ``qdrant-path``: qdrant-client's local mode, in memory and in a folder:
  the same client calls as against a server;
- ``qdrant-server``: a real Qdrant server at ``EXDESK_TEST_QDRANT_URL`` (skipped when unset:
  none can run on this machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from knowledge.embedder import Embedder
from knowledge.engines import EdgeEngine, Engine, ServerEngine
from knowledge.memory import CaseStore
from knowledge.shared import SharedFolderMemory
from knowledge.store import QdrantCaseMemory

NAMES = ["edge", "shared-host", "shared-client", "qdrant-memory", "qdrant-path", "qdrant-server"]
SERVER_URL = os.environ.get("EXDESK_TEST_QDRANT_URL")
ROOT = Path(__file__).resolve().parents[2]


class HostProcess:
    """The other process of ``shared-client``: hosts the folders it is given."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.knowledge.host_helper"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def host(self, folder: Path) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{folder}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == f"hosting {folder}", answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Backend:
    """Case memories on one store: every ``open`` reaches the same cases."""

    def __init__(self, name: str, tmp: Path, host: HostProcess | None) -> None:
        self.name = name
        self.tmp = tmp
        self.opened: list[CaseStore] = []
        self._engine: Engine | None = None
        self._client: Any = None
        self._collection = f"conformance_{uuid.uuid4().hex[:12]}"
        if name == "shared-client":
            assert host is not None
            host.host(tmp / "cases")
        if name == "qdrant-server" and not SERVER_URL:
            pytest.skip("EXDESK_TEST_QDRANT_URL is unset: no Qdrant server to run against")

    def open(self, embedder: Embedder, *, floor: float | None = None) -> CaseStore:
        memory: CaseStore
        if self.name.startswith("shared"):
            memory = SharedFolderMemory(self.tmp / "cases", embedder, timeout=30, floor=floor)
        else:
            memory = QdrantCaseMemory(self._shared_engine(), embedder, floor=floor)
        self.opened.append(memory)
        return memory

    def _shared_engine(self) -> Engine:
        """One engine for every memory opened (the embedded engine and local mode's folder
        allow one opener)."""
        if self._engine is None:
            if self.name == "edge":
                self._engine = EdgeEngine(self.tmp / "shard")
                return self._engine
            if self.name == "qdrant-memory":
                self._client = QdrantClient(location=":memory:")
            elif self.name == "qdrant-path":
                self._client = QdrantClient(path=str(self.tmp / "local"))
            else:
                self._client = QdrantClient(url=SERVER_URL)
            self._engine = ServerEngine(self._client, self._collection)
        return self._engine

    def close(self) -> None:
        if self.name == "qdrant-server" and self._client is not None:
            self._client.delete_collection(self._collection)
        for memory in self.opened:
            if isinstance(memory, SharedFolderMemory):
                memory.close()
        if self._engine is not None:
            self._engine.close()
