"""Merkle trees: native against the recursive reference, proofs, RFC 6962 vectors, bad input."""
from __future__ import annotations

import base64
import hashlib
import json
import random

import blake3 as blake3_pkg
import pytest

from engine import hashing
from engine._reference import merkle as ref
from tests.vectors import merkle_probe_files

NODE_KEY = blake3_pkg.blake3(b"engine/merkle/node/v1").digest()


def leaf_hash(x: bytes) -> bytes:
    return blake3_pkg.blake3(x).digest()


def node(left: bytes, right: bytes) -> bytes:
    return blake3_pkg.blake3(left + right, key=NODE_KEY).digest()


EMPTY_ROOT = blake3_pkg.blake3(b"", key=NODE_KEY).digest()


def reference_root(leaves: list[bytes]) -> bytes:
    return ref.root_from_hashes([leaf_hash(x) for x in leaves], node, EMPTY_ROOT)


def test_node_key_is_defined_by_the_design():
    assert hashing.NODE_KEY == NODE_KEY
    assert hashing.merkle_node(b"a" * 32, b"b" * 32) == node(b"a" * 32, b"b" * 32)


def test_roots_match_reference_for_every_size_to_300(hash_isa):
    rng = random.Random(10)
    leaves = [rng.randbytes(rng.randrange(0, 300)) for _ in range(300)]
    hashes = [leaf_hash(x) for x in leaves]
    for n in range(301):
        want = ref.root_from_hashes(hashes[:n], node, EMPTY_ROOT)
        assert hashing.merkle_root(leaves[:n]) == want, n
        assert hashing.merkle_root_from_hashes(hashes[:n]) == want, n
        assert hashing.merkle_root_from_hashes(b"".join(hashes[:n])) == want, n


def test_large_random_sizes_and_threads(hash_isa):
    rng = random.Random(11)
    for n in (1000, 4097, 20011):
        leaves = [rng.randbytes(rng.randrange(0, 400)) for _ in range(n)]
        want = reference_root(leaves)
        for threads in (1, 2):
            assert hashing.merkle_root(leaves, threads=threads) == want


def test_empty_and_single():
    assert hashing.merkle_root([]) == EMPTY_ROOT
    assert hashing.merkle_root([b"tx"]) == leaf_hash(b"tx")


def test_proofs_for_every_index_up_to_64(hash_isa):
    rng = random.Random(12)
    for n in range(1, 65):
        leaves = [rng.randbytes(rng.randrange(1, 100)) for _ in range(n)]
        root = hashing.merkle_root(leaves)
        hashes = [leaf_hash(x) for x in leaves]
        for i in range(n):
            proof = hashing.merkle_proof(leaves, i)
            assert (proof.index, proof.size) == (i, n)
            assert list(proof.path) == ref.path(hashes, i, node)
            assert hashing.verify_merkle_proof(root, leaves[i], proof)


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def directions(index: int, size: int, path_len: int):
    """The left/right sequence an audit path is combined with (None when it cannot fit).

    An RFC 6962 root does not commit to the tree size, so a claimed (index, size) that combines
    the same path the same way is indistinguishable from the true one for every verifier."""
    record: list[bool] = []

    def node(left: bytes, right: bytes) -> bytes:
        record.append(left == b"path")  # is the path element on the left?
        return b"node"

    ok = hashing.root_from_path(b"leaf", index, size, [b"path"] * path_len, node) is not None
    return tuple(record) if ok else None


def test_any_flipped_bit_fails_verification():
    rng = random.Random(13)
    leaves = [rng.randbytes(40) for _ in range(23)]
    root = hashing.merkle_root(leaves)
    for i in (0, 5, 16, 22):
        proof = hashing.merkle_proof(leaves, i)
        leaf = leaves[i]
        for bit in range(len(leaf) * 8):
            assert not hashing.verify_merkle_proof(root, flip(leaf, bit), proof)
        for bit in range(256):
            assert not hashing.verify_merkle_proof(flip(root, bit), leaf, proof)
        for k in range(len(proof.path)):
            for bit in range(0, 256, 7):
                path = list(proof.path)
                path[k] = flip(path[k], bit)
                bad = hashing.MerkleProof(i, proof.size, tuple(path))
                assert not hashing.verify_merkle_proof(root, leaf, bad)
        shape = directions(i, proof.size, len(proof.path))
        for bit in range(8):
            for index, size in ((i ^ (1 << bit), proof.size), (i, proof.size ^ (1 << bit))):
                bad = hashing.MerkleProof(index, size, proof.path)
                same_shape = directions(index, size, len(proof.path)) == shape
                assert hashing.verify_merkle_proof(root, leaf, bad) == same_shape, (index, size)
        assert not hashing.verify_merkle_proof(root, leaf, hashing.MerkleProof(i, proof.size, proof.path[:-1]))
        assert not hashing.verify_merkle_proof(root, leaf, hashing.MerkleProof(i, proof.size, proof.path + (root,)))


def test_bad_input():
    with pytest.raises(TypeError, match=r"leaves\[1\]"):
        hashing.merkle_root([b"x", 3])
    with pytest.raises(TypeError, match=r"leaves\[2\]"):
        hashing.merkle_proof([b"x", b"y", "z"], 0)
    with pytest.raises(IndexError):
        hashing.merkle_proof([b"x", b"y"], 2)
    with pytest.raises(IndexError):
        hashing.merkle_proof([b"x", b"y"], -1)
    with pytest.raises(IndexError):
        hashing.merkle_proof([], 0)
    with pytest.raises(ValueError, match=r"leaf_hashes\[1\]"):
        hashing.merkle_root_from_hashes([b"a" * 32, b"b" * 31])
    with pytest.raises(ValueError, match="multiple of 32"):
        hashing.merkle_root_from_hashes(b"a" * 33)
    leaves = [b"a", b"b", b"c"]
    root = hashing.merkle_root(leaves)
    proof = hashing.merkle_proof(leaves, 1)
    with pytest.raises(ValueError, match=r"proof.path\[0\]"):
        hashing.verify_merkle_proof(root, b"b", hashing.MerkleProof(1, 3, (b"short",) + proof.path[1:]))
    with pytest.raises(ValueError, match="root"):
        hashing.verify_merkle_proof(root[:31], b"b", proof)
    with pytest.raises(TypeError, match="root"):
        hashing.verify_merkle_proof(root.hex(), b"b", proof)


# --- RFC 6962 shape and proof logic against the transparency-dev SHA-256 probes ---------------

def sha_leaf(x: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + x).digest()


def sha_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                         "5051525354555657", "606162636465666768696a6b6c6d6e6f")]


def b64(value) -> bytes:
    return base64.b64decode(value) if value else b""


def test_reference_shape_gives_the_ct_root():
    root = ref.root_from_hashes([sha_leaf(x) for x in CT_LEAVES], sha_node, hashlib.sha256().digest())
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


INCLUSION = merkle_probe_files("inclusion")


@pytest.mark.parametrize("path", INCLUSION, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_inclusion_probes(path):
    case = json.loads(path.read_text())
    proof = [b64(p) for p in case.get("proof") or []]
    leaf, root = b64(case["leafHash"]), b64(case["root"])
    ok = (len(leaf) == 32 and all(len(p) == 32 for p in proof)
          and hashing.root_from_path(leaf, case["leafIdx"], case["treeSize"], proof, sha_node) == root)
    assert ok == (not case["wantErr"]), case["desc"]


def test_probe_set_is_complete():
    assert len(INCLUSION) == 98
    assert sum(not json.loads(p.read_text())["wantErr"] for p in INCLUSION) == 6


def test_reference_paths_verify_in_the_ct_tree():
    hashes = [sha_leaf(x) for x in CT_LEAVES]
    for n in range(1, 9):
        root = ref.root_from_hashes(hashes[:n], sha_node, b"")
        for i in range(n):
            path = ref.path(hashes[:n], i, sha_node)
            assert hashing.root_from_path(hashes[i], i, n, path, sha_node) == root
