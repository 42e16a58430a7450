"""The RFC 6962 Merkle tree over the audit log's entries (RFC 9162 §2.1 has the same algorithms).

Leaves are hashed ``SHA-256(0x00 || leaf)``, interior nodes ``SHA-256(0x01 || left || right)``,
the empty tree is ``SHA-256("")``. :class:`CompactRange` keeps the roots of the perfect
subtrees left of the next leaf (at most one per bit of the size), so a writer that appends
leaves computes the new root in O(log n) without reading old entries. :class:`Tree` holds
every perfect subtree of a list of leaf hashes and gives inclusion and consistency proofs.
``verify_inclusion`` and ``verify_consistency`` follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by
step; they raise :class:`ProofError` saying what did not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


class ProofError(ValueError):
    """A proof that does not prove what it claims; the message says what did not hold."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1): RFC 6962's k."""
    return 1 << ((size - 1).bit_length() - 1)


class CompactRange:
    """The right border of a tree of ``size`` leaves: the roots of its perfect subtrees,
    largest first (one per set bit of ``size``)."""

    __slots__ = ("_size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of {size} leaves holds {size.bit_count()} hashes, "
                f"not {len(hashes)}"
            )
        self._size = size
        self.hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the leaf hash of the next entry."""
        node, size = leaf, self._size
        while size & 1:  # merge with the perfect subtrees of equal height to the left
            node = node_hash(self.hashes.pop(), node)
            size >>= 1
        self.hashes.append(node)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the tree so far."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self.hashes)

    def to_hex(self) -> str:
        return "".join(h.hex() for h in self.hashes)

    @classmethod
    def from_hex(cls, size: int, text: str) -> CompactRange:
        """Read back :meth:`to_hex`; ValueError when ``text`` cannot be the range of ``size``."""
        raw = bytes.fromhex(text)
        if len(raw) != HASH_SIZE * size.bit_count():
            raise ValueError(
                f"a compact range of {size} leaves holds {size.bit_count()} hashes, "
                f"not {len(raw) / HASH_SIZE:g}"
            )
        hashes = [raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)]
        return cls(size, hashes)


def root_of(leaves: Iterable[bytes]) -> bytes:
    """MTH over leaf hashes."""
    compact = CompactRange()
    compact.extend(leaves)
    return compact.root()


class Tree:
    """Every perfect subtree of a list of leaf hashes, for proofs. O(n) memory and time to
    build; each proof is O(log n) lookups plus the hashing of its imperfect right edge."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves[start:end]."""
        size = end - start
        if size <= 0:
            return EMPTY_ROOT
        height = size.bit_length() - 1
        if size == 1 << height and start % size == 0:
            return self.levels[height][start >> height]
        k = _split(size)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        return self.subtree(0, self.size if size is None else size)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 §2.1.1, sibling of the leaf first."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of {size} (the log holds {self.size})")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self.subtree(start + k, end))
                end = start + k
            else:
                path.append(self.subtree(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        """PROOF(old, D[0:new]) of RFC 6962 §2.1.2; empty when ``old`` is 0 or ``new``."""
        new = self.size if new is None else new
        if not 0 <= old <= new <= self.size:
            raise ValueError(
                f"no consistency proof from {old} to {new} (the log holds {self.size})"
            )
        if old in (0, new):
            return []
        return self._subproof(old, 0, new, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        size = end - start
        if m == size:
            return [] if whole else [self.subtree(start, end)]
        k = _split(size)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self.subtree(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self.subtree(start, start + k)]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1-4)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of {size} leaves")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"the leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"the proof has {len(proof)} hashes, more than a tree of {size} needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the proof has {len(proof)} hashes, fewer than a tree of {size} needs")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows leaf ``index`` with hash ``leaf`` in ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"the inclusion proof for leaf {index} does not lead to the root of the tree of "
            f"{size}: the entry, its index or the proof is not the one the log signed"
        )


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ProofError unless ``proof`` shows the tree of ``old`` is a prefix of ``new``."""
    if old < 0 or new < old:
        raise ProofError(f"a tree of {new} leaves cannot extend one of {old}")
    if old == 0:
        # Every tree extends the empty one; a proof of it proves nothing (callers that accept
        # an empty old tree, such as a witness seeing a log for the first time, skip the call).
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if old == new:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {old}: a split view")
        return
    if not proof:
        raise ProofError(f"no proof given that {old} leaves are a prefix of {new}")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node of the path
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"the proof has more hashes than {old} → {new} needs")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the proof has fewer hashes than {old} → {new} needs")
    if fr != old_root:
        raise ProofError(
            f"the first {old} leaves do not hash to the old root: the log was rewritten "
            "or rolled back"
        )
    if sr != new_root:
        raise ProofError(f"the proof does not lead to the new root of {new} leaves")
