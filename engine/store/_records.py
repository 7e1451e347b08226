"""Record framing for the store: every value ends with a 16-byte checksum tag.

The tag binds the value to its database and key (``BLAKE3(db || 0 || key || BLAKE3(payload))``
truncated to 16 bytes), so a flipped byte, a truncated value or a value that ended up under the
wrong key is reported as :class:`StoreCorruption` naming the database and the key.
"""
from __future__ import annotations

import struct

from blake3 import blake3 as _blake3_pkg

from engine.store._codec import concat_many, first_tag_mismatch, split_sealed

TAG_BYTES = 16
HEIGHT = struct.Struct(">Q")  # keys are big-endian so LMDB appends them in order


class StoreError(Exception):
    """The store cannot do what was asked: bad path, foreign or newer store, disk full,
    read-only, or a caller error that would break the store's invariants."""


class StoreCorruption(StoreError):
    """A stored record failed its checksum or its structure is impossible."""

    def __init__(self, database: str, key: bytes, detail: str):
        self.database = database
        self.key = bytes(key)
        self.detail = detail
        super().__init__(f"store corruption in database {database!r} at key "
                         f"{describe_key(database, self.key)}: {detail}")


def describe_key(database: str, key: bytes) -> str:
    """A readable key name: heights for height-keyed databases, hex otherwise."""
    if database in ("blocks", "commits") and len(key) == 8:
        return f"height {HEIGHT.unpack(key)[0]}"
    if database == "wal" and len(key) == 16:
        return f"height {HEIGHT.unpack(key[:8])[0]} entry {HEIGHT.unpack(key[8:])[0]}"
    if database == "meta" and key.isalnum():
        return repr(key.decode())
    if database == "tx_index" and len(key) == 21 and key[:1] == b"R":
        first, last = HEIGHT.unpack(key[1:9])[0], HEIGHT.unpack(key[9:17])[0]
        return f"run of heights {first}..{last}"
    return key.hex() if key else "(empty)"


def height_key(height: int) -> bytes:
    return HEIGHT.pack(height)


def tag(database: str, key: bytes, payload) -> bytes:
    # BLAKE3 as in engine.hashing; the `blake3` package is used here because for one large
    # buffer per call it measured faster (44 us vs 64-109 us for a 260 KB block record).
    h = _blake3_pkg(database.encode())
    h.update(b"\0")
    h.update(key)
    h.update(_blake3_pkg(payload).digest())
    return h.digest()[:TAG_BYTES]


def seal(database: str, key: bytes, payload) -> bytes:
    """``payload`` followed by its tag."""
    return b"".join((payload, tag(database, key, payload)))


def seal_many(database: str, keys: list[bytes], payloads: list[bytes]) -> list[bytes]:
    """``[seal(database, k, p) ...]`` for many small records (a block's state writes): both
    hashing rounds go through the native SIMD batch call instead of two calls per record."""
    from engine.hashing import blake3_many  # bound late: engine.hashing loads the native kernel

    if not payloads:
        return []
    inner = blake3_many(payloads)
    outer = blake3_many(concat_many(database.encode() + b"\0", keys, inner))
    return concat_many(b"", payloads, outer, TAG_BYTES)


def unseal_many(database: str, keys: list[bytes], values: list) -> list[bytes | None]:
    """``[None if v is None else bytes(unseal(database, k, v)) ...]`` for many small records
    (buffers of one read transaction: call it inside that transaction), split natively and the
    tags checked with two native batch hashing calls (StoreCorruption naming the first bad
    record)."""
    from engine.hashing import blake3_many  # bound late: engine.hashing loads the native kernel

    try:
        placed, found_keys, payloads, tags = split_sealed(keys, values, TAG_BYTES)
    except ValueError as e:
        if len(e.args) != 2:
            raise
        raise StoreCorruption(database, e.args[1], e.args[0]) from None
    if payloads:
        inner = blake3_many(payloads)
        outer = blake3_many(concat_many(database.encode() + b"\0", found_keys, inner))
        bad = first_tag_mismatch(outer, tags, TAG_BYTES)
        if bad >= 0:
            raise StoreCorruption(database, found_keys[bad], "checksum mismatch")
    return placed


def unseal(database: str, key: bytes, value) -> memoryview:
    """The payload of a sealed ``value`` (a view into it); StoreCorruption if the tag is wrong."""
    view = memoryview(value)
    if len(view) < TAG_BYTES:
        raise StoreCorruption(database, key, f"record of {len(view)} bytes is shorter than its tag")
    payload = view[:-TAG_BYTES]
    if tag(database, key, payload) != bytes(view[-TAG_BYTES:]):
        raise StoreCorruption(database, key, "checksum mismatch")
    return payload
