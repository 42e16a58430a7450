"""The small protocol between exdesk processes that share one case-memory folder.

A frame is two big-endian 32-bit lengths, a JSON header of the first length and a binary part
of the second (float32 vectors, little-endian). A request's header names the operation and
the embedder the asking process uses; an answer's header is ``{"ok": result}`` or
``{"error": text}``. Only JSON and raw floats cross: nothing is unpickled, and a frame larger
than the limits is refused before it is read.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

HEADER_LIMIT = 64 << 20  # bytes of JSON in one frame (an import chunk's payloads)
BLOB_LIMIT = 256 << 20  # bytes of vectors in one frame
_LENGTHS = struct.Struct("!II")


class Closed(ConnectionError):
    """The other side closed the connection (between frames or in the middle of one)."""


def send(sock: socket.socket, header: dict[str, Any], blob: bytes = b"") -> None:
    data = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    sock.sendall(_LENGTHS.pack(len(data), len(blob)) + data + blob)


def _exactly(sock: socket.socket, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise Closed("connection closed")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def receive(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """One frame. ``Closed`` when the other side went away; ``ValueError`` for a frame that
    is too large or not JSON."""
    size, blob_size = _LENGTHS.unpack(_exactly(sock, _LENGTHS.size))
    if size > HEADER_LIMIT or blob_size > BLOB_LIMIT:
        raise ValueError(f"frame too large ({size} + {blob_size} bytes)")
    header = json.loads(_exactly(sock, size).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("frame header is not a JSON object")
    return header, _exactly(sock, blob_size) if blob_size else b""


def vectors_blob(vectors: NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def blob_vectors(blob: bytes, rows: int, dim: int) -> NDArray[np.float32]:
    if rows < 0 or dim <= 0 or len(blob) != rows * dim * 4:
        raise ValueError(f"{len(blob)} bytes of vectors do not make {rows} rows of {dim}")
    return np.frombuffer(blob, dtype="<f4").reshape(rows, dim).astype(np.float32)
