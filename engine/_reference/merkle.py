"""Reference Merkle tree (RFC 6962 shape) with the hash functions as parameters.

Written straight from the recursive definition so it can serve as the oracle for the native
bottom-up implementation: for n > 1 with k the largest power of two below n,
``root(D) = node(root(D[:k]), root(D[k:]))``. The same functions run with SHA-256 and the RFC
6962 prefixes against the transparency-dev vectors, and with the engine's keyed BLAKE3.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

LeafFn = Callable[[bytes], bytes]
NodeFn = Callable[[bytes, bytes], bytes]


def split_point(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_from_hashes(hashes: Sequence[bytes], node: NodeFn, empty: bytes) -> bytes:
    if not hashes:
        return empty
    if len(hashes) == 1:
        return hashes[0]
    k = split_point(len(hashes))
    return node(root_from_hashes(hashes[:k], node, empty), root_from_hashes(hashes[k:], node, empty))


def path(hashes: Sequence[bytes], index: int, node: NodeFn) -> list[bytes]:
    """RFC 6962 audit path of hashes[index], the leaf's sibling first."""
    if len(hashes) <= 1:
        return []
    k = split_point(len(hashes))
    if index < k:
        return path(hashes[:k], index, node) + [root_from_hashes(hashes[k:], node, b"")]
    return path(hashes[k:], index - k, node) + [root_from_hashes(hashes[:k], node, b"")]
