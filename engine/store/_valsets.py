"""The validator-set history in the store: which set signs height h.

A record is kept only where the set changes: meta key ``b"valset" || height u64 BE`` holds the
encoded set (``ValidatorSet.encode()``, docs/formats.md) that signs that height and every later
one up to the next record. Heights without a record before the first one are signed by the
genesis set (which the node knows from genesis.json). A record is written by ``save_block`` of
the block whose ``finalize_block`` returned the change (height ``h`` writes the record of
``h + 2``), in that block's own write transaction: after a crash the chain and the history
always agree. The store knows bytes only; decoding is the node's (engine/valset.py).
"""
from __future__ import annotations

from engine.store._records import HEIGHT, StoreCorruption, unseal

PREFIX = b"valset"
KEY_BYTES = len(PREFIX) + HEIGHT.size


def key(height: int) -> bytes:
    return PREFIX + HEIGHT.pack(height)


def is_key(k: bytes) -> bool:
    return len(k) == KEY_BYTES and k.startswith(PREFIX)


def height_of(k: bytes) -> int:
    return HEIGHT.unpack(k[len(PREFIX):])[0]


def records(txn, dbi) -> list[tuple[int, bytes]]:
    """Every (first height, encoded set) record, in height order."""
    cur = txn.cursor(db=dbi)
    out: list[tuple[int, bytes]] = []
    if not cur.set_range(PREFIX):
        return out
    for k, value in cur:
        k = bytes(k)
        if not k.startswith(PREFIX):
            break
        if not is_key(k):
            raise StoreCorruption("meta", k, "a validator-set key has the wrong length")
        out.append((height_of(k), bytes(unseal("meta", k, value))))
    return out
