"""The Merkle tree against published vectors.

Sources:
- RFC 6962 §2.1 (hashes) and the reference tree of the Certificate Transparency test suite, as
  transparency-dev/merkle keeps it in ``testonly/constants.go`` (LeafInputs, RootHashes,
  NodeHashes) and ``rfc6962/rfc6962_test.go`` (empty, empty leaf, leaf, node).
- transparency-dev/merkle ``testdata/inclusion`` and ``testdata/consistency`` (196 probes,
  positive and negative), copied verbatim into ``vectors/transparency_dev_merkle.json`` with
  the commit they were taken from (Apache-2.0).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    Tree,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "transparency_dev_merkle.json").read_text("utf-8")
)

# transparency-dev/merkle testonly/constants.go
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
LEAF_HASHES = [leaf_hash(data) for data in LEAF_INPUTS]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def test_rfc6962_hashes() -> None:
    # rfc6962/rfc6962_test.go: echo -n | sha256sum, and the domain-separated leaf and node
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    # a node is never the leaf of its children's concatenation (second preimage)
    a, b = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert node_hash(a, b) != leaf_hash(a + b) and node_hash(a, b) != node_hash(b, a)


@pytest.mark.parametrize("size", range(9))
def test_roots_of_the_reference_tree(size: int) -> None:
    compact = CompactRange()
    compact.extend(LEAF_HASHES[:size])
    assert compact.root() == ROOTS[size]
    assert root_of(LEAF_HASHES[:size]) == ROOTS[size]
    assert Tree(LEAF_HASHES).root(size) == ROOTS[size] if size else True
    again = CompactRange.from_hex(size, compact.to_hex())
    assert again.root() == ROOTS[size] and again.size == size


def _probes(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return sorted(VECTORS[kind].items())


@pytest.mark.parametrize(("path", "probe"), _probes("inclusion"), ids=lambda v: str(v)[:60])
def test_inclusion_vectors(path: str, probe: dict[str, Any]) -> None:
    args = (
        probe["leafIdx"],
        probe["treeSize"],
        _b64(probe.get("leafHash")),
        [_b64(p) for p in probe.get("proof") or []],
        _b64(probe.get("root")),
    )
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(("path", "probe"), _probes("consistency"), ids=lambda v: str(v)[:60])
def test_consistency_vectors(path: str, probe: dict[str, Any]) -> None:
    args = (
        probe["size1"],
        probe["size2"],
        _b64(probe.get("root1")),
        _b64(probe.get("root2")),
        [_b64(p) for p in probe.get("proof") or []],
    )
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_the_vectors_hold_both_outcomes() -> None:
    for kind in ("inclusion", "consistency"):
        outcomes = {p["wantErr"] for p in VECTORS[kind].values()}
        assert outcomes == {True, False}, kind


def test_generated_proofs_equal_the_published_happy_paths() -> None:
    """The reference tree's happy-path probes are proofs our generator must produce too."""
    tree = Tree(LEAF_HASHES)
    checked = 0
    for probe in VECTORS["inclusion"].values():
        if probe["wantErr"] or probe["treeSize"] > 8 or probe["desc"] != "happy path":
            continue
        if _b64(probe["leafHash"]) != LEAF_HASHES[probe["leafIdx"]]:
            continue
        want = [_b64(p) for p in probe["proof"] or []]
        assert tree.inclusion(probe["leafIdx"], probe["treeSize"]) == want
        checked += 1
    for probe in VECTORS["consistency"].values():
        if probe["wantErr"] or probe["size2"] > 8 or probe["desc"] != "happy path":
            continue
        if _b64(probe["root2"]) != ROOTS[probe["size2"]]:
            continue
        want = [_b64(p) for p in probe["proof"] or []]
        assert tree.consistency(probe["size1"], probe["size2"]) == want
        checked += 1
    assert checked >= 6


def test_every_proof_of_random_trees_verifies_and_a_flipped_bit_fails() -> None:
    rng = random.Random(6962)
    for size in [1, 2, 3, 5, 8, 13, 64, 100, 257]:
        leaves = [hashlib.sha256(rng.randbytes(8)).digest() for _ in range(size)]
        tree = Tree(leaves)
        roots = [tree.root(n) for n in range(size + 1)]
        for index in {0, size - 1, rng.randrange(size)}:
            proof = tree.inclusion(index)
            verify_inclusion(index, size, leaves[index], proof, roots[size])
            if proof:
                bad = [*proof]
                bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
                with pytest.raises(ProofError):
                    verify_inclusion(index, size, leaves[index], bad, roots[size])
            if size > 1:
                with pytest.raises(ProofError):  # the proof of another index
                    verify_inclusion((index + 1) % size, size, leaves[index], proof, roots[size])
        for old in {1, size // 2, size - 1, size}:
            if old < 1:
                continue
            proof = tree.consistency(old)
            verify_consistency(old, size, roots[old], roots[size], proof)
            if old < size:
                forked = hashlib.sha256(b"fork").digest()
                with pytest.raises(ProofError):
                    verify_consistency(old, size, forked, roots[size], proof)
                with pytest.raises(ProofError):
                    verify_consistency(old, size, roots[old], forked, proof)


def test_compact_range_refuses_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match="holds 2 hashes"):
        CompactRange.from_hex(3, "00" * 32)
    with pytest.raises(ValueError):
        Tree([b"\0" * 32]).inclusion(1)
