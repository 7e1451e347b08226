"""Helpers of the pruning / snapshot / state sync tests: a testnet with full nodes, loads."""
from __future__ import annotations

import asyncio

from engine import config
from engine.localnet import free_base_port
from engine.node import Node

FAST = {"timeout_propose_ms": 400, "timeout_prevote_ms": 200, "timeout_precommit_ms": 200,
        "timeout_delta_ms": 100, "block_interval_ms": 20}


def make_net(tmp_path, validators: int, full_nodes: int, crypto: str | None = None,
             **settings):
    base = free_base_port(2 * (validators + full_nodes))
    return config.init_testnet(str(tmp_path), validators, base_port=base,
                               chain_id="sync-chain", full_nodes=full_nodes, crypto=crypto,
                               **{**FAST, **settings})


def set_config(home, **values) -> None:
    """Change config.toml keys of a home before its first start."""
    conf = config.load_config(home.path)
    for k, v in values.items():
        setattr(conf, k, v)
    config.save_config(home.path, conf)


def enable_state_sync(home, source: Node, trust_height: int) -> None:
    stored = source.store.load_block(trust_height)
    assert stored is not None
    set_config(home, state_sync=True, state_sync_trust_height=trust_height,
               state_sync_trust_hash=stored.block_hash.hex())


async def wait_until(predicate, timeout_s: float, what: str) -> None:
    end = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
