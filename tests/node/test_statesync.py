"""State sync end to end, in one process: a full node joins from a validator's snapshot, with
the same state and app hash, and a Byzantine peer's hostile chunks and snapshots are caught."""
from __future__ import annotations

import asyncio

import pytest

from engine import limits
from engine.block import header_size
from engine.node import Node
from engine.snapshot import Snapshot
from engine.suite import ED25519_BLAKE3, SM2_SM3
from tests.node.helpers import make_txs, run
from tests.node.synchelpers import enable_state_sync, make_net, wait_until


async def _load(node: Node, chain_id: str, count: int, prefix: str) -> None:
    key = node.suite.generate_key()  # a sender of the chain's suite
    for r in await node.submit_txs(make_txs(chain_id, count, prefix, key=key)):
        assert r.ok, r.log


def _same_state(a: Node, b: Node) -> None:
    assert a.store.state_items() == b.store.state_items()


async def _settled(val: Node, other: Node) -> None:
    """Wait until every transaction is committed on ``val`` and ``other`` holds those blocks
    (later blocks are empty: the state no longer changes), then compare the states."""
    await wait_until(lambda: val.mempool is not None and len(val.mempool) == 0, 30,
                     "the validator's mempool to drain")
    height = val.latest_height
    await other.wait_for_height(height, 30)
    _same_state(val, other)


@pytest.mark.parametrize("crypto", [ED25519_BLAKE3, SM2_SM3])
def test_full_node_joins_by_state_sync_with_identical_state(tmp_path, monkeypatch, crypto):
    # On an SM2/SM3 chain the syncing node's peer set must speak that suite: it once dialled
    # with the default suite's handshake and every peer refused it.
    monkeypatch.setattr(limits, "snapshot_chunk_bytes", 2048)  # several chunks
    homes = make_net(tmp_path, 1, 1, crypto=crypto, snapshot_interval=10)
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
                assert 0 < full.state_sync_seconds < 60  # the time it took, in seconds
                assert full.suite.name == crypto
                # The restored block's id is the suite's hash of its header.
                top = full.store.load_block(full.store.base_height())
                assert top is not None and full.suite.hash(
                    top.header[:header_size(len("sync-chain"))]) == top.block_hash
                base = full.store.base_height()
                assert base >= 10 and base % 10 == 0  # restored at a snapshot, not replayed
                await _load(val, "sync-chain", 50, "b")
                target = val.latest_height + 2
                await full.wait_for_height(target, 30)
                await val.wait_for_height(target, 30)
                h = min(val.latest_height, full.latest_height)
                assert val.store.app_hash(h) == full.store.app_hash(h)
                await _settled(val, full)
                assert full.status()["earliest_height"] == base
                assert full.store.load_block(base - 1) is None
            finally:
                await full.stop()
        finally:
            await val.stop()

    run(main(), 120)


def test_byzantine_peer_hostile_chunks_and_snapshots_are_caught(tmp_path, monkeypatch):
    """node1 (a full node) serves flipped chunks, offers a forged snapshot (a real height
    whose app hash and chunks are made up, so its offer hash is consistent) and a malformed
    offer: node2 refuses the forged snapshot after checking it against the certified header,
    drops each bad chunk on arrival and fetches it again from node0, and ends with node0's
    state. The chain is quiet while node2 joins (no empty blocks), so the forged snapshot is
    the highest offered and is tried first, every time."""
    from engine.node.snapshots import SnapshotManager

    monkeypatch.setattr(limits, "snapshot_chunk_bytes", 1024)
    homes = make_net(tmp_path, 1, 2, snapshot_interval=10, create_empty_blocks=False)
    bad_dir = homes[1].path
    honest_offer = SnapshotManager.on_get_snapshots
    honest_chunk = SnapshotManager.load_chunk
    forged_height = [0]

    def hostile_offer(self, peer):
        if not self.dir.startswith(bad_dir):
            return honest_offer(self, peer)
        from engine.net import codec

        height = forged_height[0]
        forged = Snapshot(height, 1, b"\x07" * 32, (b"\x01" * 32, b"\x02" * 32))
        malformed = Snapshot(height, 1, b"\x07" * 32, (b"\x01" * 32,), hash=b"\x09" * 32)
        offers = [forged.to_wire()] + [s.to_wire() for s in self.snapshots()] + \
            [malformed.to_wire()]
        self.wire.send(peer, codec.encode(codec.SNAPSHOTS, offers))

    def hostile_chunk(self, snapshot_hash, index):
        chunk = honest_chunk(self, snapshot_hash, index)
        if chunk is None or not self.dir.startswith(bad_dir):
            return chunk
        return chunk[:-1] + bytes([chunk[-1] ^ 1])

    monkeypatch.setattr(SnapshotManager, "on_get_snapshots", hostile_offer)
    monkeypatch.setattr(SnapshotManager, "load_chunk", hostile_chunk)

    async def quiet(val: Node, byz: Node) -> None:
        await wait_until(lambda: len(val.mempool) == 0, 30, "the mempool to drain")
        last = -1
        while last != val.latest_height or byz.latest_height != val.latest_height:
            last = val.latest_height
            await asyncio.sleep(0.5)

    async def main():
        val, byz = Node(homes[0]), Node(homes[1])
        await val.start()
        await byz.start()
        joiner = None
        try:
            await _load(val, "sync-chain", 300, "a")
            await quiet(val, byz)
            n = 0
            while val.latest_height < 25 or val.latest_height % 10 in (0, 9):
                await _load(val, "sync-chain", 1, f"more{n}")  # no snapshot at H or H - 1
                n += 1
                await quiet(val, byz)
            forged_height[0] = val.latest_height - 1  # above every snapshot that verifies
            assert val.snapshots.snapshots() and byz.snapshots.snapshots()
            enable_state_sync(homes[2], val, 3)
            joiner = Node(homes[2].path)
            await joiner.start()
            c = joiner.counters.values
            assert c.get("state_sync_restored") == 1
            assert c.get("state_sync_snapshot_refused", 0) >= 1     # the forged snapshot
            assert c.get("state_sync_invalid_snapshots", 0) >= 1    # the malformed offer
            assert c.get("state_sync_bad_chunk", 0) >= 1            # a flipped chunk ...
            assert c.get("state_sync_chunk_refetched", 0) >= 1      # ... fetched again
            assert joiner.store.base_height() == (val.latest_height // 10) * 10
            await _settled(val, joiner)
        finally:
            if joiner is not None:
                await joiner.stop()
            await byz.stop()
            await val.stop()

    run(main(), 150)


def test_state_sync_refuses_a_wrong_trust_hash(tmp_path):
    """A trusted hash the validators did not certify stops the start with a clear error and
    leaves the store empty (a restart tries again)."""
    from engine.node.statesync import StateSyncFailed
    from engine.store import Store, store_path
    from tests.node.synchelpers import set_config

    homes = make_net(tmp_path, 1, 1, snapshot_interval=5)

    async def main():
        val = Node(homes[0])
        await val.start()
        try:
            await val.wait_for_height(12, 30)
            await wait_until(lambda: val.snapshots.snapshots(), 10, "a snapshot")
            set_config(homes[1], state_sync=True, state_sync_trust_height=3,
                       state_sync_trust_hash="ab" * 32)
            full = Node(homes[1].path)
            with pytest.raises(StateSyncFailed, match="not state_sync_trust_hash"):
                await full.start()
        finally:
            await val.stop()

    run(main(), 60)
    with Store(store_path(homes[1].path)) as store:
        assert store.latest_height() == 0 and store.state_items() == []


def test_full_node_follows_by_windowed_block_sync(tmp_path):
    """A testnet full node (not in the genesis) started late catches up by block sync (the
    windowed requests; how they spread over peers: tests/node/test_blocksync_window.py), then
    follows the chain with the same state."""
    homes = make_net(tmp_path, 2, 1)
    assert [h.path.rsplit("/", 1)[-1] for h in homes] == ["node0", "node1", "node2"]
    assert len(homes[2].genesis.validators) == 2
    assert homes[2].validator_key.public_key not in {v.public_key
                                                     for v in homes[2].genesis.validators}

    async def main():
        vals = [Node(homes[0]), Node(homes[1])]
        for v in vals:
            await v.start()
        full = None
        try:
            await _load(vals[0], "sync-chain", 300, "a")
            await vals[0].wait_for_height(60, 60)
            full = Node(homes[2].path)
            await full.start()
            await full.wait_for_height(vals[0].latest_height, 60)
            c = full.counters.values
            assert c.get("blocks_synced", 0) >= 50
            assert sum(v.peers.messages_in.get("get_blocks", 0) for v in vals) > 0
            await _settled(vals[0], full)
            assert full.latest_height >= 60
            assert full.store.base_height() == 1
        finally:
            if full is not None:
                await full.stop()
            for v in vals:
                await v.stop()

    run(main(), 120)


def test_snapshot_serving_is_rate_limited_per_peer(tmp_path):
    """A peer asking for chunks faster than the limit gets the excess dropped and counted."""
    from engine.net import codec
    from engine.net.limits import NetLimits
    from engine.node.ports import Counters
    from engine.node.snapshots import SnapshotManager
    from engine.store import Store

    class Wire:
        def __init__(self):
            self.sent: list = []

        def send(self, peer, message):
            self.sent.append((peer, codec.decode(message, NetLimits())))
            return True

    from engine.app import KVStoreApp

    with Store(str(tmp_path / "store")) as store:
        store.save_genesis(bytes(32), [(b"k%d" % i, b"v") for i in range(50)])
        wire, counters = Wire(), Counters()
        mgr = SnapshotManager(store=store, app=KVStoreApp(), home=str(tmp_path), interval=1,
                              keep=1, wire=wire, counters=counters,  # type: ignore[arg-type]
                              spawn=lambda c: None, chunk_bytes=64)
        snap = mgr.take_now()
        assert snap.chunks > 3 and snap.well_formed()
        for _ in range(limits.snapshot_requests_per_peer_per_s_max + 10):
            mgr.on_get_chunk(b"p" * 32, snap.hash, 0)
        served = [m for _, m in wire.sent if m.kind == codec.CHUNK]
        assert len(served) <= limits.snapshot_requests_per_peer_per_s_max
        assert counters.values.get("snapshot_requests_dropped", 0) >= 10
        assert all(m.fields[2] == mgr.load_chunk(snap.hash, 0) for m in served)
        mgr.on_get_chunk(b"q" * 32, snap.hash, snap.chunks)  # out of range: an empty answer
        assert wire.sent[-1][1].fields[2] == b""
