"""A Merkle commitment to a key/value state, cheap to update per block and able to prove a key's
value or its absence (the kvstore's app hash; docs/formats.md, "State commitment").

Design (measured in README "Verifying another chain"): every key is hashed into one of
``BUCKETS`` (4096) buckets by the top 12 bits of ``kh = H(key)``. A bucket's bytes are its
entries ``kh || H(value)`` (64 bytes each) sorted by ``kh``; the state root is the suite's
Merkle root (RFC 6962 shape) over the 4096 bucket byte strings. H and the tree are the chain
suite's (``suite``, default ``ed25519-blake3``): BLAKE3 and the engine's BLAKE3 tree (a
bucket's leaf hash ``BLAKE3(bucket bytes)``), or on an ``sm2-sm3`` chain SM3 and the SM3 tree
(leaf hash ``SM3(0x00 || bucket bytes)``), so every hash of such a chain is SM3. A block that writes k keys recomputes at most k buckets
(each ~N/4096 entries: 25 at 100,000 keys) and one root over 4096 leaf hashes (native, ~0.1 ms),
never anything proportional to the whole state.

A proof for ``key`` is the bucket's entries plus the 12-hash audit path of the bucket: the value
is proven by the entry ``kh || BLAKE3(value)``, absence by the sorted bucket lacking ``kh``.
At 100,000 keys a proof is ~2 KB.

History: the tree keeps, for the last ``history_heights`` heights, what each block changed
(old values, old bucket hashes), so it answers a proof for the state after any of those heights
by rolling a copy back, without storing whole versions. The oldest heights are also dropped
while more than ``history_writes_max`` writes are kept, so memory stays bounded under load
(an idle chain keeps its full window).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from engine import _native_hash, _native_sm
from engine.hashing import (
    HASH_BYTES,
    MerkleProof,
    blake3,
    blake3_many,
    merkle_root_from_hashes,
    sm3,
    sm3_many,
    sm3_merkle_root_from_hashes,
    verify_merkle_proof,
    verify_sm3_merkle_proof,
)
from engine.suite import ED25519_BLAKE3, SM2_SM3, Suite, get_suite

__all__ = ["BUCKETS", "StateProof", "StateTree", "bucket_of", "verify_state_proof"]

BUCKET_BITS = 12
BUCKETS = 1 << BUCKET_BITS
assert BUCKET_BITS == 12, "the native buckets (csrc/statetree/bucket_tree.h) are 4096"
ENTRY_BYTES = 2 * HASH_BYTES
#: Proof heights kept by default (each costs the old values and bucket hashes of one block).
HISTORY_HEIGHTS = 1000
#: Writes kept in the history at most (about 200 bytes each): the window shrinks under load.
HISTORY_WRITES_MAX = 200_000


def bucket_of(key_hash: bytes) -> int:
    """The bucket of a key, from its hash (the top ``BUCKET_BITS`` bits)."""
    return int.from_bytes(key_hash[:2], "big") >> (16 - BUCKET_BITS)


class _Hashes(NamedTuple):
    """The hashing of a tree of one suite."""

    one: Callable[[bytes], bytes]
    many: Callable[..., list[bytes]]
    #: Root over packed leaf hashes.
    root: Callable[..., bytes]
    #: Whether a proof leads from a bucket's raw bytes to the root.
    verify: Callable[[bytes, bytes, MerkleProof], bool]
    buckets: Callable[[], object]


_HASHES = {
    ED25519_BLAKE3: _Hashes(blake3, blake3_many, merkle_root_from_hashes, verify_merkle_proof,
                            _native_hash.BucketTree),
    SM2_SM3: _Hashes(sm3, sm3_many, sm3_merkle_root_from_hashes, verify_sm3_merkle_proof,
                     _native_sm.BucketTree),
}


def _hashes(suite: Suite | str | None) -> _Hashes:
    return _HASHES[get_suite(suite).name]


@dataclass(frozen=True)
class StateProof:
    """That ``key`` has ``value`` (None: is absent) in the state after ``height``, whose root is
    the ``app_hash`` of the header at ``height + 1``."""

    key: bytes
    value: bytes | None
    height: int
    bucket: int
    entries: bytes
    path: tuple[bytes, ...]

    def to_json(self) -> dict:
        return {"key": self.key.hex(), "value": None if self.value is None else self.value.hex(),
                "height": self.height, "bucket": self.bucket, "entries": self.entries.hex(),
                "path": [p.hex() for p in self.path]}

    @classmethod
    def from_json(cls, obj: object) -> StateProof:
        """Parse the JSON form (ValueError naming the field when malformed: it comes from a
        node the caller does not trust)."""
        if not isinstance(obj, dict):
            raise ValueError("a state proof must be a JSON object")  # noqa: TRY004 - peer data
        try:
            value = obj["value"]
            path = obj["path"]
            if not isinstance(path, list) or len(path) != BUCKET_BITS:
                raise ValueError(f"path must list {BUCKET_BITS} hashes")
            height, bucket = obj["height"], obj["bucket"]
            if type(height) is not int or height < 0:
                raise ValueError("height must be a non-negative int")
            if type(bucket) is not int or not 0 <= bucket < BUCKETS:
                raise ValueError(f"bucket must be in 0..{BUCKETS - 1}")
            return cls(bytes.fromhex(obj["key"]),
                       None if value is None else bytes.fromhex(value), height, bucket,
                       bytes.fromhex(obj["entries"]), tuple(bytes.fromhex(p) for p in path))
        except KeyError as e:
            raise ValueError(f"state proof lacks {e.args[0]!r}") from None
        except (TypeError, AttributeError) as e:
            raise ValueError(f"state proof field has the wrong type: {e}") from None


def verify_state_proof(app_hash: bytes, proof: StateProof,
                       suite: Suite | str | None = None) -> None:
    """Raise ValueError with the reason unless ``proof`` shows ``proof.key`` holding
    ``proof.value`` (or being absent when None) under the state root ``app_hash`` of a tree
    of ``suite`` (default ``ed25519-blake3``)."""
    if not isinstance(proof, StateProof):
        raise TypeError(f"proof must be a StateProof, not {type(proof).__name__}")
    h = _hashes(suite)
    kh = h.one(proof.key)
    if bucket_of(kh) != proof.bucket:
        raise ValueError(f"the key belongs to bucket {bucket_of(kh)}, the proof shows bucket "
                         f"{proof.bucket}")
    entries = proof.entries
    if len(entries) % ENTRY_BYTES:
        raise ValueError("bucket entries are not a whole number of 64-byte entries")
    found = None
    previous = b""
    for off in range(0, len(entries), ENTRY_BYTES):
        ekh = entries[off:off + HASH_BYTES]
        if ekh <= previous:
            raise ValueError("bucket entries are not strictly sorted by key hash")
        previous = ekh
        if ekh == kh:
            found = entries[off + HASH_BYTES:off + ENTRY_BYTES]
    if proof.value is None:
        if found is not None:
            raise ValueError("the proof claims absence but the bucket holds the key")
    elif found is None:
        raise ValueError("the bucket does not hold the key")
    elif found != h.one(proof.value):
        raise ValueError("the bucket holds another value for the key")
    if len(proof.path) != BUCKET_BITS or not h.verify(
            app_hash, entries, MerkleProof(proof.bucket, BUCKETS, proof.path)):
        raise ValueError("the bucket's audit path does not lead to the app hash")


class StateTree:
    """The bucketed commitment of a key/value state, with a bounded history for proofs.

    The buckets live in native memory (``csrc/statetree/``): a block's writes go in as packed
    key and value hashes in one call, which inserts, replaces or deletes each entry in its
    sorted bucket and rehashes the touched buckets side by side, so no Python runs per write
    beyond the two hashing calls. The history keeps each height's keys, key hashes and old
    values as the lists they arrived in, plus the touched buckets' old leaf hashes. Every hash
    is the ``suite``'s (default ``ed25519-blake3``: BLAKE3; ``sm2-sm3``: SM3)."""

    def __init__(self, history_heights: int = HISTORY_HEIGHTS,
                 history_writes_max: int = HISTORY_WRITES_MAX, *,
                 suite: Suite | str | None = None):
        #: The chain suite whose hashes the tree uses (ValueError/TypeError for no suite).
        self.suite = get_suite(suite)
        self._h = _HASHES[self.suite.name]
        if type(history_heights) is not int or history_heights < 0:
            raise ValueError("history_heights must be a non-negative int")
        if type(history_writes_max) is not int or history_writes_max < 0:
            raise ValueError("history_writes_max must be a non-negative int")
        self.history_heights = history_heights
        self.history_writes_max = history_writes_max
        self._reset(0)

    def _reset(self, height: int) -> None:
        self._tree: Any = self._h.buckets()
        self._root: bytes | None = None
        self.height = height
        # height -> _Undo of the block at that height
        self._undo: dict[int, _Undo] = {}
        self._undo_writes: dict[int, int] = {}
        #: (height, the height before it) of the last apply that :meth:`rollback` can undo.
        self._last_apply: tuple[int, int] | None = None

    # ---- building and updating ----

    def load(self, items: Iterable[tuple[bytes, bytes]], height: int) -> None:
        """Start over from a whole state (a restart), at ``height``; history is lost."""
        pairs = list(items)
        self._reset(height)
        if not pairs:
            return
        khs = self._h.many([k for k, _ in pairs])
        vhs = self._h.many([v for _, v in pairs])
        self._tree.apply(b"".join(khs), b"".join(vhs), None)

    def apply(self, height: int, writes: Mapping[bytes, bytes | None],
              old_value: Callable[[bytes], bytes | None], *,
              old_values: Callable[[list[bytes]], list[bytes | None]] | None = None) -> bytes:
        """Apply the writes of block ``height`` (None deletes); ``old_value(key)`` reads the
        state before the block (for the history), or ``old_values(keys)`` all of them in one
        call when given. Returns the new root."""
        keys = list(writes)
        history = bool(self.history_heights)
        undo = _Undo([], [], [], b"", b"")
        if keys:
            values = list(writes.values())
            khs = self._h.many(keys, threads=1)
            live: bytes | None = None  # every write is live (no deletes): no flags
            if None in values:
                live = bytes([v is not None for v in values])
            present = [v for v in values if v is not None] if live is not None \
                else cast("list[bytes]", values)
            vhs = b"".join(self._h.many(present, threads=1)) if present else b""
            packed = b"".join(khs)
            olds: list[bytes | None] = []
            if history:
                # Only keys the tree holds have an old value to read: a new key (most writes
                # of a growing state) costs no read of the store.
                flags = self._tree.contains(packed)
                if 0 not in flags:  # every key held (a full state's rewrites): read them all
                    olds = _read_olds(keys, old_value, old_values)
                elif 1 in flags:
                    found = iter(_read_olds([k for k, h in zip(keys, flags) if h], old_value,
                                            old_values))
                    olds = [next(found) if h else None for h in flags]
                else:
                    olds = [None] * len(keys)
            touched, old_leaves = self._tree.apply(packed, vhs, live)
            self._root = None
            undo = _Undo(keys, khs, olds, touched, old_leaves)
        if history:
            self._undo[height] = undo
            self._undo_writes[height] = len(keys)
            kept = sum(self._undo_writes.values())
            for h in sorted(self._undo):
                if h > height - self.history_heights and (kept <= self.history_writes_max
                                                          or h == height):
                    break
                kept -= self._undo_writes.pop(h)
                del self._undo[h]
        self._last_apply = (height, self.height) if history else None
        self.height = height
        return self.root()

    def rollback(self, height: int) -> bytes:
        """Undo the last :meth:`apply`, that of block ``height`` (a block executed before it
        was decided, then not decided: engine/app.py ``optimistic_execution``). The state
        and root are again those before the block; history heights the apply dropped to stay
        within its bounds stay dropped. Returns the root. Raises ValueError when the last apply
        was not of ``height`` or the tree keeps no history (it holds no old values then)."""
        if self._last_apply is None or self._last_apply[0] != height:
            raise ValueError(f"cannot roll back height {height}: the last apply that can be "
                             f"undone is {self._last_apply and self._last_apply[0]}")
        undo = self._undo.pop(height)
        self._undo_writes.pop(height)
        if undo.keys:
            live = bytes([v is not None for v in undo.olds])
            present = [v for v in undo.olds if v is not None]
            vhs = b"".join(self._h.many(present, threads=1)) if present else b""
            self._tree.apply(b"".join(undo.khs), vhs, live)
            self._root = None
            leaves = self._tree.leaves()
            for j in range(len(undo.touched) // 2):
                b = int.from_bytes(undo.touched[2 * j:2 * j + 2], "little")
                if leaves[HASH_BYTES * b:HASH_BYTES * (b + 1)] != \
                        undo.old_leaves[HASH_BYTES * j:HASH_BYTES * (j + 1)]:
                    raise RuntimeError(f"rolling back height {height} left bucket {b} unlike "
                                       "before the block (the old values read were wrong)")
        self.height = self._last_apply[1]
        self._last_apply = None
        return self.root()

    def root(self) -> bytes:
        if self._root is None:
            # 4096 leaves: one thread is faster than waking the pool.
            self._root = self._h.root(self._tree.leaves(), threads=1)
        return self._root

    def __len__(self) -> int:
        """Keys in the current state."""
        return len(self._tree)

    # ---- proofs ----

    def heights_kept(self) -> range:
        """The heights whose state this tree can prove (the current one and its history)."""
        low = self.height
        while low in self._undo and low - 1 >= 0:
            low -= 1
        return range(low, self.height + 1)

    def prove(self, key: bytes, current_value: bytes | None, height: int | None = None
              ) -> StateProof:
        """The proof of ``key`` in the state after ``height`` (default: the current one).
        ``current_value`` is the key's value in the current state. Raises ValueError for a
        height outside :meth:`heights_kept`."""
        if not isinstance(key, bytes) or not key:
            raise TypeError("key must be non-empty bytes")
        at = self.height if height is None else height
        kept = self.heights_kept()
        if at not in kept:
            raise ValueError(f"state at height {at} is not kept (kept: {kept.start}.."
                             f"{kept.stop - 1})")
        kh = self._h.one(key)
        b = bucket_of(kh)
        value = current_value
        raw = self._tree.bucket(b)
        bucket = {raw[o:o + HASH_BYTES]: raw[o:o + ENTRY_BYTES]
                  for o in range(0, len(raw), ENTRY_BYTES)}
        leaves = self._tree.leaves()
        if at != self.height:
            rolled = bytearray(leaves)
            for h in range(self.height, at, -1):
                undo = self._undo[h]
                for k, k_hash, old in zip(undo.keys, undo.khs, undo.olds):
                    if bucket_of(k_hash) != b:
                        continue
                    if old is None:
                        bucket.pop(k_hash, None)
                    else:
                        bucket[k_hash] = k_hash + self._h.one(old)
                    if k == key:
                        value = old
                for j in range(len(undo.touched) // 2):
                    ub = int.from_bytes(undo.touched[2 * j:2 * j + 2], "little")
                    rolled[HASH_BYTES * ub:HASH_BYTES * (ub + 1)] = \
                        undo.old_leaves[HASH_BYTES * j:HASH_BYTES * (j + 1)]
            leaves = bytes(rolled)
        entries = b"".join(bucket[k] for k in sorted(bucket))
        return StateProof(key, value, at, b, entries, _perfect_path(leaves, b, self._h.root))


def _read_olds(keys: list[bytes], old_value: Callable[[bytes], bytes | None],
               old_values: Callable[[list[bytes]], list[bytes | None]] | None
               ) -> list[bytes | None]:
    """The state's values of ``keys`` before a block: one batch call when the caller gave
    one, else key by key; a batch answering another count is refused."""
    if old_values is None:
        return [old_value(k) for k in keys]
    olds = list(old_values(keys))
    if len(olds) != len(keys):
        raise ValueError(f"old_values answered {len(olds)} values for {len(keys)} keys")
    return olds


class _Undo(NamedTuple):
    """What one block changed: its keys, their hashes and values before the block (None:
    absent), the buckets it touched (little-endian uint16 each) and their leaf hashes before."""

    keys: list[bytes]
    khs: list[bytes]
    olds: list[bytes | None]
    touched: bytes
    old_leaves: bytes


def _perfect_path(leaf_hashes: bytes, index: int, root: Callable[..., bytes]
                  ) -> tuple[bytes, ...]:
    """The audit path of leaf ``index`` in the perfect tree over ``leaf_hashes`` (packed, a
    power of two of them): the sibling subtree's root at each level (``root`` over packed
    leaf hashes, the suite's), computed natively."""
    path = []
    for level in range(BUCKET_BITS):
        start = ((index >> level) ^ 1) << level
        path.append(root(
            leaf_hashes[HASH_BYTES * start:HASH_BYTES * (start + (1 << level))], threads=1))
    return tuple(path)
