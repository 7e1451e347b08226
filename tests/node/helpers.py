"""Shared helpers of the node tests: free port ranges, testnets, tx factories."""
from __future__ import annotations

import random
import socket

from engine import config, crypto, tx


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int) -> int:
    """A base port such that base .. base + count - 1 are all free right now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - count, 2)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range found")


def make_testnet(tmp_path, validators: int, chain_id: str = "test-chain", **settings):
    base = free_base_port(2 * validators)
    return config.init_testnet(str(tmp_path), validators, base_port=base, chain_id=chain_id,
                               **settings)


def make_txs(chain_id: str, count: int, prefix: str = "k", key=None) -> list[bytes]:
    key = key or crypto.SigningKey.generate()
    return [tx.encode_tx(key, i, f"{prefix}{i}=v{i}".encode(), chain_id) for i in range(count)]
