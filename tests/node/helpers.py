"""Shared helpers of the node tests: free port ranges, testnets, tx factories."""
from __future__ import annotations

from engine import config, crypto, tx
from engine.localnet import free_base_port, port_free  # noqa: F401 - re-exported for the tests


def make_testnet(tmp_path, validators: int, chain_id: str = "test-chain", **settings):
    base = free_base_port(2 * validators)
    return config.init_testnet(str(tmp_path), validators, base_port=base, chain_id=chain_id,
                               **settings)


def make_txs(chain_id: str, count: int, prefix: str = "k", key=None) -> list[bytes]:
    key = key or crypto.SigningKey.generate()
    return [tx.encode_tx(key, i, f"{prefix}{i}=v{i}".encode(), chain_id) for i in range(count)]
