"""Snapshot formats: what a state-sync snapshot is, how its state chunks are encoded, and the
hashes that let a joining node catch a corrupt or hostile chunk on arrival.

A snapshot of height ``H`` holds the application state after block ``H``, cut into chunks. Its
description (:class:`Snapshot`) names the height, the format, the chunk hashes and the app hash
after ``H``; its ``hash`` commits to all of them, so a peer cannot swap one chunk for another
without the chunk's hash failing to match, and a joining node can ask any peer offering the same
snapshot hash for any chunk.

Format 1 (``STATE_FORMAT``, the engine's own, for applications that keep their state in the
engine's store): a chunk is the msgpack array ``[[key, value], ...]`` of consecutive state
entries in strictly ascending key order; the chunks of a snapshot are consecutive too (the first
key of a chunk is above the last key of the chunk before), so a restore of all chunks is the
whole state, each key exactly once. Byte layouts are in docs/formats.md.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgpack

from engine.hashing import HASH_BYTES, blake3

__all__ = ["STATE_FORMAT", "Snapshot", "chunk_hash", "decode_state_chunk", "encode_state_chunks",
           "snapshot_hash"]

#: The engine's own snapshot format (state entries of the engine's store).
STATE_FORMAT = 1
_DOMAIN = b"engine/snapshot/v1"
_HEAD = struct.Struct("<QIIQ")
#: State keys are 1..400 bytes (engine.store.store.state_key_bytes_max).
_KEY_BYTES_MAX = 400


def chunk_hash(chunk: bytes) -> bytes:
    return blake3(chunk)


def snapshot_hash(height: int, format: int, app_hash: bytes, chunk_hashes: list[bytes],
                  metadata: bytes = b"") -> bytes:
    """``BLAKE3(domain || height u64 || format u32 || chunks u32 || len(metadata) u64 ||
    metadata || app hash || chunk hashes...)``."""
    return blake3(_DOMAIN + _HEAD.pack(height, format, len(chunk_hashes), len(metadata))
                  + metadata + app_hash + b"".join(chunk_hashes))


@dataclass(frozen=True)
class Snapshot:
    """A snapshot as offered to peers: ``hash`` is :func:`snapshot_hash` of the rest."""

    height: int
    format: int
    app_hash: bytes
    chunk_hashes: tuple[bytes, ...]
    metadata: bytes = b""
    hash: bytes = field(default=b"")

    def __post_init__(self) -> None:
        if not self.hash:
            object.__setattr__(self, "hash", snapshot_hash(
                self.height, self.format, self.app_hash, list(self.chunk_hashes), self.metadata))

    @property
    def chunks(self) -> int:
        return len(self.chunk_hashes)

    def well_formed(self) -> bool:
        """Its hash is the hash of its fields (what a peer's offer must satisfy)."""
        return len(self.app_hash) == HASH_BYTES and \
            all(len(h) == HASH_BYTES for h in self.chunk_hashes) and \
            self.hash == snapshot_hash(self.height, self.format, self.app_hash,
                                       list(self.chunk_hashes), self.metadata)

    def to_wire(self) -> list:
        return [self.height, self.format, self.app_hash, list(self.chunk_hashes), self.metadata,
                self.hash]

    @classmethod
    def from_wire(cls, item: list) -> Snapshot:
        height, fmt, app_hash, hashes, metadata, digest = item
        return cls(height, fmt, app_hash, tuple(hashes), metadata, digest)


def encode_state_chunks(items: Iterable[tuple[bytes, bytes]],
                        chunk_bytes: int) -> Iterator[bytes]:
    """Format-1 chunks of about ``chunk_bytes`` each from (key, value) pairs in key order
    (an empty state is one empty chunk, so every snapshot has at least one)."""
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in items:
        batch.append((key, value))
        size += len(key) + len(value) + 10
        if size >= chunk_bytes:
            yield msgpack.packb(batch, use_bin_type=True)
            batch, size = [], 0
    if batch or size == 0:
        yield msgpack.packb(batch, use_bin_type=True)


def decode_state_chunk(chunk: bytes, after: bytes = b"") -> list[tuple[bytes, bytes]]:
    """The entries of a format-1 chunk; ValueError unless it is well formed with keys strictly
    ascending and above ``after`` (the last key of the chunk before)."""
    try:
        obj = msgpack.unpackb(chunk, raw=False, use_list=True)
    except Exception as e:  # noqa: BLE001 - msgpack raises many types on garbage
        raise ValueError(f"state chunk does not decode: {type(e).__name__}") from None
    if not isinstance(obj, list):
        raise ValueError("a state chunk is an array of [key, value] pairs")  # noqa: TRY004
    out: list[tuple[bytes, bytes]] = []
    last = after
    for i, item in enumerate(obj):
        if not isinstance(item, list) or len(item) != 2 or type(item[0]) is not bytes \
                or type(item[1]) is not bytes:
            raise ValueError(f"state chunk entry {i} is not a [key, value] pair of bytes")
        key = item[0]
        if not 0 < len(key) <= _KEY_BYTES_MAX:
            raise ValueError(f"state chunk entry {i}: key of {len(key)} bytes")
        if key <= last:
            raise ValueError(f"state chunk entry {i}: keys are not strictly ascending")
        last = key
        out.append((key, item[1]))
    return out
