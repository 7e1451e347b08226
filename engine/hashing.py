"""BLAKE3 hashing and the engine's Merkle trees, computed natively.

Transaction ids and Merkle roots are the hashing hot path of every block. The work is done by
the C kernels in csrc/blake3 (many messages side by side in SIMD lanes, large batches split
across a native thread pool with the GIL released); this module states the contract and checks
arguments.

Tree (docs/formats.md): RFC 6962 shape; ``leaf(x) = BLAKE3(x)``;
``node(l, r) = BLAKE3_keyed(NODE_KEY, l || r)``; ``root([]) = BLAKE3_keyed(NODE_KEY, b"")``;
``root([x]) = leaf(x)``. Proofs are RFC 6962 audit paths, the leaf's sibling first.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine import _native_hash
from engine._args import bytes_arg, threads_arg

BytesLike = bytes | bytearray | memoryview

HASH_BYTES = 32
#: Longest audit path a proof may carry (a tree of 2**64 leaves).
PROOF_PATH_HASHES_MAX = 64

__all__ = [
    "HASH_BYTES",
    "NODE_KEY",
    "MerkleProof",
    "blake3",
    "blake3_many",
    "blake3_many_packed",
    "merkle_node",
    "merkle_proof",
    "merkle_root",
    "merkle_root_from_hashes",
    "verify_merkle_proof",
]


def _key(key: BytesLike | None) -> BytesLike | None:
    if key is not None and len(memoryview(key).cast("B")) != HASH_BYTES:
        raise ValueError(f"key must be {HASH_BYTES} bytes long")
    return key


def blake3(data: BytesLike, *, key: BytesLike | None = None) -> bytes:
    """BLAKE3-256 of ``data`` (keyed mode with a 32-byte ``key``)."""
    return _native_hash.blake3(data, _key(key))


def blake3_many(messages: Sequence[BytesLike], *, key: BytesLike | None = None,
                threads: int | None = None) -> list[bytes]:
    """BLAKE3-256 of every message, hashed side by side in SIMD lanes.

    ``threads=None`` uses every core. Raises TypeError naming the index of a non-bytes item.
    """
    return _native_hash.blake3_many(messages, _key(key), threads_arg(threads))


def blake3_many_packed(data: BytesLike, offsets, *, key: BytesLike | None = None,
                       threads: int | None = None) -> bytes:
    """Hash the messages ``data[offsets[i]:offsets[i+1]]`` held in one buffer.

    ``offsets`` is a buffer of n + 1 native-endian uint64 values (e.g. a numpy uint64 array).
    Returns n * 32 bytes, the hashes back to back. No Python object per message is made.
    """
    return _native_hash.blake3_many_packed(data, offsets, _key(key), threads_arg(threads))


NODE_KEY: bytes = blake3(b"engine/merkle/node/v1")


def merkle_node(left: bytes, right: bytes) -> bytes:
    """An inner node: BLAKE3 keyed with NODE_KEY over left || right (one compression)."""
    return blake3(bytes(left) + bytes(right), key=NODE_KEY)


def merkle_root(leaves: Sequence[BytesLike], *, threads: int | None = None) -> bytes:
    """Root of the tree over raw ``leaves`` (each hashed with BLAKE3 first)."""
    return _native_hash.merkle_root(leaves, NODE_KEY, threads_arg(threads))


def merkle_root_from_hashes(leaf_hashes: Sequence[BytesLike] | BytesLike, *,
                            threads: int | None = None) -> bytes:
    """Root of the tree whose leaf hashes are given (a sequence of 32-byte hashes, or one packed
    buffer of n * 32 bytes, e.g. the output of :func:`blake3_many_packed`)."""
    return _native_hash.merkle_root_from_hashes(leaf_hashes, NODE_KEY, threads_arg(threads))


@dataclass(frozen=True)
class MerkleProof:
    """An RFC 6962 inclusion proof: leaf ``index`` of a tree of ``size`` leaves, with the audit
    ``path`` (sibling hashes, the leaf's side first)."""

    index: int
    size: int
    path: tuple[bytes, ...]


def merkle_proof(leaves: Sequence[BytesLike], index: int) -> MerkleProof:
    """The inclusion proof of ``leaves[index]``. Raises IndexError outside the tree."""
    index = operator.index(index)
    if index < 0:
        raise IndexError(f"index {index} is outside a tree of {len(leaves)} leaves")
    path = _native_hash.merkle_path(leaves, index, NODE_KEY, 0)
    return MerkleProof(index=index, size=len(leaves), path=tuple(path))


def root_from_path(leaf_hash: bytes, index: int, size: int, path: Sequence[bytes],
                   node: Callable[[bytes, bytes], bytes]) -> bytes | None:
    """The root an audit path implies (RFC 9162 section 2.1.3.2), or None when the path cannot
    belong to a tree of that size. ``node`` is the inner-node hash, so the same logic runs with
    SHA-256 against the RFC 6962 vectors."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_merkle_proof(root: BytesLike, leaf: BytesLike, proof: MerkleProof) -> bool:
    """Whether ``proof`` shows that raw ``leaf`` is in the tree with ``root``.

    Raises ValueError when the root or a path hash is not 32 bytes, TypeError on non-bytes.
    """
    return _verify_proof(root, blake3(leaf), proof, merkle_node)


def _verify_proof(root: BytesLike, leaf_hash: bytes, proof: MerkleProof,
                  node: Callable[[bytes, bytes], bytes]) -> bool:
    """The checks and the walk that every tree's proof verification shares."""
    root_b = _hash_arg(root, "root")
    for i, p in enumerate(proof.path):
        _hash_arg(p, f"proof.path[{i}]")
    if isinstance(proof.index, bool) or not isinstance(proof.index, int):
        raise TypeError("proof.index must be an int")
    if isinstance(proof.size, bool) or not isinstance(proof.size, int):
        raise TypeError("proof.size must be an int")
    if len(proof.path) > PROOF_PATH_HASHES_MAX:
        return False
    implied = root_from_path(leaf_hash, proof.index, proof.size,
                             [bytes(p) for p in proof.path], node)
    return implied is not None and implied == root_b


def _hash_arg(value: BytesLike, name: str) -> bytes:
    return bytes_arg(value, name, HASH_BYTES)


# ---- SM3 (GB/T 32905-2016) and the SM3 Merkle tree ----------------------------------------------
#
# The national-cryptography suite's hash, computed by csrc/sm3 (many messages side by side in
# SIMD lanes, batches split across the native pool with the GIL released). The SM3 tree has the
# same RFC 6962 shape as the BLAKE3 one but separates leaves from nodes by prefix bytes, as
# RFC 6962 does, since SM3 has no keyed mode (docs/formats.md, "SM3 Merkle tree"):
# ``leaf(x) = SM3(0x00 || x)``, ``node(l, r) = SM3(0x01 || l || r)``, ``root([]) = SM3(b"")``,
# ``root([x]) = leaf(x)``.

from engine import _native_sm

SM3_LEAF_PREFIX = b"\x00"
SM3_NODE_PREFIX = b"\x01"

__all__ += [
    "sm3",
    "sm3_many",
    "sm3_many_packed",
    "sm3_merkle_leaf",
    "sm3_merkle_node",
    "sm3_merkle_proof",
    "sm3_merkle_root",
    "sm3_merkle_root_from_hashes",
    "verify_sm3_merkle_proof",
]


def sm3(data: BytesLike) -> bytes:
    """SM3 of ``data`` (32 bytes)."""
    return _native_sm.sm3(data)


def sm3_many(messages: Sequence[BytesLike], *, threads: int | None = None) -> list[bytes]:
    """SM3 of every message, hashed side by side in SIMD lanes.

    ``threads=None`` uses every core. Raises TypeError naming the index of a non-bytes item.
    """
    return _native_sm.sm3_many(messages, threads_arg(threads))


def sm3_many_packed(data: BytesLike, offsets, *, threads: int | None = None) -> bytes:
    """SM3 of the messages ``data[offsets[i]:offsets[i+1]]`` held in one buffer.

    ``offsets`` is a buffer of n + 1 native-endian uint64 values (e.g. a numpy uint64 array).
    Returns n * 32 bytes, the digests back to back.
    """
    return _native_sm.sm3_many_packed(data, offsets, threads_arg(threads))


def sm3_merkle_leaf(leaf: BytesLike) -> bytes:
    """A leaf hash of the SM3 tree: SM3(0x00 || leaf)."""
    return sm3(SM3_LEAF_PREFIX + bytes_arg(leaf, "leaf"))


def sm3_merkle_node(left: bytes, right: bytes) -> bytes:
    """An inner node of the SM3 tree: SM3(0x01 || left || right)."""
    return sm3(SM3_NODE_PREFIX + bytes(left) + bytes(right))


def sm3_merkle_root(leaves: Sequence[BytesLike], *, threads: int | None = None) -> bytes:
    """Root of the SM3 tree over raw ``leaves``."""
    return _native_sm.merkle_root(leaves, threads_arg(threads))


def sm3_merkle_root_from_hashes(leaf_hashes: Sequence[BytesLike] | BytesLike, *,
                                threads: int | None = None) -> bytes:
    """Root of the SM3 tree whose leaf hashes (``sm3_merkle_leaf`` values) are given, as a
    sequence of 32-byte hashes or one packed buffer of n * 32 bytes."""
    return _native_sm.merkle_root_from_hashes(leaf_hashes, threads_arg(threads))


def sm3_merkle_proof(leaves: Sequence[BytesLike], index: int) -> MerkleProof:
    """The inclusion proof of ``leaves[index]`` in the SM3 tree. Raises IndexError outside it."""
    index = operator.index(index)
    if index < 0:
        raise IndexError(f"index {index} is outside a tree of {len(leaves)} leaves")
    path = _native_sm.merkle_path(leaves, index, 0)
    return MerkleProof(index=index, size=len(leaves), path=tuple(path))


def verify_sm3_merkle_proof(root: BytesLike, leaf: BytesLike, proof: MerkleProof) -> bool:
    """Whether ``proof`` shows that raw ``leaf`` is in the SM3 tree with ``root``.

    Raises ValueError when the root or a path hash is not 32 bytes, TypeError on non-bytes.
    """
    return _verify_proof(root, sm3_merkle_leaf(leaf), proof, sm3_merkle_node)
