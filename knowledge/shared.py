"""The embedded case memory that every exdesk process on one data dir shares.

Qdrant's embedded engine lets one process open a shard at a time (its WAL is locked), and
opening it costs a fraction of a second at 10k cases. So the first process that needs the
memory becomes its host: it takes the folder's lock (``cases.lock``, held for as long as it
serves), opens the shard once and keeps it open, and listens on a Unix socket beside it
(``cases.sock``). Every other process is a client of that socket: it embeds its texts itself
and sends vectors. The host starts requests in the order they arrived (a FIFO, its own
process's in the same line: a process searching back to back gets one turn per request,
never a stream of them), a few at once, each on the thread that received it (no hand-over
to a pool: under load every wake-up of another thread costs scheduling latency), so that
one request's reading and answering overlap another's search. The searches themselves run
one after another: qdrant-edge-py (0.9.0) holds the GIL while it searches, so one host
serves one search at a time, whatever the cores. Writes go one at a time beside them, and
an import is sent in chunks of ``WRITE_CHUNK`` cases, so no write holds a search
back for long.

When the host closes its memory (a run ends) or dies (SIGKILL included: the kernel releases
its lock and its connections), its clients see the connection fail, and the first of them to
take the lock becomes the host; requests that were in flight are sent again to it. Every
request is safe to repeat (writes are upserts by case id). A process that can neither reach
a host nor take the lock within ``timeout`` seconds gets ``CaseMemoryUnavailable``.

Unix only (``fcntl``, ``AF_UNIX``). The socket accepts only processes of the same user.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from knowledge import wire
from knowledge.cases import PastCase
from knowledge.embedder import Embedder
from knowledge.engines import EdgeEngine
from knowledge.errors import CaseMemoryUnavailable
from knowledge.memory import SimilarCase
from knowledge.store import (
    DEFAULT_RERANK,
    EngineOperations,
    MemoryBase,
    case_text,
    check_rerank,
    default_floor,
    points_of,
)

WRITE_CHUNK = 256  # cases per write request: what a search may have to wait behind
_POLL_S = 0.002
_SOCKET_PATH_LIMIT = 100  # bytes; AF_UNIX paths are limited to 108 on Linux


def socket_path(folder: Path) -> Path:
    """Where the host of ``folder`` listens: beside it, or, when that path is too long for a
    Unix socket, in a private folder of this user's under the temporary directory."""
    beside = folder.with_name(folder.name + ".sock")
    if len(os.fsencode(str(beside))) <= _SOCKET_PATH_LIMIT:
        return beside
    digest = hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:24]
    private = Path(tempfile.gettempdir()) / f"exdesk-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid() or private.stat().st_mode & 0o077:
        raise CaseMemoryUnavailable(
            f"{private} is not a private folder of this user's (it holds the case memory's "
            "socket when the data dir's path is long); remove it, or use a shorter EXDESK_DATA_DIR"
        )
    return private / f"{digest}.sock"


def _try_lock(path: Path) -> IO[bytes] | None:
    """The lock file, locked by this process, or None when another process holds it."""
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _peer_uid(conn: socket.socket) -> int | None:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # not Linux: the socket file's mode (0600) guards it
        return None
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, 12))
    return int(uid)


READS = frozenset({"query", "cases", "count"})
WRITES = frozenset({"upsert", "record_outcome"})


class _Line:
    """Requests start in the order they arrived, at most ``width`` at once, each on the thread
    that brought it. Once closed, nobody new gets in (``RuntimeError``); those already in line
    still run, and ``close`` returns when the last of them is done."""

    def __init__(self, width: int) -> None:
        self._changed = threading.Condition()
        self._width = width
        self._issued = 0  # tickets handed out
        self._started = 0  # tickets that went in: the next to go is this one
        self._running = 0
        self._closed = False

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._changed:
            if self._closed:
                raise RuntimeError("the case memory's host is closing")
            ticket = self._issued
            self._issued += 1
            self._changed.wait_for(lambda: ticket == self._started and self._running < self._width)
            self._started += 1
            self._running += 1
            self._changed.notify_all()  # the next ticket may go beside this one
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.wait_for(lambda: self._started == self._issued and not self._running)


class _Turns:
    """Who may use the open shard at once: reads together, and with them one write at a time
    (the engine orders a write and the reads beside it); a reset alone."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._using = 0
        self._alone = False
        self._writer = threading.Lock()

    @contextmanager
    def turn(self, op: object) -> Iterator[None]:
        alone = op not in READS and op not in WRITES
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not (alone and self._using))
            self._using += 1
            self._alone = alone
        try:
            if op in WRITES:
                with self._writer:
                    yield
            else:
                yield
        finally:
            with self._changed:
                self._using -= 1
                self._alone = False
                self._changed.notify_all()


def execute(engine: EdgeEngine, where: str, header: Mapping[str, Any], blob: bytes) -> Any:
    """One request on the open engine (the host's side)."""
    op = header.get("op")
    ops = EngineOperations(engine, str(header["embedder"]), where)
    if op == "query":
        vector = wire.blob_vectors(blob, 1, int(header["dim"]))[0]
        filters = [dict(f) for f in header["filters"]]
        floor = header.get("floor")
        return ops.query(vector, filters, int(header["limit"]), None if floor is None else floor)
    if op == "upsert":
        ids, payloads = list(header["ids"]), list(header["payloads"])
        vectors = wire.blob_vectors(blob, len(ids), int(header["dim"]))
        ops.upsert(ids, vectors, payloads)
        return None
    if op == "cases":
        return ops.cases([str(c) for c in header["case_ids"]])
    if op == "record_outcome":
        return ops.record_outcome(str(header["case_id"]), dict(header["fields"]))
    if op == "count":
        return ops.count()
    if op == "reset":
        engine.reset()
        return None
    raise ValueError(f"unknown operation {op!r}")


class _Host:
    """This process holds the folder: its lock, the open shard, and the socket others use."""

    def __init__(self, folder: Path, lock: IO[bytes], address: Path) -> None:
        self.folder = folder
        self.where = f"at {folder}"
        self._lock = lock
        self._address = address
        self._closed = False
        self._connections: set[socket.socket] = set()
        self._guard = threading.Lock()
        self.engine = EdgeEngine(folder)
        self._turns = _Turns()
        # requests start in the order they arrived; reads run side by side on the cores
        self._line = _Line(max(2, min(8, os.cpu_count() or 2)))
        with contextlib.suppress(FileNotFoundError):
            address.unlink()  # a dead host's: the lock says nobody serves it now
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.bind(str(address))
            os.chmod(address, 0o600)
            self._listener.listen(64)
        except OSError as exc:
            self._listener.close()
            self.engine.close()
            raise CaseMemoryUnavailable(
                f"cannot listen on {address} for the case memory ({exc.strerror}); check the "
                "data dir's permissions"
            ) from exc
        threading.Thread(target=self._accept, name="exdesk-cases-accept", daemon=True).start()

    def call(self, header: Mapping[str, Any], blob: bytes) -> Any:
        """Run a request in line with every other (this process's and its clients'), on this
        thread."""
        with self._line.turn(), self._turns.turn(header.get("op")):
            return execute(self.engine, self.where, header, blob)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            uid = _peer_uid(conn)
            if uid is not None and uid != os.getuid():
                conn.close()
                continue
            with self._guard:
                if self._closed:
                    conn.close()
                    return
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                try:
                    header, blob = wire.receive(conn)
                except (wire.Closed, OSError):
                    return
                except ValueError as exc:
                    wire.send(conn, {"error": f"a malformed request ({exc})"})
                    return
                try:
                    answer: dict[str, Any] = {"ok": self.call(header, blob)}
                except RuntimeError:  # the line was shut down: this host is closing
                    return
                except CaseMemoryUnavailable as exc:
                    answer = {"error": str(exc)}
                except (KeyError, TypeError, ValueError) as exc:
                    answer = {"error": f"a malformed request ({type(exc).__name__}: {exc})"}
                wire.send(conn, answer)
        except OSError:
            return
        finally:
            with self._guard:
                self._connections.discard(conn)
            conn.close()

    def close(self) -> None:
        """Stop serving: no new connection, finish what is in line, close the shard, let go of
        the lock (a client then takes over)."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self._address.unlink()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._line.close()
        with self._guard:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        try:
            self.engine.close()
        finally:
            self._lock.close()  # releases the flock


class _Client:
    """A connection to the host."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def call(self, header: Mapping[str, Any], blob: bytes) -> Any:
        wire.send(self.sock, dict(header), blob)
        answer, _ = wire.receive(self.sock)
        if "error" in answer:
            raise CaseMemoryUnavailable(str(answer["error"]))
        return answer.get("ok")

    def close(self) -> None:
        self.sock.close()


class _Remote:
    """The memory's operations, sent to whoever holds the folder (``store.Operations``)."""

    def __init__(self, memory: SharedFolderMemory) -> None:
        self._memory = memory

    def upsert(
        self, ids: Sequence[str], vectors: NDArray[np.float32], payloads: Sequence[dict[str, Any]]
    ) -> None:
        if ids:
            header = {"op": "upsert", "ids": list(ids), "payloads": list(payloads)}
            self._memory.call({**header, "dim": int(vectors.shape[1])}, wire.vectors_blob(vectors))

    def query(
        self,
        vector: NDArray[np.float32],
        filters: Sequence[Mapping[str, Any]],
        limit: int,
        floor: float | None,
    ) -> list[list[SimilarCase]]:
        header = {"op": "query", "filters": [dict(f) for f in filters], "limit": limit}
        header.update(floor=floor, dim=int(vector.shape[-1]))
        found: list[list[SimilarCase]] = self._memory.call(header, wire.vectors_blob(vector))
        return found

    def cases(self, case_ids: Sequence[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._memory.call({"op": "cases", "case_ids": list(case_ids)})
        return found

    def record_outcome(self, case_id: str, fields: dict[str, Any]) -> bool:
        header = {"op": "record_outcome", "case_id": case_id, "fields": fields}
        return bool(self._memory.call(header))

    def count(self) -> int:
        return int(self._memory.call({"op": "count"}))


class SharedFolderMemory(MemoryBase):
    """The embedded case memory in a folder that several processes share (module doc)."""

    def __init__(
        self,
        path: Path,
        embedder: Embedder,
        *,
        timeout: float = 30.0,
        floor: float | None = None,
        rerank: str = DEFAULT_RERANK,
    ) -> None:
        self.path = path
        self.rerank = check_rerank(rerank)
        self.embedder = embedder
        self.timeout = timeout
        self.floor = default_floor(embedder.name) if floor is None else floor
        self.lock_path = path.with_name(path.name + ".lock")
        self._address: Path | None = None
        self._guard = threading.Lock()
        self._host: _Host | None = None
        self._idle: list[_Client] = []
        self._pid = os.getpid()

    @property
    def hosting(self) -> bool:
        """Whether this memory holds the folder open for the others."""
        return self._host is not None

    @contextmanager
    def _session(self) -> Iterator[_Remote]:
        yield _Remote(self)

    def _empty(self) -> bool:
        """No case was ever stored (the folder was never created)."""
        return not (self.path / "edge_config.json").is_file()

    def _busy(self) -> CaseMemoryUnavailable:
        return CaseMemoryUnavailable(
            f"the case memory at {self.path} was busy for {self.timeout:.0f} s (another exdesk "
            "process holds it and did not answer); try again, raise EXDESK_LOCK_TIMEOUT_S, or "
            "run a Qdrant server and set EXDESK_QDRANT_URL"
        )

    def _way_in(self, deadline: float) -> _Host | _Client:
        """This process's host, an idle connection to another's, a new connection, or, when
        nobody serves the folder, a new host here."""
        with self._guard:
            if self._pid != os.getpid():  # forked: the parent's host and sockets are not ours
                self._host, self._idle, self._pid = None, [], os.getpid()
            if self._host is not None:
                return self._host
            if self._idle:
                return self._idle.pop()
            if self._address is None:
                # The data dir holds the lock and the socket even when the store is elsewhere
                # (PostgreSQL): make it, as the folder's first user.
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._address = socket_path(self.path)
            while True:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(self._address))
                except OSError:  # nobody listens (yet, or any more)
                    sock.close()
                else:
                    sock.settimeout(self.timeout)
                    return _Client(sock)
                lock = _try_lock(self.lock_path)
                if lock is not None:
                    try:
                        self._host = _Host(self.path, lock, self._address)
                    except BaseException:
                        lock.close()
                        raise
                    atexit.register(self.close)
                    return self._host
                if time.monotonic() >= deadline:
                    raise self._busy()
                time.sleep(_POLL_S)

    def serve(self) -> bool:
        """Hold the folder open for the other processes now, unless one already does (a
        long-lived process, ``exdesk serve``, does it at start); whether this one hosts it."""
        way = self._way_in(time.monotonic() + self.timeout)
        if isinstance(way, _Client):
            self._keep(way)
            return False
        return True

    def call(self, header: Mapping[str, Any], blob: bytes = b"") -> Any:
        """Run one request on the folder, wherever it is held open; a host that goes away in
        the middle is replaced and the request sent again."""
        request = {**header, "embedder": self.embedder.name}
        deadline = time.monotonic() + self.timeout
        while True:
            way = self._way_in(deadline)
            if isinstance(way, _Host):
                return way.call(request, blob)
            try:
                answer = way.call(request, blob)
            except TimeoutError as exc:
                way.close()
                raise self._busy() from exc
            except (wire.Closed, OSError, ValueError):
                way.close()  # the host went away: take over, or find the new one
                if time.monotonic() >= deadline:
                    raise self._busy() from None
                continue
            except CaseMemoryUnavailable:
                self._keep(way)
                raise
            self._keep(way)
            return answer

    def _keep(self, client: _Client) -> None:
        with self._guard:
            if self._pid == os.getpid():
                self._idle.append(client)
                return
        client.close()

    def import_cases(self, cases: Iterable[PastCase], *, batch_size: int = 256) -> int:
        given = list({case.case_id: case for case in cases}.values())
        remote = _Remote(self)
        for start in range(0, len(given), WRITE_CHUNK):
            chunk = given[start : start + WRITE_CHUNK]
            vectors = np.vstack(
                [
                    self.embedder.embed([case_text(c) for c in chunk[i : i + batch_size]])
                    for i in range(0, len(chunk), batch_size)
                ]
            )
            ids, payloads = points_of(chunk)
            remote.upsert(ids, vectors, payloads)
        return len(given)

    def learn(self, case: PastCase) -> bool:
        self.import_cases([case])
        return True

    def count(self) -> int:
        if self._empty():
            return 0
        return _Remote(self).count()

    def reset(self) -> None:
        """Forget every case (e.g. before importing them again with another model)."""
        if self._empty():
            shutil.rmtree(self.path, ignore_errors=True)
            return
        self.call({"op": "reset"})

    def close(self) -> None:
        """Stop hosting (another process takes over) and close this process's connections."""
        with self._guard:
            host, self._host = self._host, None
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()
        if host is not None:
            atexit.unregister(self.close)
            host.close()
