"""The transaction index: tx id -> (height, index), laid out for LMDB's write pattern.

Why not one key per transaction: random 32-byte keys make every block copy-on-write about one
B+tree leaf page per transaction (measured here: 34x write amplification). Instead the index is a small log-structured merge tree
kept inside the ``tx_index`` database:

- each block adds one *run*: its entries sorted by id, stored as one value under a key that sorts
  after every earlier run (``b"R" || first height || last height || count``, big-endian);
- when the newest ``TX_INDEX_MERGE_FANOUT`` runs are of the same size tier
  (``floor(log_fanout(count))``), they are merged into one run, in the same write transaction.
  Every entry is rewritten about log_fanout(total / block) times, sequentially; a lookup binary
  searches each run (at most ``fanout - 1`` runs per tier).

An entry is two little-endian u64: the first 8 bytes of the tx id read as a big-endian number
(so entries sort like ids) and the location ``height << 24 | index``. A prefix can collide, so a
lookup returns candidates and the store confirms each by hashing the stored transaction. A run
value is ``u32 count | u32 chunks | fence (first key of each chunk) | chunk tags (16 B each) |
header tag (16 B) | entries``; the header tag covers the fence and the chunk tags; each chunk tag
(BLAKE3 keyed by the run key) covers 256 entries, so a lookup verifies only the chunk it reads.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from engine.hashing import HASH_BYTES, blake3, blake3_many_packed
from engine.store._records import HEIGHT, TAG_BYTES, StoreCorruption

DB = "tx_index"
TX_INDEX_MERGE_FANOUT = 16
CHUNK_ENTRIES = 256
ENTRY_BYTES = 16
LOC_INDEX_BITS = 24
#: Transactions one block may hold (the location packs the index into 24 bits).
block_txs_max = 1 << LOC_INDEX_BITS
_RUN_HEADER = struct.Struct("<II")
ENTRY_DTYPE = _ENTRY_DTYPE = np.dtype("<u8")  # little-endian: zero-copy on the hosts we run on
_ID_PREFIX_DTYPE = np.dtype(">u8")


def run_key(first: int, last: int, count: int) -> bytes:
    return b"R" + HEIGHT.pack(first) + HEIGHT.pack(last) + count.to_bytes(4, "big")


def parse_run_key(key: bytes) -> tuple[int, int, int]:
    if len(key) != 21 or key[:1] != b"R":
        raise StoreCorruption(DB, key, "not a run key")
    first, last = HEIGHT.unpack(key[1:9])[0], HEIGHT.unpack(key[9:17])[0]
    count = int.from_bytes(key[17:21], "big")
    if first > last or count == 0:
        raise StoreCorruption(DB, key, "impossible run key")
    return first, last, count


def tier(count: int) -> int:
    t = 0
    while count >= TX_INDEX_MERGE_FANOUT:
        count //= TX_INDEX_MERGE_FANOUT
        t += 1
    return t


def block_entries(height: int, tx_ids_packed: bytes) -> np.ndarray:
    """The sorted (n, 2) uint64 entries of one block; ``tx_ids_packed`` is n * 32 bytes."""
    n = len(tx_ids_packed) // 32
    keys = np.frombuffer(tx_ids_packed, dtype=_ID_PREFIX_DTYPE).reshape(n, 4)[:, 0].astype(np.uint64)
    locs = (np.uint64(height) << np.uint64(LOC_INDEX_BITS)) + np.arange(n, dtype=np.uint64)
    order = np.argsort(keys)  # ties need no order: lookups sort candidates by location
    return np.stack([keys[order], locs[order]], axis=1)


def encode_run(key: bytes, entries: np.ndarray) -> bytes:
    """The run value for sorted (n, 2) uint64 ``entries`` stored under ``key``."""
    body = entries.astype(_ENTRY_DTYPE, copy=False).tobytes()
    tags = chunk_tags(key, body)
    fence = entries[::CHUNK_ENTRIES, 0].astype(_ENTRY_DTYPE).tobytes()
    header = _RUN_HEADER.pack(len(entries), len(tags) // TAG_BYTES) + fence + tags
    return b"".join((header, _header_tag(key, header), body))


def _chunk_key(key: bytes) -> bytes:
    return blake3(b"tx_index/chunk\0" + key)


def chunk_tags(key: bytes, body) -> bytes:
    """The tag of every 256-entry chunk of ``body``: BLAKE3 keyed by the run key, one native
    batch over the buffer (no copies)."""
    chunk_bytes = CHUNK_ENTRIES * ENTRY_BYTES
    offsets = np.arange(0, len(body) + chunk_bytes, chunk_bytes, dtype=np.uint64)
    offsets[-1] = len(body)
    if len(offsets) > 2 and offsets[-2] == offsets[-1]:
        offsets = offsets[:-1]
    hashes = blake3_many_packed(body, offsets, key=_chunk_key(key))
    return np.frombuffer(hashes, np.uint8).reshape(-1, HASH_BYTES)[:, :TAG_BYTES].tobytes()


def _header_tag(key: bytes, header) -> bytes:
    return blake3(b"tx_index/run\0" + key + bytes(header))[:TAG_BYTES]


class Run:
    """A run read from the database: header verified, chunks verified as they are read."""

    __slots__ = ("_body_off", "_fence", "_tags", "_value", "count", "first", "key", "last")

    def __init__(self, key: bytes, value):
        self.key = bytes(key)
        self.first, self.last, self.count = parse_run_key(self.key)
        view = memoryview(value)
        if len(view) < _RUN_HEADER.size:
            raise StoreCorruption(DB, self.key, "run shorter than its header")
        count, chunks = _RUN_HEADER.unpack_from(view)
        expect_chunks = -(-self.count // CHUNK_ENTRIES)
        header_len = _RUN_HEADER.size + chunks * (8 + TAG_BYTES)
        if count != self.count or chunks != expect_chunks or \
                len(view) != header_len + TAG_BYTES + count * ENTRY_BYTES:
            raise StoreCorruption(DB, self.key, "run header does not match its key or length")
        header = bytes(view[:header_len + TAG_BYTES])
        if _header_tag(self.key, header[:header_len]) != header[header_len:]:
            raise StoreCorruption(DB, self.key, "run header checksum mismatch")
        self._fence = np.frombuffer(header, _ENTRY_DTYPE, chunks, _RUN_HEADER.size)
        self._value = view
        self._tags = _RUN_HEADER.size + chunks * 8
        self._body_off = header_len + TAG_BYTES

    def chunk(self, i: int) -> np.ndarray:
        """Entries of chunk ``i`` as (m, 2) uint64, after checking its tag."""
        start = i * CHUNK_ENTRIES
        m = min(CHUNK_ENTRIES, self.count - start)
        off = self._body_off + start * ENTRY_BYTES
        raw = self._value[off:off + m * ENTRY_BYTES]
        want = bytes(self._value[self._tags + i * TAG_BYTES:self._tags + (i + 1) * TAG_BYTES])
        if blake3(raw, key=_chunk_key(self.key))[:TAG_BYTES] != want:
            raise StoreCorruption(DB, self.key, f"checksum mismatch in entries {start}..{start + m - 1}")
        entries = np.frombuffer(raw, _ENTRY_DTYPE).reshape(m, 2)
        if m > 1 and np.any(entries[1:, 0] < entries[:-1, 0]):
            raise StoreCorruption(DB, self.key, "entries out of order")
        if entries[0, 0] != self._fence[i]:
            raise StoreCorruption(DB, self.key, f"fence of chunk {i} does not match its entries")
        return entries

    def all_entries(self) -> np.ndarray:
        """Every entry as (count, 2) uint64 (a copy), all chunk tags checked in one batch."""
        body = self._value[self._body_off:]
        got = chunk_tags(self.key, body)
        want = bytes(self._value[self._tags:self._tags + len(got)])
        if got != want:
            bad = next(i for i in range(0, len(got), TAG_BYTES)
                       if got[i:i + TAG_BYTES] != want[i:i + TAG_BYTES]) // TAG_BYTES
            first = bad * CHUNK_ENTRIES
            raise StoreCorruption(DB, self.key, f"checksum mismatch in entries {first}.."
                                  f"{min(first + CHUNK_ENTRIES, self.count) - 1}")
        entries = np.frombuffer(body, _ENTRY_DTYPE).reshape(self.count, 2).copy()
        if np.any(entries[1:, 0] < entries[:-1, 0]):
            raise StoreCorruption(DB, self.key, "entries out of order")
        if not np.array_equal(entries[::CHUNK_ENTRIES, 0], self._fence):
            raise StoreCorruption(DB, self.key, "fence does not match the entries")
        return entries

    def find(self, prefix: int) -> list[int]:
        """Locations whose id starts with ``prefix`` (a u64)."""
        p = np.uint64(prefix)
        lo = max(int(np.searchsorted(self._fence, p, side="left")) - 1, 0)
        hi = int(np.searchsorted(self._fence, p, side="right"))
        found: list[int] = []
        for i in range(lo, max(hi, lo + 1)):
            entries = self.chunk(i)
            a = int(np.searchsorted(entries[:, 0], p, side="left"))
            b = int(np.searchsorted(entries[:, 0], p, side="right"))
            found += [int(x) for x in entries[a:b, 1]]
        return found


class RunCache:
    """Verified runs kept in memory for lookups: cache key -> (tag, sorted keys, locations).

    A run never changes under its key (merges and prunes write new keys; a block record is
    written once), so an entry stays valid while the stored run still carries the same tag;
    every run is read and verified once and a lookup is then a binary search in memory, with no
    per-lookup hashing. Runs beyond ``cache_bytes_max`` are searched without caching.
    Cache keys: the run key for merged runs, ``b"B" || height`` for a block's own run.
    """

    def __init__(self, cache_bytes_max: int = 128 << 20):
        self.cache_bytes_max = cache_bytes_max
        self._runs: dict[bytes, tuple[bytes, np.ndarray, np.ndarray]] = {}
        self._bytes = 0

    def search(self, key: bytes, tag: bytes, load, prefixes: np.ndarray,
               found: list[tuple[int, int]], *, run: Run | None = None) -> None:
        """Append (query index, location) for every entry of run ``key`` whose id prefix is in
        ``prefixes``; ``load()`` returns the verified (count, 2) entries on a cache miss. A
        merged ``run`` too large for the cache is searched on disk, chunk by chunk."""
        cached = self._runs.get(key)
        if cached is None or cached[0] != tag:
            self.forget(key)
            if run is not None and self._bytes + run.count * ENTRY_BYTES > self.cache_bytes_max:
                for q, p in enumerate(prefixes.tolist()):
                    found += [(q, loc) for loc in run.find(p)]
                return
            entries = load()
            keys, locs = np.ascontiguousarray(entries[:, 0]), np.ascontiguousarray(entries[:, 1])
            self._keep(key, tag, keys, locs)
        else:
            keys, locs = cached[1], cached[2]
        lo = np.searchsorted(keys, prefixes, side="left")
        hi = np.searchsorted(keys, prefixes, side="right")
        for q in np.nonzero(hi > lo)[0].tolist():
            found += [(q, int(x)) for x in locs[lo[q]:hi[q]]]

    def entries(self, key: bytes, tag: bytes, load) -> np.ndarray:
        """The verified (count, 2) entries of a run: from memory when cached, else ``load()``."""
        cached = self._runs.get(key)
        if cached is not None and cached[0] == tag:
            return np.stack([cached[1], cached[2]], axis=1)
        return load()

    def remember(self, key: bytes, tag: bytes, entries: np.ndarray) -> None:
        """Cache a run just written (``entries`` are the ones stored under ``tag``)."""
        self.forget(key)
        self._keep(key, tag, np.ascontiguousarray(entries[:, 0]),
                   np.ascontiguousarray(entries[:, 1]))

    def _keep(self, key: bytes, tag: bytes, keys: np.ndarray, locs: np.ndarray) -> None:
        size = keys.nbytes + locs.nbytes
        if self._bytes + size > self.cache_bytes_max:
            return
        self._runs[key] = (bytes(tag), keys, locs)
        self._bytes += size

    def forget(self, key: bytes) -> None:
        item = self._runs.pop(key, None)
        if item is not None:
            self._bytes -= item[1].nbytes + item[2].nbytes

    def retain(self, live: set[bytes]) -> None:
        """Drop every cached run whose key is not in ``live``."""
        for key in [k for k in self._runs if k not in live]:
            self.forget(key)


def run_tag(key: bytes, value) -> bytes:
    """The header tag of a merged run value (identifies its content for the cache)."""
    view = memoryview(value)
    return bytes(view[_tag_offset(key, view):][:TAG_BYTES])


def _tag_offset(key: bytes, view) -> int:
    """Where the header tag of a run value starts (0 if the value is too short: the Run
    constructor then reports it)."""
    if len(view) < _RUN_HEADER.size:
        return 0
    chunks = _RUN_HEADER.unpack_from(view)[1]
    return min(_RUN_HEADER.size + chunks * (8 + TAG_BYTES), len(view))


def iter_runs(txn, dbi) -> Iterator[tuple[bytes, memoryview]]:
    cur = txn.cursor(db=dbi)
    for key, value in cur:
        yield bytes(key), memoryview(value)


def merge_tail(txn, dbi, cache: RunCache | None = None) -> None:
    """Keep run tiers non-increasing from the oldest run to the newest (a newest run of a
    higher tier absorbs the smaller runs just before it), then merge the newest runs while
    the newest ``fanout`` of them share one tier. Without the first rule, blocks whose sizes
    straddle a tier boundary (say 3,000 and 5,000 transactions in turn) never leave ``fanout``
    equal tiers at the tail, runs pile up one per block and every lookup slows down."""
    while _fold_smaller_into_newest(txn, dbi, cache):
        pass
    while True:
        keys: list[bytes] = []
        cur = txn.cursor(db=dbi)
        if not cur.last():
            return
        keys.append(bytes(cur.key()))
        while len(keys) < TX_INDEX_MERGE_FANOUT and cur.prev():
            keys.append(bytes(cur.key()))
        if len(keys) < TX_INDEX_MERGE_FANOUT:
            return
        if len({tier(parse_run_key(k)[2]) for k in keys}) != 1:
            return
        _merge(txn, dbi, keys, cache)


def _fold_smaller_into_newest(txn, dbi, cache: RunCache | None) -> bool:
    """Merge the newest run with the runs of lower tiers just before it; True if it did."""
    cur = txn.cursor(db=dbi)
    if not cur.last():
        return False
    keys = [bytes(cur.key())]
    newest_tier = tier(parse_run_key(keys[0])[2])
    while cur.prev():
        key = bytes(cur.key())
        if tier(parse_run_key(key)[2]) >= newest_tier:
            break
        keys.append(key)
    if len(keys) == 1:
        return False
    _merge(txn, dbi, keys, cache)
    return True


def _merge(txn, dbi, keys: list[bytes], cache: RunCache | None) -> None:
    """Replace the runs ``keys`` (newest first, consecutive) by one run."""
    keys = keys[::-1]  # oldest first, so a stable sort keeps lower heights first
    parts = []
    for k in keys:
        value = txn.get(k, db=dbi)
        load = lambda k=k, value=value: Run(k, value).all_entries()
        parts.append(cache.entries(k, run_tag(k, value), load) if cache is not None else load())
    first, last = parse_run_key(keys[0])[0], parse_run_key(keys[-1])[1]
    for k in keys:
        txn.delete(k, db=dbi)
        if cache is not None:
            cache.forget(k)
    write_run(txn, dbi, np.concatenate(parts), first, last, sort=True, cache=cache)


def write_run(txn, dbi, entries: np.ndarray, first: int, last: int, *, sort: bool,
              cache: RunCache | None = None) -> None:
    if sort:
        entries = entries[np.argsort(entries[:, 0], kind="stable")]  # merges sorted runs
    if len(entries) == 0:
        return
    key = run_key(first, last, len(entries))
    value = encode_run(key, entries)
    txn.put(key, value, db=dbi)
    if cache is not None:
        cache.remember(key, run_tag(key, value), entries)


def split_loc(loc: int) -> tuple[int, int]:
    return loc >> LOC_INDEX_BITS, loc & ((1 << LOC_INDEX_BITS) - 1)
