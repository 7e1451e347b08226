"""Damage the tail of a stopped node's consensus WAL, as a crash or a bad disk would.

The WAL lives in the node's LMDB store (database ``wal``, key ``height u64 || seq u64``, value
``entry || 16-byte checksum tag``). Working back from the last record:

- ``truncate``: records wholly inside the last ``tail_bytes`` are deleted and the record the cut
  falls into is shortened to what precedes the cut (a torn write: its checksum no longer
  matches);
- ``corrupt``: ``flips`` random bytes inside the last ``tail_bytes`` are inverted.

The node must detect this on restart and recover without ever signing a conflicting message.
Only for a stopped node: LMDB allows one writer, and the node's reads must see the damage.
"""
from __future__ import annotations

import os
import random

import lmdb

from engine.store import store_path

__all__ = ["damage_wal"]

TAIL_BYTES_MAX = 1 << 20


def damage_wal(home: str, mode: str, tail_bytes: int, rng: random.Random,
               flips: int = 4) -> dict:
    """Truncate or corrupt the last ``tail_bytes`` of the WAL; returns what was done."""
    if mode not in ("truncate", "corrupt"):
        raise ValueError(f"mode must be 'truncate' or 'corrupt', not {mode!r}")
    if type(tail_bytes) is not int or not 0 <= tail_bytes <= TAIL_BYTES_MAX:
        raise ValueError(f"tail_bytes must be an integer in 0..{TAIL_BYTES_MAX}")
    env = lmdb.open(store_path(home), max_dbs=16, subdir=True, create=False)
    try:
        db = env.open_db(b"wal", create=False)
        with env.begin(write=True, db=db) as txn:
            records = [(bytes(k), bytes(v)) for k, v in txn.cursor()]
            if mode == "truncate":
                return _truncate(txn, records, tail_bytes)
            return _corrupt(txn, records, tail_bytes, rng, flips)
    finally:
        env.close()


def _tail(records: list[tuple[bytes, bytes]], tail_bytes: int):
    """(key, value, bytes of the value inside the tail) from the last record backwards."""
    left = tail_bytes
    for key, value in reversed(records):
        if left <= 0:
            return
        inside = min(left, len(value))
        yield key, value, inside
        left -= inside


def _describe(key: bytes) -> str:
    return f"{int.from_bytes(key[:8], 'big')}/{int.from_bytes(key[8:], 'big')}"


def _truncate(txn, records, tail_bytes: int) -> dict:
    deleted, shortened = [], None
    for key, value, inside in _tail(records, tail_bytes):
        if inside == len(value):
            txn.delete(key)
            deleted.append(_describe(key))
        else:
            txn.put(key, value[:len(value) - inside])
            shortened = _describe(key)
    return {"mode": "truncate", "records": len(records), "deleted": deleted,
            "shortened": shortened}


def _corrupt(txn, records, tail_bytes: int, rng: random.Random, flips: int) -> dict:
    spots = [(key, value, len(value) - 1 - off)
             for key, value, inside in _tail(records, tail_bytes) for off in range(inside)]
    if not spots:
        return {"mode": "corrupt", "records": len(records), "flipped": []}
    changed: dict[bytes, bytearray] = {}
    flipped = []
    for key, value, pos in rng.sample(spots, min(flips, len(spots))):
        buf = changed.setdefault(key, bytearray(value))
        buf[pos] ^= 0xFF
        flipped.append(f"{_describe(key)}@{pos}")
    for key, buf in changed.items():
        txn.put(key, bytes(buf))
    return {"mode": "corrupt", "records": len(records), "flipped": flipped}


def wal_bytes(home: str) -> int:
    """Total bytes of WAL records (for reports)."""
    if not os.path.exists(os.path.join(store_path(home), "data.mdb")):
        return 0
    env = lmdb.open(store_path(home), max_dbs=16, subdir=True, create=False, readonly=True,
                    lock=False)
    try:
        db = env.open_db(b"wal", create=False)
        with env.begin(db=db) as txn:
            return sum(len(v) for _, v in txn.cursor())
    finally:
        env.close()
