"""Shared helpers of the node tests: free port ranges, testnets, tx factories."""
from __future__ import annotations

import asyncio

from engine import config, crypto, tx
from engine.localnet import free_base_port, port_free  # noqa: F401 - re-exported for the tests


def make_testnet(tmp_path, validators: int, chain_id: str = "test-chain", **settings):
    base = free_base_port(2 * validators)
    return config.init_testnet(str(tmp_path), validators, base_port=base, chain_id=chain_id,
                               **settings)


def make_txs(chain_id: str, count: int, prefix: str = "k", key=None) -> list[bytes]:
    key = key or crypto.SigningKey.generate()
    return [tx.encode_tx(key, i, f"{prefix}{i}=v{i}".encode(), chain_id) for i in range(count)]


def run(coro, timeout_s: float = 60):
    """Run a test coroutine on a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def start_nodes(homes):
    """Start an in-process Node for each home, in order."""
    from engine.node import Node

    nodes = [Node(h) for h in homes]
    for n in nodes:
        await n.start()
    return nodes
