"""The Store class: one LMDB environment per node (docs/architecture.md).

See the package docstring (engine/store/__init__.py) for the API contract and the layout.
"""
from __future__ import annotations

import errno
import itertools
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import lmdb
import numpy as np

from engine.hashing import (
    HASH_BYTES,
    MerkleProof,
    blake3,
)
from engine.store import _codec, _txindex, _valsets
from engine.store._records import (
    HEIGHT,
    TAG_BYTES,
    StoreCorruption,
    StoreError,
    height_key,
    seal,
    seal_many,
    tag,
    unseal,
    unseal_many,
)
from engine.suite import Suite, get_suite

SCHEMA_VERSION = 2
MAGIC = b"engine/store/v1"
DATABASES = ("blocks", "block_hashes", "commits", "tx_index", "state", "meta", "wal", "signer")

map_bytes_default = 256 << 20
#: The map never grows past this (address space only; the file holds only used pages).
map_bytes_max = 1 << 40
map_grow_bytes_min = 64 << 20
map_grow_attempts_max = 64
state_key_bytes_max = 400          # LMDB's key limit is 511; the tag is in the value
#: The reusable record buffer is dropped after a block larger than this (memory back to the OS).
record_buffer_keep_bytes = 64 << 20
wal_entry_bytes_max = 64 << 20
#: Memory for verified tx index runs kept for lookups (16 bytes per committed tx).
tx_index_cache_bytes_max = 128 << 20
find_txs_ids_max = 1 << 20
#: Blocks whose index runs may wait for compact_index before save_block compacts by itself.
index_pending_blocks_max = 4 * _txindex.TX_INDEX_MERGE_FANOUT
#: Blocks one prune transaction removes (keeps a transaction's dirty pages bounded).
prune_blocks_per_txn_max = 4096
ZERO_HASH = bytes(HASH_BYTES)

# version, height, block hash, parent hash, app hash, tx root, app chain, header len, txs, results
_BLOCK = struct.Struct("<BQ32s32s32s32s32sIII")
_BLOCK_VERSION = 2
_SIGNER = struct.Struct("<QIB")
#: Signer history keys: b"h" || round u32 BE || step u8 (so they sort in signing order); the
#: value is ``u32 LE len(sign_bytes) || sign_bytes || signature``. They hold every signature of
#: the last record's height and are dropped when a higher height is signed.
_HISTORY = struct.Struct(">cIB")


@dataclass(frozen=True)
class StoredBlock:
    """A block as the store keeps it. ``header`` is the caller's opaque block bytes without the
    transactions; ``certificate`` is the commit certificate saved with the block."""

    height: int
    block_hash: bytes
    parent_hash: bytes
    header: bytes
    txs: list[bytes]
    results: list[bytes]
    certificate: bytes
    app_hash: bytes
    tx_root: bytes
    app_chain: bytes


@dataclass(frozen=True)
class TxLocation:
    """A committed transaction: the block height, its index in the block and its bytes."""

    height: int
    index: int
    tx: bytes


@dataclass(frozen=True)
class TxProof:
    """A transaction with its Merkle inclusion proof against the block's ``tx_root``."""

    location: TxLocation
    tx_root: bytes
    proof: MerkleProof


@dataclass(frozen=True)
class SignerRecord:
    """The last (height, round, step) this node signed, with the sign bytes and signature."""

    height: int
    round: int
    step: int
    sign_bytes: bytes
    signature: bytes


class DoubleSignRefused(StoreError):
    """Signing would regress the signer state or sign different bytes at the same step."""


def signed_before(last: SignerRecord | None, height: int, round: int, step: int,
                  sign_bytes: bytes) -> bytes | None:
    """The double-sign rule against the last signer record: the stored signature when these
    exact bytes were signed at this (height, round, step) already, None when signing may go
    ahead; DoubleSignRefused for a step below the last one, or other bytes at the same one."""
    if last is None:
        return None
    hrs, last_hrs = (height, round, step), (last.height, last.round, last.step)
    if hrs < last_hrs:
        raise DoubleSignRefused(f"refusing to sign {hrs}: already signed {last_hrs}")
    if hrs == last_hrs:
        if last.sign_bytes == sign_bytes:
            return last.signature
        raise DoubleSignRefused(f"refusing to sign different bytes at {hrs}")
    return None


def _bytes(value, name: str, length: int | None = None) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    b = bytes(value)
    if length is not None and len(b) != length:
        raise ValueError(f"{name} must be {length} bytes long, not {len(b)}")
    return b


def _uint(value, name: str, bits: int = 63, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not minimum <= value < (1 << bits):
        raise ValueError(f"{name} must be in [{minimum}, 2**{bits}), not {value}")
    return value


def _as_list(items, name: str) -> list:
    if isinstance(items, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"{name} must be a sequence of bytes, not {type(items).__name__}")
    return items if type(items) is list else list(items)


def _checked_changes(state_changes) -> list[tuple[bytes, bytes | None]]:
    """``(key, value)`` state changes with keys of 1..state_key_bytes_max bytes."""
    if type(state_changes) is not list:
        state_changes = list(state_changes)
    plain = _codec.plain_changes_end(state_changes, state_key_bytes_max)
    if plain == len(state_changes):  # the common shape throughout: checked in one native pass
        return state_changes
    changes = state_changes[:plain]
    for i, change in enumerate(state_changes[plain:], plain):
        # Fast path for the common shape; anything else gets the named checks below.
        if type(change) is tuple and len(change) == 2 and type(change[0]) is bytes \
                and 0 < len(change[0]) <= state_key_bytes_max \
                and (change[1] is None or type(change[1]) is bytes):
            changes.append(change)
            continue
        if not isinstance(change, tuple) or len(change) != 2:
            raise TypeError(f"state_changes[{i}] must be a (key, value) tuple")
        key = _bytes(change[0], f"state_changes[{i}] key")
        if not 0 < len(key) <= state_key_bytes_max:
            raise ValueError(f"state_changes[{i}] key must be 1..{state_key_bytes_max} bytes")
        value = None if change[1] is None else _bytes(change[1], f"state_changes[{i}] value")
        changes.append((key, value))
    return changes


def _joined_ids(tx_ids) -> bytes:
    """The ids concatenated; each must be ``HASH_BYTES`` bytes (TypeError/ValueError naming
    the first that is not). One C-level pass for the common case of a list of ids."""
    if type(tx_ids) is list and set(map(type, tx_ids)) <= {bytes} \
            and set(map(len, tx_ids)) <= {HASH_BYTES}:
        return b"".join(tx_ids)
    return b"".join(_bytes(t, f"tx_ids[{i}]", HASH_BYTES) for i, t in enumerate(tx_ids))


def _u32(view, off: int) -> int:
    return int.from_bytes(view[off:off + 4], "little")


def _stale_half(first: int, last: int, retain: int) -> bool:
    """Whether pruning below ``retain`` leaves at least half of the heights of the index run
    ``first..last`` stale (the rule for rewriting a run that straddles the base)."""
    return 2 * (retain - first) >= last - first + 1


def _copy(view) -> bytes | None:
    return None if view is None else bytes(view)


def _unpack_list(view: memoryview, table: int, n: int, end: int, key: bytes) -> list[bytes]:
    """The ``n`` items of an offsets table at ``table`` whose data ends exactly at ``end``."""
    offsets = np.frombuffer(view, dtype="<u4", count=n + 1, offset=table).tolist()
    data_off = table + 4 * (n + 1)
    if offsets[0] != 0 or data_off + offsets[-1] != end or \
            any(b < a for a, b in itertools.pairwise(offsets)):
        raise StoreCorruption("blocks", key, "impossible offset table")
    data = view[data_off:end]
    return [bytes(data[a:b]) for a, b in itertools.pairwise(offsets)]


class Store:
    """One node's LMDB environment: blocks, commits, tx index, app state, WAL, signer state.

    Not thread-safe: one thread (the node's event loop) uses a Store at a time.

    Durability (``sync=True``, the node's default): LMDB runs with ``metasync=False``, so every
    write transaction flushes its data pages before it writes its meta page, and that meta page
    reaches the disk with the next flush. A power cut can therefore undo the last transactions
    but never tear one or reorder two (LMDB's MDB_NOMETASYNC contract: atomicity, consistency
    and isolation kept, durability deferred): the store after a crash is always the state after
    some prefix of its transactions. Writes that must be on disk before the node acts on them
    (``durable``: a signature before it is sent, the genesis, a state-sync restore) flush once
    more after their commit, which also makes every earlier transaction durable. Everything
    else (block saves, WAL records of received inputs, index compaction, pruning) costs one
    flush instead of two and is made durable by the next signature at the latest, i.e. before
    anything that depends on it leaves the node. ``sync=False`` (tests, benchmarks) flushes
    only for ``durable`` writes.
    """

    def __init__(self, path, *, sync: bool = True, map_size: int | None = None,
                 readonly: bool = False, suite: Suite | str | None = None):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        if not isinstance(sync, bool):
            raise TypeError("sync must be a bool")
        if map_size is not None:
            _uint(map_size, "map_size", 48, 1 << 16)
        self.path = os.fspath(path)
        self.sync = sync
        self.readonly = readonly
        #: Durable writes made by this process (each one extra flush; see the class docstring).
        self.flushes_durable = 0
        self._env = self._open_env(map_size)
        self._dbs: dict[str, object] = {}
        self._runs = _txindex.RunCache(tx_index_cache_bytes_max)
        self._record = bytearray()
        #: Blocks waiting for compact_index as of this process's last save (None: unknown).
        self._index_pending: int | None = None
        #: The chain's crypto suite (tx ids, tx root, proofs): set at creation, fixed after.
        self.suite = get_suite(suite)
        #: State readers (snapshots) open on other threads: growing the map waits for them,
        #: because LMDB may not resize while a transaction of this process is open.
        self._readers = threading.Condition()
        self._readers_open = 0
        try:
            self._attach()
            self.suite = self._attach_suite(suite)
        except lmdb.Error as e:  # a damaged main database: LMDB's error, said as ours
            self._env.close()
            raise self._translate(e, f"open {self.path!r}") from None
        except BaseException:
            self._env.close()
            raise

    # ---- opening -------------------------------------------------------------------------
    def _open_env(self, map_size: int | None) -> lmdb.Environment:
        path = self.path
        if os.path.lexists(path) and not os.path.isdir(path):
            raise StoreError(f"{path!r} is a file, not a store directory")
        data = os.path.join(path, "data.mdb")
        exists = os.path.exists(data)
        if os.path.isdir(path) and not exists:
            extra = [n for n in os.listdir(path) if n != "lock.mdb"]
            if extra:
                raise StoreError(f"{path!r} is not an engine store: it holds other files "
                                 f"({', '.join(sorted(extra)[:3])}) and no data.mdb")
        if not exists and self.readonly:
            raise StoreError(f"no store at {path!r} (nothing to open read-only)")
        if not exists:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create store directory {path!r}: {e.strerror}") from None
        size = map_size or map_bytes_default
        if exists:
            size = max(size, os.path.getsize(data))
        try:
            return lmdb.open(path, map_size=size, subdir=True, max_dbs=len(DATABASES) + 2,
                             sync=self.sync, metasync=False, readonly=self.readonly,
                             create=not exists, lock=True, max_spare_txns=2)
        except lmdb.Error as e:
            raise self._translate(e, f"open {path!r}") from None

    def _attach(self) -> None:
        """Check the environment is ours (or empty) and open the named databases."""
        with self._env.begin() as txn:
            names = [bytes(k) for k, _ in txn.cursor()]
        foreign = [n for n in names if n.decode("latin-1") not in DATABASES]
        if foreign:
            raise StoreError(f"{self.path!r} holds a foreign LMDB environment "
                             f"(unknown database {foreign[0]!r}), not an engine store")
        if not names:
            if self.readonly:
                raise StoreError(f"{self.path!r} holds an empty LMDB environment, not a store")
            self._write(self._initialize)
        missing = [n for n in DATABASES if n.encode() not in names] if names else []
        if missing and self.readonly:
            raise StoreError(f"{self.path!r} lacks databases {missing}: not an engine store")
        try:
            for name in DATABASES:
                self._dbs[name] = self._env.open_db(name.encode(), create=not self.readonly)
        except lmdb.Error as e:
            raise StoreError(f"{self.path!r} is not an engine store: database {name!r}: "
                             f"{e}") from None
        with self._env.begin() as txn:
            magic = self._meta(txn, b"magic")
            schema = self._meta(txn, b"schema")
        if magic != MAGIC or schema is None or len(schema) != 4:
            raise StoreError(f"{self.path!r} is not an engine store (no engine magic in meta)")
        version = int.from_bytes(schema, "little")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path!r} has store schema {version}, newer than this "
                             f"engine's {SCHEMA_VERSION}; upgrade the engine")
        if version < SCHEMA_VERSION:
            raise StoreError(f"{self.path!r} has store schema {version}, written by an older "
                             f"engine; this engine reads schema {SCHEMA_VERSION} (sync the node "
                             f"into a new home)")

    def _attach_suite(self, wanted: Suite | str | None) -> Suite:
        """The suite recorded at creation (meta ``crypto``; absent: ``ed25519-blake3``). A store
        of one suite never opens as the other: a chain's suite cannot change after genesis."""
        raw = self._read(lambda txn: self._meta(txn, b"crypto"))
        stored = get_suite(raw.decode() if raw is not None else None)
        if wanted is not None and get_suite(wanted) is not stored:
            raise StoreError(f"{self.path!r} holds a {stored.name} chain, not "
                             f"{get_suite(wanted).name}: a chain's crypto suite cannot change "
                             f"after genesis")
        return stored

    def _initialize(self, txn) -> None:
        for name in DATABASES:
            self._dbs[name] = self._env.open_db(name.encode(), txn=txn, create=True)
        self._put_meta(txn, b"magic", MAGIC)
        self._put_meta(txn, b"schema", SCHEMA_VERSION.to_bytes(4, "little"))
        self._put_meta(txn, b"latest", HEIGHT.pack(0))
        self._put_meta(txn, b"base", HEIGHT.pack(0))
        self._put_meta(txn, b"indexed", HEIGHT.pack(0))
        if not self.suite.is_default:  # default stores keep the layout they always had
            self._put_meta(txn, b"crypto", self.suite.name.encode())

    def close(self) -> None:
        if not self.readonly and not self.closed:
            try:
                self._env.sync(True)  # the last meta page too (metasync is off)
            except lmdb.Error:
                pass  # a read-only file system or a full disk: nothing more can be saved
        self._env.close()
        self._closed = True

    @property
    def closed(self) -> bool:
        return getattr(self, "_closed", False)

    def __enter__(self) -> Store:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- transactions and errors -----------------------------------------------------------
    def _translate(self, e: lmdb.Error, what: str) -> StoreError:
        text = str(e)
        if isinstance(e, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.BadChecksumError,
                          lmdb.InvalidError, lmdb.VersionMismatchError, lmdb.PanicError)):
            return StoreCorruption("lmdb", b"", f"{what}: LMDB reports {type(e).__name__}: "
                                   f"{text} (the data file is damaged or not LMDB)")
        if isinstance(e, lmdb.ReadonlyError) or "Permission denied" in text or \
                os.strerror(errno.EACCES) in text or os.strerror(errno.EROFS) in text:
            return StoreError(f"{what}: the store is read-only ({text}); nothing was written")
        if any(os.strerror(n) in text for n in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)) or \
                isinstance(e, lmdb.DiskError):
            return StoreError(f"{what}: disk full ({text}); the transaction was aborted and "
                              f"the store is unchanged")
        if os.strerror(errno.EIO) in text:  # LMDB reports a short write (disk full) as EIO
            return StoreError(f"{what}: write failed, disk full or I/O error ({text}); the "
                              f"transaction was aborted and the store is unchanged")
        return StoreError(f"{what}: LMDB error {type(e).__name__}: {text}")

    def _grow(self) -> None:
        current = self._env.info()["map_size"]
        if current >= map_bytes_max:
            raise StoreError(f"store map is full at map_bytes_max={map_bytes_max}")
        new = min(max(current * 2, current + map_grow_bytes_min), map_bytes_max)
        with self._readers:
            while self._readers_open:
                self._readers.wait()
            self._env.set_mapsize(new)

    def _write(self, fn: Callable, *, durable: bool = False, what: str = "write",
               buffers: bool = False):
        """Run ``fn(txn)`` in one write transaction, growing the map and retrying when full.
        ``durable``: the transaction (and every one before it) is on disk when this returns,
        meta page included (see the class docstring), also in a store opened with sync=False.
        With ``buffers`` reads return views into the map, valid only until the next write."""
        if self.readonly:
            raise StoreError(f"{what}: the store was opened read-only")
        for _ in range(map_grow_attempts_max):
            try:
                begin = self._env.begin(write=True, buffers=True) if buffers else \
                    self._env.begin(write=True)
                with begin as txn:
                    result = fn(txn)
                if durable:
                    self._env.sync(True)
                    self.flushes_durable += 1
                return result
            except lmdb.MapFullError:
                self._grow()
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)
            except lmdb.Error as e:
                raise self._translate(e, what) from None
        raise StoreError(f"{what}: map kept filling after {map_grow_attempts_max} grows")

    def _read(self, fn: Callable, *, what: str = "read"):
        for _ in range(3):
            try:
                with self._env.begin(buffers=True) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)
            except lmdb.Error as e:
                raise self._translate(e, what) from None
        raise StoreError(f"{what}: the map kept being resized by another process")

    def _get(self, txn, db: str, key: bytes) -> memoryview | None:
        value = txn.get(key, db=self._dbs[db])
        return None if value is None else unseal(db, key, value)

    def _put(self, txn, db: str, key: bytes, payload, **kw) -> None:
        txn.put(key, seal(db, key, payload), db=self._dbs[db], **kw)

    def _meta(self, txn, name: bytes) -> bytes | None:
        dbi = self._dbs.get("meta") or self._env.open_db(b"meta", txn=txn, create=False)
        value = txn.get(name, db=dbi)
        return None if value is None else bytes(unseal("meta", name, value))

    def _put_meta(self, txn, name: bytes, payload: bytes) -> None:
        self._put(txn, "meta", name, payload)

    def _meta_height(self, txn, name: bytes) -> int:
        raw = self._meta(txn, name)
        if raw is None or len(raw) != 8:
            raise StoreCorruption("meta", name, "missing or not 8 bytes")
        return HEIGHT.unpack(raw)[0]

    # ---- heights -------------------------------------------------------------------------
    def latest_height(self) -> int:
        """Height of the newest stored block, 0 when the store holds none."""
        return self._read(lambda txn: self._meta_height(txn, b"latest"))

    def base_height(self) -> int:
        """Height of the oldest stored block (after pruning), 0 when the store holds none."""
        return self._read(lambda txn: self._meta_height(txn, b"base"))

    def app_hash(self, height: int | None = None) -> bytes | None:
        """The application hash after ``height`` (default: the latest), None if not stored."""
        if height is None:
            return self._read(lambda txn: self._meta(txn, b"app_hash"))
        block = self.load_block(height)
        return None if block is None else block.app_hash

    # ---- blocks --------------------------------------------------------------------------
    def save_block(self, height: int, block_hash: bytes, header: bytes, txs: Sequence[bytes],
                   certificate: bytes, *, parent_hash: bytes, app_hash: bytes,
                   results: Sequence[bytes] = (),
                   state_changes: Iterable[tuple[bytes, bytes | None]] = (),
                   tx_ids: Sequence[bytes] | bytes | None = None,
                   validator_set: tuple[int, bytes] | None = None) -> bytes:
        """Store a committed block in one write transaction and return its tx Merkle root.

        The transaction writes the block (``header`` plus ``txs``), its commit ``certificate``,
        the per-tx ``results`` (empty or one per tx), the application's ``state_changes``
        (``(key, value)``; value None deletes), the tx index, the latest height and app hash,
        and deletes the WAL of every height <= ``height``. ``height`` must be latest + 1 (any
        height >= 1 for the first block of an empty store); ``parent_hash`` must equal the
        stored hash of ``height - 1`` when that block is stored. ``tx_ids`` (BLAKE3 of each tx,
        as admission computed them) may be given to save hashing; they are trusted.
        ``validator_set`` ``(from_height, encoded set)`` records, in the same transaction, the
        set that signs ``from_height`` (> ``height``) and on (engine/store/_valsets.py).
        """
        args = self._block_args(height, block_hash, header, txs, certificate, parent_hash,
                                app_hash, results, state_changes, tx_ids)
        vset = None
        if validator_set is not None:
            from_height = _uint(validator_set[0], "validator_set height", 40, height + 1)
            vset = (from_height, _bytes(validator_set[1], "validator_set set"))

        def write(txn):
            out = self._save_block(txn, *args)
            if vset is not None:
                self._put_meta(txn, _valsets.key(vset[0]), vset[1])
            return out

        root, pending = self._write(write, what=f"save block {height}")
        self._index_pending = pending
        if pending >= index_pending_blocks_max:
            self.compact_index()  # the caller does not compact: keep lookups bounded anyway
        return root

    def _block_args(self, height, block_hash, header, txs, certificate, parent_hash, app_hash,
                    results, state_changes, tx_ids):
        height = _uint(height, "height", 40, 1)
        block_hash = _bytes(block_hash, "block_hash", HASH_BYTES)
        parent_hash = _bytes(parent_hash, "parent_hash", HASH_BYTES)
        app_hash = _bytes(app_hash, "app_hash", HASH_BYTES)
        header = _bytes(header, "header")
        certificate = _bytes(certificate, "certificate")
        txs = _as_list(txs, "txs")
        results = _as_list(results, "results")
        _codec.check_items(txs, "txs")
        _codec.check_items(results, "results")
        n = len(txs)
        if n > _txindex.block_txs_max - 1:
            raise ValueError(f"txs holds {n} transactions, more than {_txindex.block_txs_max - 1}")
        if len(results) not in (0, n):
            raise ValueError(f"results must be empty or hold one entry per tx ({n}), "
                             f"not {len(results)}")
        if tx_ids is None:
            ids = b"".join(self.suite.hash_many(txs)) if n else b""  # names a non-bytes tx
        elif isinstance(tx_ids, (bytes, bytearray, memoryview)):
            ids = bytes(tx_ids)
        else:
            ids = _joined_ids(tx_ids)
        if len(ids) != n * HASH_BYTES:
            raise ValueError(f"tx_ids must hold {n} ids of {HASH_BYTES} bytes, "
                             f"not {len(ids)} bytes")
        changes = _checked_changes(state_changes)
        return (height, block_hash, parent_hash, app_hash, header, txs, results, certificate,
                ids, changes)

    def _save_block(self, txn, height, block_hash, parent_hash, app_hash, header, txs, results,
                    certificate, ids, changes) -> tuple[bytes, int]:
        latest = self._meta_height(txn, b"latest")
        if latest and height != latest + 1:
            raise StoreError(f"save block {height}: the store's latest height is {latest}; "
                             f"blocks are saved in order")
        prev_chain = ZERO_HASH
        if latest:
            prev_hash, prev_chain = self._tip(txn)
            if prev_hash != parent_hash:
                raise StoreError(f"save block {height}: parent_hash {parent_hash.hex()[:16]} "
                                 f"does not match block {latest} ({prev_hash.hex()[:16]})")
        if txn.get(block_hash, db=self._dbs["block_hashes"]) is not None:
            raise StoreError(f"save block {height}: block hash {block_hash.hex()} is stored")
        tx_root = self.suite.tx_root(ids)
        app_chain = blake3(prev_chain + HEIGHT.pack(height) + app_hash)
        key = height_key(height)
        head = _BLOCK.pack(_BLOCK_VERSION, height, block_hash, parent_hash, app_hash, tx_root,
                           app_chain, len(header), len(txs), len(results))
        run = _codec.block_run(ids, height)
        # The record is built in a buffer kept across blocks: a fresh 250 KB allocation per
        # block costs more in page faults than the copy itself.
        size, tag_end = _codec.encode_block(self._record, head + header, results, run, txs)
        with memoryview(self._record) as buf:
            record_tag = tag("blocks", key, buf[:tag_end])
            buf[size - TAG_BYTES:size] = record_tag
            txn.put(key, buf[:size], db=self._dbs["blocks"], append=True)
        if len(self._record) > record_buffer_keep_bytes:
            self._record = bytearray()
        self._put(txn, "commits", key, certificate, append=True)
        self._put(txn, "block_hashes", block_hash, key)
        if txs:  # a retried or aborted transaction leaves a stale entry the tag check rejects
            self._runs.remember(b"B" + key, record_tag,
                                np.frombuffer(run, _txindex.ENTRY_DTYPE).reshape(-1, 2))
        state = self._dbs["state"]
        keys = [k for k, v in changes if v is not None]
        sealed = seal_many("state", keys, [v for _, v in changes if v is not None])
        if len(keys) == len(changes) and len(set(keys)) == len(keys):
            # Puts only, to distinct keys (the common block): one call for all of them.
            with txn.cursor(db=state) as cursor:
                cursor.putmulti(zip(keys, sealed))
        else:
            values = iter(sealed)
            for skey, value in changes:
                if value is None:
                    txn.delete(skey, db=state)
                else:
                    txn.put(skey, next(values), db=state)
        self._put_meta(txn, b"latest", key)
        self._put_meta(txn, b"tip", block_hash + app_chain)
        if not latest:
            self._put_meta(txn, b"base", key)
        self._put_meta(txn, b"app_hash", app_hash)
        self._discard_wal(txn, height)
        return tx_root, height - self._indexed_height(txn)

    def _tip(self, txn) -> tuple[bytes, bytes]:
        """(block hash, app chain) of the latest block, kept in meta so saving a block does not
        have to read and verify the previous one."""
        raw = self._meta(txn, b"tip")
        if raw is None or len(raw) != 2 * HASH_BYTES:
            raise StoreCorruption("meta", b"tip", "missing or not 64 bytes")
        return raw[:HASH_BYTES], raw[HASH_BYTES:]

    def _block_fields(self, txn, height: int) -> dict:
        key = height_key(height)
        value = txn.get(key, db=self._dbs["blocks"])
        if value is None:
            raise StoreCorruption("blocks", key, "block missing below the latest height")
        return self._checked_layout(value, key)

    @staticmethod
    def _decode_head(payload, key: bytes) -> dict:
        if len(payload) < _BLOCK.size:
            raise StoreCorruption("blocks", key, "record shorter than its header")
        (version, height, block_hash, parent_hash, app_hash, tx_root, app_chain, header_len,
         n, n_results) = _BLOCK.unpack_from(payload)
        if version != _BLOCK_VERSION or height_key(height) != bytes(key):
            raise StoreCorruption("blocks", key, f"record version {version} height {height}")
        return {"height": height, "block_hash": block_hash, "parent_hash": parent_hash,
                "app_hash": app_hash, "tx_root": tx_root, "app_chain": app_chain,
                "header_len": header_len, "n": n, "n_results": n_results}

    @classmethod
    def _layout(cls, view: memoryview, key: bytes) -> dict:
        """Head fields and section offsets of a block record (see engine/store/_codec.pyx),
        bounds-checked but not yet checksummed."""
        f = cls._decode_head(view, key)
        n, nr = f["n"], f["n_results"]
        end = len(view) - TAG_BYTES
        res_table = _BLOCK.size + f["header_len"]
        res_data = res_table + 4 * (nr + 1)
        if nr and n != nr or res_data > end:
            raise StoreCorruption("blocks", key, "record truncated or impossible result count")
        run = res_data + _u32(view, res_data - 4)
        tx_table = run + _txindex.ENTRY_BYTES * n
        tx_data = tx_table + 4 * (n + 1)
        if tx_data > end or tx_data + _u32(view, tx_data - 4) != end:
            raise StoreCorruption("blocks", key, "record length does not match its sections")
        f.update(res_table=res_table, res_data=res_data, run=run, tx_table=tx_table,
                 tx_data=tx_data, end=end)
        return f

    @classmethod
    def _checked_layout(cls, value, key: bytes) -> dict:
        """_layout plus the checksum over everything but the tx data (which the tx root
        binds: _decode_block checks it)."""
        view = memoryview(value)
        f = cls._layout(view, key)
        if tag("blocks", key, view[:f["tx_data"]]) != bytes(view[f["end"]:]):
            raise StoreCorruption("blocks", key, "checksum mismatch")
        return f

    def _decode_block(self, txn, key: bytes, value) -> StoredBlock:
        view = memoryview(value)
        f = self._checked_layout(view, key)
        header = bytes(view[_BLOCK.size:f["res_table"]])
        results = _unpack_list(view, f["res_table"], f["n_results"], f["run"], key)
        tx_offsets = np.frombuffer(view, "<u4", f["n"] + 1, f["tx_table"])
        txs = _unpack_list(view, f["tx_table"], f["n"], f["end"], key)
        ids = self.suite.hash_many_packed(view[f["tx_data"]:f["end"]],
                                          tx_offsets.astype(np.uint64))
        if self.suite.tx_root(ids) != f["tx_root"]:
            raise StoreCorruption("blocks", key, "transactions do not match the block's tx root")
        cert = self._get(txn, "commits", key)
        if cert is None:
            raise StoreCorruption("commits", key, "block stored without its certificate")
        return StoredBlock(height=f["height"], block_hash=f["block_hash"],
                           parent_hash=f["parent_hash"], header=header, txs=txs,
                           results=results, certificate=bytes(cert), app_hash=f["app_hash"],
                           tx_root=f["tx_root"], app_chain=f["app_chain"])

    def _block_run(self, key: bytes, value) -> np.ndarray:
        """The verified (n, 2) index entries stored in block record ``key``."""
        view = memoryview(value)
        f = self._checked_layout(view, key)
        return np.frombuffer(view, _txindex.ENTRY_DTYPE, 2 * f["n"], f["run"]).reshape(-1, 2)

    def load_block(self, height: int) -> StoredBlock | None:
        """The block at ``height``, or None when it is not stored (or pruned)."""
        key = height_key(_uint(height, "height"))

        def read(txn):
            value = txn.get(key, db=self._dbs["blocks"])
            return None if value is None else self._decode_block(txn, key, value)

        return self._read(read, what=f"load block {height}")

    def height_of(self, block_hash: bytes) -> int | None:
        """The height of the block with ``block_hash``, or None."""
        block_hash = _bytes(block_hash, "block_hash", HASH_BYTES)

        def read(txn):
            raw = self._get(txn, "block_hashes", block_hash)
            if raw is None:
                return None
            if len(raw) != 8:
                raise StoreCorruption("block_hashes", block_hash, "height is not 8 bytes")
            return HEIGHT.unpack(raw)[0]

        return self._read(read, what="look up block hash")

    def load_block_by_hash(self, block_hash: bytes) -> StoredBlock | None:
        """The block with ``block_hash``, or None."""
        height = self.height_of(block_hash)
        if height is None:
            return None
        block = self.load_block(height)
        if block is None or block.block_hash != bytes(block_hash):
            raise StoreCorruption("block_hashes", bytes(block_hash),
                                  f"points at height {height}, which holds another block")
        return block

    def load_certificate(self, height: int) -> bytes | None:
        """The commit certificate saved with block ``height``, or None."""
        key = height_key(_uint(height, "height"))
        return self._read(lambda txn: _copy(self._get(txn, "commits", key)))

    def blocks(self, start: int, stop: int | None = None) -> Iterator[StoredBlock]:
        """Stored blocks with ``start <= height < stop`` in order (block sync range reads).
        Reads in batches of short read transactions, so the writer is never held up long."""
        start = _uint(start, "start")
        stop = None if stop is None else _uint(stop, "stop")
        batch_blocks = 64
        while stop is None or start < stop:
            def read(txn, start=start):
                cur = txn.cursor(db=self._dbs["blocks"])
                out: list[StoredBlock] = []
                if not cur.set_range(height_key(start)):
                    return out
                for key, value in cur:
                    h = HEIGHT.unpack(key)[0]
                    if (stop is not None and h >= stop) or len(out) >= batch_blocks:
                        break
                    out.append(self._decode_block(txn, bytes(key), value))
                return out

            got = self._read(read, what=f"read blocks from {start}")
            if not got:
                return
            yield from got
            start = got[-1].height + 1

    # ---- transactions --------------------------------------------------------------------
    def find_tx(self, tx_id: bytes) -> TxLocation | None:
        """The committed transaction whose id (BLAKE3 of its bytes) is ``tx_id``, or None.
        If it was committed more than once, the lowest stored height is returned."""
        tx_id = _bytes(tx_id, "tx_id", HASH_BYTES)
        return self._read(lambda txn: self._find_txs(txn, [tx_id]), what="find tx")[0]

    def find_txs(self, tx_ids: Sequence[bytes]) -> list[TxLocation | None]:
        """:meth:`find_tx` for many ids in one read transaction and one search per index run."""
        if isinstance(tx_ids, (bytes, bytearray, memoryview, str)):
            raise TypeError("tx_ids must be a sequence of 32-byte ids")
        ids = [_bytes(t, f"tx_ids[{i}]", HASH_BYTES) for i, t in enumerate(tx_ids)]
        if len(ids) > find_txs_ids_max:
            raise ValueError(f"tx_ids holds {len(ids)} ids, more than {find_txs_ids_max}")
        if not ids:
            return []
        return self._read(lambda txn: self._find_txs(txn, ids), what="find txs")

    def _find_txs(self, txn, ids: list[bytes]) -> list[TxLocation | None]:
        prefixes = np.frombuffer(b"".join(i[:8] for i in ids), dtype=">u8").astype(np.uint64)
        hits: list[tuple[int, int]] = []
        live: set[bytes] = set()
        dbi = self._dbs["tx_index"]
        for key, value in _txindex.iter_runs(txn, dbi):  # merged runs
            live.add(key)
            run = _txindex.Run(key, value)  # checks the header only
            self._runs.search(key, _txindex.run_tag(key, value), run.all_entries, prefixes, hits,
                              run=run)
        for height in self._pending_heights(txn):  # newer blocks: their own runs
            cache_key, tag_, load = self._block_run_source(txn, height)
            live.add(cache_key)
            self._runs.search(cache_key, tag_, load, prefixes, hits)
        self._runs.retain(live)
        out: list[TxLocation | None] = [None] * len(ids)
        mismatched: set[int] = set()
        base = self._meta_height(txn, b"base")
        for q, loc in sorted(hits, key=lambda h: (h[0], h[1])):
            if out[q] is not None:
                continue
            height, index = _txindex.split_loc(loc)
            if height < base:  # a pruned block's entry left in a run that straddles the base
                continue
            tx = self._tx_at(txn, height, index)
            if tx is not None and self.suite.hash(tx) == ids[q]:
                out[q] = TxLocation(height, index, tx)
            else:
                mismatched.add(height)
        # A prefix collision is legitimate; a damaged block record is not: tell them apart.
        for height in mismatched:
            key = height_key(height)
            value = txn.get(key, db=self._dbs["blocks"])
            if value is not None:
                self._decode_block(txn, key, value)
        return out

    def _tx_at(self, txn, height: int, index: int) -> bytes | None:
        """Transaction ``index`` of block ``height`` read without checking the whole record
        (the caller compares its hash with the id it looked up)."""
        key = height_key(height)
        value = txn.get(key, db=self._dbs["blocks"])
        if value is None:
            return None
        view = memoryview(value)
        try:
            f = self._layout(view, key)
        except StoreCorruption:
            return None
        if index >= f["n"]:
            return None
        a, b = struct.unpack_from("<II", view, f["tx_table"] + 4 * index)
        if not a <= b <= f["end"] - f["tx_data"]:
            return None
        return bytes(view[f["tx_data"] + a:f["tx_data"] + b])

    def _indexed_height(self, txn) -> int:
        """Every block up to this height has its index entries in the merged runs of
        ``tx_index``; the blocks above it are searched through their own runs."""
        return self._meta_height(txn, b"indexed")

    def _pending_heights(self, txn) -> range:
        latest = self._meta_height(txn, b"latest")
        if not latest:
            return range(0)
        start = max(self._indexed_height(txn) + 1, self._meta_height(txn, b"base"))
        return range(start, latest + 1)

    def _block_run_source(self, txn, height: int) -> tuple[bytes, bytes, Callable]:
        """(cache key, tag, loader) of the index run inside block record ``height``."""
        key = height_key(height)
        value = txn.get(key, db=self._dbs["blocks"])
        if value is None:
            raise StoreCorruption("blocks", key, "block missing below the latest height")
        return b"B" + key, bytes(value[-TAG_BYTES:]), lambda: self._block_run(key, value)

    def compact_index(self) -> int:
        """Merge the index runs of saved blocks into the ``tx_index`` database, in groups of
        ``TX_INDEX_MERGE_FANOUT`` blocks, then merge equal tiers there (an LSM tree); returns
        the number of block groups merged. One durable write transaction; lookups give the same
        answers before and after. The node calls this when idle; save_block calls it itself
        once ``index_pending_blocks_max`` blocks are waiting, so lookups stay bounded."""
        if self._index_pending is not None and \
                self._index_pending < _txindex.TX_INDEX_MERGE_FANOUT:
            return 0  # known from the last save: no group is complete (no transaction needed)
        # Views, not copies: only each block record's tag and run are read, and every run is
        # copied out (np.concatenate) before the first write of the transaction.
        groups, self._index_pending = self._write(self._compact, what="compact tx index",
                                                  buffers=True)
        return groups

    def _compact(self, txn) -> tuple[int, int]:
        pending = self._pending_heights(txn)
        fanout = _txindex.TX_INDEX_MERGE_FANOUT
        dbi = self._dbs["tx_index"]
        groups = 0
        start = pending.start
        while pending.stop - start >= fanout:
            parts = [self._runs.entries(*self._block_run_source(txn, height))
                     for height in range(start, start + fanout)]
            _txindex.write_run(txn, dbi, np.concatenate(parts), start, start + fanout - 1,
                               sort=True, cache=self._runs)
            start += fanout
            groups += 1
        if groups:
            self._put_meta(txn, b"indexed", height_key(start - 1))
            _txindex.merge_tail(txn, dbi, self._runs)
        return groups, pending.stop - start

    def tx_proof(self, tx_id: bytes) -> TxProof | None:
        """The transaction with ``tx_id`` and its inclusion proof against its block's tx root
        (check it with ``engine.hashing.verify_merkle_proof(tx_root, tx, proof)``)."""
        loc = self.find_tx(tx_id)
        if loc is None:
            return None
        block = self.load_block(loc.height)
        if block is None:
            return None
        proof = self.suite.tx_proof(block.txs, loc.index)
        return TxProof(location=loc, tx_root=block.tx_root, proof=proof)

    # ---- application state ---------------------------------------------------------------
    def save_genesis(self, app_hash: bytes,
                     state_changes: Iterable[tuple[bytes, bytes | None]] = ()) -> None:
        """Save the application's genesis state and app hash in one durable write transaction,
        once, before block 1 (meta ``genesis`` marks it done; a second call raises)."""
        app_hash = _bytes(app_hash, "app_hash", HASH_BYTES)
        changes = _checked_changes(state_changes)

        def write(txn):
            if self._meta(txn, b"genesis") is not None or self._meta_height(txn, b"latest"):
                raise StoreError("save genesis: the genesis state is already saved")
            state = self._dbs["state"]
            for key, value in changes:
                if value is None:
                    txn.delete(key, db=state)
                else:
                    self._put(txn, "state", key, value)
            self._put_meta(txn, b"genesis", app_hash)

        self._write(write, durable=True, what="save genesis")

    def validator_sets(self) -> list[tuple[int, bytes]]:
        """The validator-set history: every (first height it signs, encoded set) record, in
        height order (empty while the genesis set signs every height)."""
        return self._read(lambda txn: _valsets.records(txn, self._dbs["meta"]),
                          what="read validator sets")

    def genesis_app_hash(self) -> bytes | None:
        """The app hash saved by :meth:`save_genesis`, None before (or in an older store)."""
        return self._read(lambda txn: self._meta(txn, b"genesis"))

    def state_get(self, key: bytes) -> bytes | None:
        """The committed application value under ``key``, or None."""
        key = _bytes(key, "key")
        if not key:
            raise ValueError("key must not be empty")
        return self._read(lambda txn: _copy(self._get(txn, "state", key)))

    def state_get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """``[state_get(k) for k in keys]`` in one read transaction, the checksums checked
        in batch (a block's worth of keys: one LMDB transaction instead of one per key)."""
        if type(keys) is not list or not set(map(type, keys)) <= {bytes}:
            # A block's keys come as a list of bytes (the test above is one C-level pass):
            # only other shapes are converted key by key, naming the first that is not bytes.
            keys = [_bytes(k, "keys[]") for k in keys]
        if not all(keys):
            raise ValueError("keys must not be empty")
        state = self._dbs["state"]

        def read(txn) -> list[bytes | None]:
            get = txn.get
            # Positional (key, default, db): keyword parsing per call cost ~0.1 us a key.
            return unseal_many("state", keys, [get(k, None, state) for k in keys])

        return self._read(read)

    def state_items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """All committed (key, value) pairs whose key starts with ``prefix``, in key order."""
        prefix = _bytes(prefix, "prefix")

        def read(txn):
            cur = txn.cursor(db=self._dbs["state"])
            out = []
            if not cur.set_range(prefix):
                return out
            for key, value in cur:
                key = bytes(key)
                if not key.startswith(prefix):
                    break
                out.append((key, bytes(unseal("state", key, value))))
            return out

        return self._read(read, what="read state")

    # ---- consensus WAL -------------------------------------------------------------------
    def wal_append(self, height: int, entry: bytes, *, sync: bool = True) -> int:
        """Append a consensus input for ``height``; returns its sequence number (0, 1, ...).
        With ``sync`` the entry is on disk when this returns, even in a sync=False store."""
        height = _uint(height, "height", 63, 1)
        entry = _bytes(entry, "entry")
        if len(entry) > wal_entry_bytes_max:
            raise ValueError(f"entry of {len(entry)} bytes exceeds {wal_entry_bytes_max}")
        return self._write(lambda txn: self._wal_put(txn, height, entry), durable=sync,
                           what=f"WAL append at height {height}")

    def wal_append_many(self, entries: Sequence[tuple[int, bytes]], *,
                        sync: bool = True) -> None:
        """Append several ``(height, entry)`` records, in order, in one write transaction (one
        flush instead of one per record)."""
        checked = self._wal_entries(entries)
        if checked:
            self._write(lambda txn: self._wal_put_many(txn, checked), durable=sync,
                        what="WAL append")

    def _wal_entries(self, entries: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        out = []
        for item in entries:
            if not isinstance(item, tuple) or len(item) != 2:
                raise TypeError("entries must be (height, entry) tuples")
            entry = _bytes(item[1], "entry")
            if len(entry) > wal_entry_bytes_max:
                raise ValueError(f"entry of {len(entry)} bytes exceeds {wal_entry_bytes_max}")
            out.append((_uint(item[0], "height", 63, 1), entry))
        return out

    def _wal_put_many(self, txn, entries: list[tuple[int, bytes]]) -> None:
        for height, entry in entries:
            self._wal_put(txn, height, entry)

    def _wal_put(self, txn, height: int, entry: bytes) -> int:
        cur = txn.cursor(db=self._dbs["wal"])
        seq = 0
        if cur.set_range(height_key(height + 1)):
            found = cur.prev()
        else:
            found = cur.last()
        if found:
            key = bytes(cur.key())
            if key[:8] == height_key(height):
                seq = HEIGHT.unpack(key[8:])[0] + 1
        key = height_key(height) + HEIGHT.pack(seq)
        self._put(txn, "wal", key, entry)
        return seq

    def wal_replay(self, height: int) -> list[bytes]:
        """The WAL entries of ``height`` in the order they were appended."""
        height = _uint(height, "height", 63, 1)
        prefix = height_key(height)

        def read(txn):
            cur = txn.cursor(db=self._dbs["wal"])
            out: list[bytes] = []
            if not cur.set_range(prefix):
                return out
            for expect, (key, value) in enumerate(cur):
                key = bytes(key)
                if key[:8] != prefix:
                    break
                if HEIGHT.unpack(key[8:])[0] != expect:
                    raise StoreCorruption("wal", key, f"expected entry {expect} here")
                out.append(bytes(unseal("wal", key, value)))
            return out

        return self._read(read, what=f"WAL replay of height {height}")

    def wal_heights(self) -> list[int]:
        """Heights that have WAL entries."""
        def read(txn):
            heights: list[int] = []
            for key in txn.cursor(db=self._dbs["wal"]).iternext(values=False):
                h = HEIGHT.unpack(bytes(key)[:8])[0]
                if not heights or heights[-1] != h:
                    heights.append(h)
            return heights

        return self._read(read, what="list WAL heights")

    def wal_discard(self, height: int) -> None:
        """Delete the WAL entries of every height <= ``height`` (save_block does this too)."""
        height = _uint(height, "height")
        self._write(lambda txn: self._discard_wal(txn, height), what="WAL discard")

    def _discard_wal(self, txn, height: int) -> None:
        cur = txn.cursor(db=self._dbs["wal"])
        limit = height_key(height + 1)
        while cur.first() and bytes(cur.key()) < limit:
            cur.delete()

    # ---- signer state (double-sign guard) --------------------------------------------------
    def signer_record(self) -> SignerRecord | None:
        """What this node signed last, or None if it never signed."""
        return self._read(self._signer_record, what="read the signer record")

    def _signer_record(self, txn) -> SignerRecord | None:
        raw = self._get(txn, "signer", b"last")
        if raw is None:
            return None
        if len(raw) < _SIGNER.size + 4:
            raise StoreCorruption("signer", b"last", "record too short")
        height, round_, step = _SIGNER.unpack_from(raw)
        n = int.from_bytes(raw[_SIGNER.size:_SIGNER.size + 4], "little")
        rest = bytes(raw[_SIGNER.size + 4:])
        if len(rest) < n:
            raise StoreCorruption("signer", b"last", "sign bytes truncated")
        return SignerRecord(height, round_, step, rest[:n], rest[n:])

    def signer_history(self) -> list[tuple[int, int, bytes, bytes]]:
        """Every (round, step, sign bytes, signature) signed at the signer record's height, in
        signing order: kept outside the WAL, so a validator that loses WAL records still
        knows each of its votes of the height (and so its lock) exactly."""
        return self._read(self._signer_history, what="read the signer history")

    def _signer_history(self, txn) -> list[tuple[int, int, bytes, bytes]]:
        out: list[tuple[int, int, bytes, bytes]] = []
        cur = txn.cursor(db=self._dbs["signer"])
        if not cur.set_range(b"h"):
            return out
        for key, value in cur:
            key = bytes(key)
            if not key.startswith(b"h"):
                break
            if len(key) != _HISTORY.size:
                raise StoreCorruption("signer", key, "history key is not 6 bytes")
            _, round_, step = _HISTORY.unpack(key)
            raw = bytes(unseal("signer", key, value))
            n = int.from_bytes(raw[:4], "little") if len(raw) >= 4 else -1
            if n < 0 or len(raw) < 4 + n:
                raise StoreCorruption("signer", key, "history entry truncated")
            out.append((round_, step, raw[4:4 + n], raw[4 + n:]))
        return out

    def _signer_history_put(self, txn, last: SignerRecord | None, height: int, round_: int,
                            step: int, sign_bytes: bytes, signature: bytes) -> None:
        if last is not None and last.height != height:
            cur = txn.cursor(db=self._dbs["signer"])
            stale = []
            if cur.set_range(b"h"):
                for key in cur.iternext(values=False):
                    if not bytes(key).startswith(b"h"):
                        break
                    stale.append(bytes(key))
            for key in stale:
                txn.delete(key, db=self._dbs["signer"])
        key = _HISTORY.pack(b"h", round_, step)
        self._put(txn, "signer", key,
                  len(sign_bytes).to_bytes(4, "little") + sign_bytes + signature)

    def sign_guarded(self, height: int, round: int, step: int, sign_bytes: bytes,
                     sign: Callable[[bytes], bytes], *,
                     wal_entry: Callable[[bytes], bytes] | None = None,
                     wal_before: Sequence[tuple[int, bytes]] = ()) -> bytes:
        """Sign ``sign_bytes`` at (height, round, step) unless that would double-sign.

        In one durable write transaction: refuse (DoubleSignRefused) if (height, round, step)
        is below the last signed one, or equal to it with different sign bytes; return the
        stored signature if equal with identical bytes; otherwise call ``sign(sign_bytes)``,
        record the new state (and ``wal_entry(signature)`` in the WAL of ``height``, if given)
        and return the signature only after the transaction is on disk. ``wal_before``
        (``(height, entry)`` records a caller buffered) is appended to the WAL first, in the
        same transaction, so the inputs that led to the signature are durable with it; a
        refused signature aborts the transaction and writes none of them.
        """
        height = _uint(height, "height", 63, 1)
        round_ = _uint(round, "round", 32)
        step = _uint(step, "step", 8)
        sign_bytes = _bytes(sign_bytes, "sign_bytes")
        if not callable(sign):
            raise TypeError("sign must be callable")
        before = self._wal_entries(wal_before)

        def write(txn):
            self._wal_put_many(txn, before)
            last = self._signer_record(txn)
            stored = signed_before(last, height, round_, step, sign_bytes)
            if stored is not None:
                return stored
            signature = _bytes(sign(sign_bytes), "signature returned by sign")
            record = _SIGNER.pack(height, round_, step) + len(sign_bytes).to_bytes(4, "little")
            self._put(txn, "signer", b"last", record + sign_bytes + signature)
            self._signer_history_put(txn, last, height, round_, step, sign_bytes, signature)
            if wal_entry is not None:
                self._wal_put(txn, height, _bytes(wal_entry(signature), "wal_entry result"))
            return signature

        return self._write(write, durable=True, what=f"sign at height {height}")

    def sign_guarded_many(self, entries: Sequence[tuple[int, int, int, bytes, bytes, bytes]], *,
                          wal_before: Sequence[tuple[int, bytes]] = ()) -> None:
        """Record several signatures made in one consensus step (a proposer's proposal and its
        prevote, a late prevote with its precommit) in **one** durable transaction: each entry
        ``(height, round, step, sign_bytes, signature, wal_entry)`` is judged by the rule of
        :meth:`sign_guarded` against the record the entries before it left, in order; one
        refusal (DoubleSignRefused) aborts the transaction, so nothing of it is written (the
        caller may then go one by one). ``wal_before`` goes first, as for ``sign_guarded``."""
        checked = []
        for item in entries:
            if not isinstance(item, tuple) or len(item) != 6:
                raise TypeError("entries must be (height, round, step, sign_bytes, signature, "
                                "wal_entry) tuples")
            height, round_, step, sign_bytes, signature, wal_entry = item
            checked.append((_uint(height, "height", 63, 1), _uint(round_, "round", 32),
                            _uint(step, "step", 8), _bytes(sign_bytes, "sign_bytes"),
                            _bytes(signature, "signature"), _bytes(wal_entry, "wal_entry")))
        if not checked:
            return
        before = self._wal_entries(wal_before)

        def write(txn):
            self._wal_put_many(txn, before)
            for height, round_, step, sign_bytes, signature, wal_entry in checked:
                last = self._signer_record(txn)
                stored = signed_before(last, height, round_, step, sign_bytes)
                if stored is not None:
                    if stored != signature:
                        raise DoubleSignRefused(f"another signature is recorded at "
                                                f"{(height, round_, step)}")
                    continue
                record = _SIGNER.pack(height, round_, step) + \
                    len(sign_bytes).to_bytes(4, "little")
                self._put(txn, "signer", b"last", record + sign_bytes + signature)
                self._signer_history_put(txn, last, height, round_, step, sign_bytes,
                                         signature)
                self._wal_put(txn, height, wal_entry)

        self._write(write, durable=True, what=f"sign {len(checked)} at height {checked[0][0]}")

    # ---- pruning and info ----------------------------------------------------------------
    def prune(self, retain_height: int, *, blocks_max: int | None = None) -> int:
        """Delete blocks, certificates, hash and tx index entries below ``retain_height``;
        returns how many blocks were removed. LMDB reuses the freed pages for new writes.
        With ``blocks_max`` one write transaction removes at most that many blocks and returns
        (the node prunes in such bounded steps, off the block's path)."""
        retain = _uint(retain_height, "retain_height", 63, 1)
        if blocks_max is not None:
            step_max = _uint(blocks_max, "blocks_max", 32, 1)
            return self._write(lambda txn: self._prune(txn, retain, step_max), what="prune")
        removed = 0
        while True:  # bounded transactions: each one atomic, the base moves up step by step
            step = self._write(lambda txn: self._prune(txn, retain, prune_blocks_per_txn_max),
                               what="prune")
            removed += step
            if step < prune_blocks_per_txn_max:
                return removed

    def _prune(self, txn, retain_height: int, blocks_max: int) -> int:
        latest = self._meta_height(txn, b"latest")
        base = self._meta_height(txn, b"base")
        if retain_height > latest:
            raise ValueError(f"retain_height {retain_height} is above the latest height {latest}")
        retain = min(retain_height, base + blocks_max)
        if retain <= base:
            return 0
        removed = 0
        for height in range(base, retain):
            key = height_key(height)
            fields = self._block_fields(txn, height)
            txn.delete(key, db=self._dbs["blocks"])
            txn.delete(key, db=self._dbs["commits"])
            txn.delete(fields["block_hash"], db=self._dbs["block_hashes"])
            removed += 1
        dbi = self._dbs["tx_index"]
        old_keys = []
        for raw_key in txn.cursor(db=dbi).iternext(values=False):
            if _txindex.parse_run_key(bytes(raw_key))[0] >= retain:
                break  # runs are ordered by their first height
            old_keys.append(bytes(raw_key))
        for key in old_keys:
            first, last, _ = _txindex.parse_run_key(key)
            entries = None
            if last >= retain:
                # Straddles the new base. Its entries below the base are stale (lookups skip
                # heights below the base); it is rewritten without them only once they span
                # at least half of its heights, so as the base moves up through a merged run
                # of millions of entries each entry is rewritten O(1) times, not once a step.
                if _stale_half(first, last, retain):
                    entries = _txindex.Run(key, txn.get(key, db=dbi)).all_entries()
                else:
                    continue
            txn.delete(key, db=dbi)
            self._runs.forget(key)
            if entries is not None:
                keep = entries[(entries[:, 1] >> np.uint64(_txindex.LOC_INDEX_BITS))
                               >= np.uint64(retain)]
                _txindex.write_run(txn, dbi, keep, retain, last, sort=False)
        self._put_meta(txn, b"base", height_key(retain))
        return removed

    def info(self) -> dict:
        """Heights, schema, map and file sizes, and per-database entry and page counts."""
        def read(txn):
            dbs = {}
            for name in DATABASES:
                s = txn.stat(self._dbs[name])
                dbs[name] = {"entries": s["entries"],
                             "pages": s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]}
            return {"latest_height": self._meta_height(txn, b"latest"),
                    "base_height": self._meta_height(txn, b"base"),
                    "schema": int.from_bytes(self._meta(txn, b"schema") or b"\0", "little"),
                    "databases": dbs}

        out = self._read(read, what="info")
        env = self._env.info()
        main = self._env.stat()
        used = sum(d["pages"] for d in out["databases"].values()) + main["branch_pages"] \
            + main["leaf_pages"] + main["overflow_pages"] + 2  # + the two meta pages
        out.update(path=self.path, map_size=env["map_size"], last_page=env["last_pgno"],
                   page_size=main["psize"],
                   file_bytes=os.path.getsize(os.path.join(self.path, "data.mdb")),
                   # Pages of the file no database uses: LMDB's free list (and the pages of
                   # its own record), reused by later writes instead of growing the file.
                   pages_reusable=max(0, env["last_pgno"] + 1 - used))
        return out

    # ---- snapshots and state sync ---------------------------------------------------------
    def state_reader(self) -> StateReader:
        """A consistent read view of the application state and the chain tip as of now, for a
        snapshot taken on another thread while blocks keep being saved (close it when done;
        growing the map waits until it is closed)."""
        with self._readers:
            self._readers_open += 1
        try:
            txn = self._env.begin(buffers=True)
        except BaseException:
            self._reader_closed()
            raise
        return StateReader(self, txn)

    def _reader_closed(self) -> None:
        with self._readers:
            self._readers_open -= 1
            self._readers.notify_all()

    def restore_from_snapshot(self, height: int, block_hash: bytes, header: bytes,
                              txs: Sequence[bytes], certificate: bytes, *, parent_hash: bytes,
                              app_hash: bytes,
                              state: Iterable[tuple[bytes, bytes]]) -> None:
        """Write a state-synced node's starting point in **one** durable transaction: the
        application ``state`` restored from a snapshot taken after ``height`` and the block at
        ``height`` (with its certificate) as the chain tip and base. Only an empty store (no
        genesis, no block, no state) may be restored into, so a crash before this returns
        leaves an empty store (the restore starts over) and after it a whole one.
        Everything a snapshot restores goes through here (the validator-set history will too).
        """
        args = self._block_args(height, block_hash, header, txs, certificate, parent_hash,
                                app_hash, (), (), None)
        changes = _checked_changes(state)

        def write(txn):
            if self._meta_height(txn, b"latest") or self._meta(txn, b"genesis") is not None:
                raise StoreError("restore from snapshot: the store is not empty")
            if txn.stat(self._dbs["state"])["entries"]:
                raise StoreError("restore from snapshot: the store already holds state")
            self._save_block(txn, *args)
            keys = [k for k, _ in changes]
            if any(a >= b for a, b in itertools.pairwise(keys)):
                raise ValueError("state keys must be strictly ascending (each key once)")
            sealed = seal_many("state", keys, [v for _, v in changes])
            # Ascending keys into an empty database: appended, no page splits to search.
            txn.cursor(db=self._dbs["state"]).putmulti(zip(keys, sealed), append=True)

        self._write(write, durable=True, what=f"restore from snapshot at height {height}")


class StateReader:
    """One read transaction over the state and the tip (see :meth:`Store.state_reader`)."""

    def __init__(self, store: Store, txn):
        self._store = store
        self._txn = txn
        self.height = store._meta_height(txn, b"latest")
        self.app_hash = store._meta(txn, b"app_hash") or store._meta(txn, b"genesis") or ZERO_HASH
        self.block_hash = store._tip(txn)[0] if self.height else ZERO_HASH

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the state in key order, checksums verified."""
        for key, value in self._txn.cursor(db=self._store._dbs["state"]):
            key = bytes(key)
            yield key, bytes(unseal("state", key, value))

    def close(self) -> None:
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
            self._store._reader_closed()

    def __enter__(self) -> StateReader:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()
