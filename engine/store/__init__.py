"""Node storage: one LMDB environment holding blocks, commits, the tx index, application state,
the consensus WAL and the signer state (docs/architecture.md), crash-safe by construction.

Every change that must be atomic is one LMDB write transaction, so a crash (even SIGKILL in the
middle of a commit) leaves either the whole change or none of it. Every stored value ends with a
16-byte checksum tag bound to its database and key; a mismatch raises :class:`StoreCorruption`
naming both.

API for the node (all arguments are plain bytes / ints; the store knows nothing of consensus
types)::

    store = Store(path, sync=True, map_size=None)   # opens or creates; StoreError if foreign
    store.save_block(height, block_hash, header, txs, certificate,
                     parent_hash=..., app_hash=..., results=[...],
                     state_changes=[(key, value_or_None), ...], tx_ids=None) -> tx_root
    store.load_block(height) / store.load_block_by_hash(h) -> StoredBlock | None
    store.blocks(start, stop)           # iterator, for block sync
    store.latest_height(), store.base_height(), store.app_hash(height=None)
    store.load_certificate(height)
    store.find_tx(tx_id) -> TxLocation(height, index, tx) | None
    store.find_txs([tx_id, ...]) -> [TxLocation | None]   # batched, one search per index run
    store.tx_proof(tx_id) -> TxProof(location, tx_root, proof) | None
    store.state_get(key), store.state_items(prefix)
    store.wal_append(height, entry, sync=True) -> seq; store.wal_replay(height) -> [entry]
    store.wal_discard(height); store.wal_heights()
    store.sign_guarded(height, round, step, sign_bytes, sign, wal_entry=None) -> signature
    store.signer_record() -> SignerRecord | None
    store.signer_history() -> [(round, step, sign_bytes, signature)]  # all of its height
    store.compact_index() -> block groups merged into tx_index (the node calls it when idle)
    store.prune(retain_height) -> blocks removed
    store.info() -> dict
    check_store(store, verify_block=None) -> CheckReport     # what `engine store check` runs

Blocks. The store splits a block into the caller's ``header`` (opaque bytes: the encoded block
without its transactions, e.g. header fields and last_commit) and ``txs``; the consensus layer
re-assembles its Block from ``StoredBlock.header`` and ``StoredBlock.txs``. ``block_hash`` and
``parent_hash`` are whatever the consensus layer defines (32 bytes); the store checks the link
(``parent_hash`` of h == ``block_hash`` of h-1) on save and in check. The store computes the
transactions' Merkle root (docs/formats.md, leaves = tx ids) and returns it from save_block;
inclusion proofs are against that root, which the header should carry as its data hash.
``certificate`` is the commit certificate for the block (height -> certificate in ``commits``).
``app_hash`` is the application hash after executing the block; the store chains them
(``app_chain[h] = BLAKE3(app_chain[h-1] || height || app_hash)``) so check can see a gap or a
record from another history.

WAL. ``wal_append`` records the consensus inputs of a height, durably when ``sync`` is true.
``save_block`` deletes the WAL of every height <= the saved height in the block's own
transaction, so a restart replays exactly the inputs of the unfinished height. ``sign_guarded``
records the signer state, adds the signature to the signer history (every signature of the
record's height, kept outside the WAL and dropped when a higher height is signed) and,
optionally, the signed message in the WAL, in one durable transaction before the signature is
returned (persist before send).

Durability. ``sync=True`` (the default) flushes every commit: a committed block, WAL entry or
signer record survives power loss. ``sync=False`` (benchmarks, throwaway nets) skips the flushes:
commits survive a process crash (the OS still holds the pages) but the last ones may be lost on
power loss or a kernel crash. Even then ``wal_append(sync=True)`` and ``sign_guarded`` flush.

Block check. ``check_store(store, verify_block=fn)`` checks checksums, contiguous heights, hash
index, parent links, the tx root of each block, the tx index against the blocks, the app-hash
chain, the WAL and the signer record. ``fn(block, parent)`` -> iterable of problem strings is
the node's hook for what the store cannot know (the parent certificate inside ``header`` against
the validator set with one ``engine.crypto.verify_batch`` call, header hash == block_hash).
``engine store check`` loads it from ``--verifier module:function``, else uses the node's
(``engine.node.check``: block hash = BLAKE3 of header + txs, header fields vs the record, the
block's certificate and its parent certificate against the validators of ``HOME/genesis.json``,
one batch verification each) when the home has a genesis. The store itself knows only bytes: it
imports nothing from the block format, the consensus core or the node.

Layout (keys big-endian so LMDB appends in order; every value ends with its 16-byte tag):
``blocks`` height u64 -> ``version u8 | height u64 | block hash | parent hash | app hash |
tx root | app chain | header len u32 | tx count u32 | result count u32 | header |
result offsets (u32 LE, count + 1) | results | index run (16 B per tx) | tx offsets | txs``
(the tag covers all but the txs, which the tx root binds); ``commits`` height -> certificate;
``block_hashes`` hash -> height; ``tx_index`` run key -> merged sorted run (see
engine/store/_txindex.py; blocks above meta ``indexed`` are searched through their own runs
until ``compact_index`` merges them); ``state`` app key -> value; ``meta`` magic, schema (u32
LE), latest, base, indexed, app_hash, tip (latest block hash || app chain); ``wal`` height u64
|| seq u64 -> entry; ``signer`` ``last`` -> ``height u64 | round u32 | step u8 | len u32 |
sign bytes | signature`` (little-endian fields).

Errors. ``StoreError`` for bad paths, foreign or newer stores, read-only stores, disk full
(the failed transaction is aborted; the store stays as it was) and misuse that would break an
invariant (saving out of order, a wrong parent hash). ``StoreCorruption`` (a StoreError) for
damaged records, including LMDB's own corruption errors. ``DoubleSignRefused`` when signing
would regress. Bad argument types/values raise TypeError/ValueError naming the argument. The map
grows automatically (doubling) when a write fills it.
"""
from engine.store._records import StoreCorruption, StoreError
from engine.store.check import CheckReport, check_store
from engine.store.store import (
    DATABASES,
    SCHEMA_VERSION,
    DoubleSignRefused,
    SignerRecord,
    Store,
    StoredBlock,
    TxLocation,
    TxProof,
)

__all__ = [
    "DATABASES", "SCHEMA_VERSION", "CheckReport", "DoubleSignRefused", "SignerRecord", "Store",
    "StoreCorruption", "StoreError", "StoredBlock", "TxLocation", "TxProof", "check_store",
    "store_path",
]


def store_path(home) -> str:
    """Where a node keeps its store under its home directory."""
    import os

    return os.path.join(os.fspath(home), "store")
