"""Repair of a damaged WAL tail at node start (found by the fault-injection scenarios
tests/scenarios/wal-corrupt.toml and wal-truncate.toml).

A torn or corrupted WAL record used to make ``Store.wal_replay`` raise ``StoreCorruption``
during start-up, so the node could never start again. The WAL only holds the inputs of the
unfinished height, so the safe repair is the one CometBFT's WAL makes: keep the valid prefix of
each height, drop the first damaged record and everything after it, and report what was lost.
Dropping inputs cannot cause a double sign: the signer record (database ``signer``) is separate
and still refuses anything at or below the last (height, round, step) signed; at worst the node
re-learns the dropped votes from its peers.
"""
from __future__ import annotations

from engine.store._records import HEIGHT, StoreCorruption, describe_key, unseal

__all__ = ["repair_wal"]


def repair_wal(store) -> list[str]:
    """Drop every WAL record from the first damaged one of its height on, in one durable
    transaction; returns a description of each dropped record (empty when the WAL is sound)."""
    if store.readonly:
        raise ValueError("store must be writable to repair its WAL")

    def write(txn) -> list[str]:
        cur = txn.cursor(db=store._dbs["wal"])
        bad: list[bytes] = []
        cut_height, expect, height = None, 0, None
        for key, value in cur:
            key = bytes(key)
            h, seq = HEIGHT.unpack(key[:8])[0], HEIGHT.unpack(key[8:16])[0]
            if h != height:
                height, expect, cut_height = h, 0, None
            if cut_height is None:
                try:
                    if len(key) != 16 or seq != expect:
                        raise StoreCorruption("wal", key, f"expected entry {expect} here")
                    unseal("wal", key, value)
                except StoreCorruption:
                    cut_height = h
            if cut_height is not None:
                bad.append(key)
            expect += 1
        for key in bad:
            txn.delete(key, db=store._dbs["wal"])
        return [describe_key("wal", k) for k in bad]

    return store._write(write, durable=True, what="WAL repair")
