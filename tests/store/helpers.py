"""Shared helpers for the store tests: a deterministic chain of blocks."""
import random

from engine.hashing import blake3
from engine.store import Store


def block_args(height: int, n_txs: int = 20, tx_bytes: int = 120, seed: int = 0) -> dict:
    rng = random.Random(height * 1000 + seed)
    txs = [rng.randbytes(tx_bytes) for _ in range(n_txs)]
    parent = blake3(b"block %d %d" % (seed, height - 1)) if height > 1 else bytes(32)
    return {"height": height, "block_hash": blake3(b"block %d %d" % (seed, height)),
            "header": b"header %d" % height, "txs": txs, "certificate": b"cert %d" % height,
            "parent_hash": parent, "app_hash": blake3(b"app %d" % height),
            "results": [b"ok"] * n_txs, "state_changes": [(b"last", b"%d" % height)]}


def save(store: Store, height: int, **kw) -> dict:
    args = block_args(height, **kw)
    store.save_block(**args)
    return args
