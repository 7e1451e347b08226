"""The SM3 Merkle tree (docs/formats.md): native root and proofs against the recursive reference
with the RFC 6962 prefixes, on every ISA path and thread count."""
from __future__ import annotations

import os
import random

import pytest

from engine import hashing
from engine._reference import merkle as ref_tree
from engine._reference import sm3 as ref

EMPTY = ref.sm3(b"")


def reference_root(leaves):
    return ref_tree.root_from_hashes([ref.merkle_leaf(x) for x in leaves], ref.merkle_node, EMPTY)


def test_definition_small_trees():
    a, b, c = b"a", b"b", b"c"
    assert hashing.sm3_merkle_root([]) == ref.sm3(b"")
    assert hashing.sm3_merkle_root([a]) == ref.sm3(b"\x00a")
    assert hashing.sm3_merkle_root([a, b]) == ref.sm3(b"\x01" + ref.sm3(b"\x00a") + ref.sm3(b"\x00b"))
    ab = ref.sm3(b"\x01" + ref.sm3(b"\x00a") + ref.sm3(b"\x00b"))
    assert hashing.sm3_merkle_root([a, b, c]) == ref.sm3(b"\x01" + ab + ref.sm3(b"\x00c"))
    assert hashing.sm3_merkle_leaf(a) == ref.merkle_leaf(a)
    assert hashing.sm3_merkle_node(ab, ab) == ref.merkle_node(ab, ab)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 100])
def test_root_and_proofs_against_reference(sm_isa, n):
    rng = random.Random(n)
    leaves = [rng.randbytes(rng.randrange(0, 200)) for _ in range(n)]
    root = reference_root(leaves)
    assert hashing.sm3_merkle_root(leaves) == root
    hashes = [ref.merkle_leaf(x) for x in leaves]
    assert hashing.sm3_merkle_root_from_hashes(hashes) == root
    assert hashing.sm3_merkle_root_from_hashes(b"".join(hashes)) == root
    for i in range(n):
        proof = hashing.sm3_merkle_proof(leaves, i)
        assert list(proof.path) == ref_tree.path(hashes, i, ref.merkle_node)
        assert hashing.verify_sm3_merkle_proof(root, leaves[i], proof)
        assert not hashing.verify_sm3_merkle_proof(root, leaves[i] + b"x", proof)
        # A BLAKE3-tree proof of the same leaves never verifies here (other hash, other nodes).
        if n > 1:
            other = hashing.merkle_proof(leaves, i)
            assert not hashing.verify_sm3_merkle_proof(root, leaves[i], other)


def test_large_tree_threads(sm_isa):
    leaves = [os.urandom(64) for _ in range(20_001)]
    hashes = hashing.sm3_many([b"\x00" + x for x in leaves])
    want = ref_tree.root_from_hashes(hashes, hashing.sm3_merkle_node, EMPTY)
    for threads in (1, 2, None):
        assert hashing.sm3_merkle_root(leaves, threads=threads) == want


def test_leaf_cannot_pose_as_node():
    # The second-preimage defence of RFC 6962: a leaf holding l || r hashes differently from
    # the node over l and r.
    l, r = os.urandom(32), os.urandom(32)
    assert hashing.sm3_merkle_leaf(l + r) != hashing.sm3_merkle_node(l, r)
    assert hashing.sm3_merkle_root([l + r]) != hashing.sm3_merkle_root_from_hashes([l, r])


def test_errors():
    with pytest.raises(IndexError):
        hashing.sm3_merkle_proof([b"a"], 1)
    with pytest.raises(IndexError):
        hashing.sm3_merkle_proof([b"a"], -1)
    with pytest.raises(ValueError, match=r"leaf_hashes\[0\]"):
        hashing.sm3_merkle_root_from_hashes([b"short"])
    with pytest.raises(ValueError, match="multiple of 32"):
        hashing.sm3_merkle_root_from_hashes(b"x" * 33)
    proof = hashing.sm3_merkle_proof([b"a", b"b"], 0)
    with pytest.raises(ValueError, match="root"):
        hashing.verify_sm3_merkle_proof(b"short", b"a", proof)
