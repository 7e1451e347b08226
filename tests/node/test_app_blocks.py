"""Block-level application hooks and block pacing: prepare/process_proposal, no empty blocks,
the empty-block interval, and app settings handed to the application."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from engine import config, crypto, tx
from engine.app import CheckResult, KVStoreApp
from engine.node import Node
from engine.node.apphooks import AppHooks
from engine.node.ports import Counters
from tests.node.helpers import run


def _solo(tmp_path, **settings):
    return config.init_home(str(tmp_path / "solo"), "solo", p2p_port=0, rpc_port=0,
                            **settings)


class Choosy(KVStoreApp):
    """Leaves ``skip=`` transactions out of its proposals and puts ``first=`` ones first."""

    def __init__(self):
        super().__init__()
        self.prepared: list[list[bytes]] = []

    def prepare_proposal(self, height, txs):
        chosen = [t for t in txs if not t.payload.startswith(b"skip=")]
        chosen.sort(key=lambda t: not t.payload.startswith(b"first="))
        self.prepared.append([t.payload for t in chosen])
        return chosen


def test_prepare_proposal_chooses_and_orders(tmp_path):
    home = _solo(tmp_path, create_empty_blocks=False)
    keys = [crypto.SigningKey.generate() for _ in range(3)]

    async def main():
        app = Choosy()
        node = Node(home.path, app=app, rpc=False)
        await node.start()
        try:
            envs = [tx.encode_tx(keys[0], 0, b"a=1", "solo"),
                    tx.encode_tx(keys[1], 0, b"skip=1", "solo"),
                    tx.encode_tx(keys[2], 0, b"first=1", "solo")]
            results = await node.submit_txs(envs)
            info = await node.wait_for_tx(results[0].tx_id, 10)
            block = node.block_info(info["height"])
            assert block["tx_ids"] == [results[2].tx_id.hex(), results[0].tx_id.hex()]
            assert results[1].tx_id in node.mempool  # never proposed, still pooled
        finally:
            await node.stop()

    run(main())


def test_proposal_hooks_contain_app_exceptions():
    class Bad:
        def check_tx(self, t):
            return CheckResult()

        def prepare_proposal(self, height, txs):
            raise RuntimeError("bug")

        def process_proposal(self, height, txs):
            raise RuntimeError("bug")

    hooks = AppHooks(Bad(), Counters())
    hooks.mempool = SimpleNamespace(decoded=lambda i: SimpleNamespace(tx_id=i))
    envs = [tx.encode_tx(crypto.SigningKey.generate(), 0, b"k=v", "c")]
    assert hooks.prepare(1, envs) == envs  # the reaped list, unchanged
    assert hooks.process(1, envs, [b"\x00" * 32]) is False  # a block it cannot judge: no

    class Liar(Bad):
        def prepare_proposal(self, height, txs):
            return [SimpleNamespace(tx_id=b"\x01" * 32)]  # not one it was given

    hooks = AppHooks(Liar(), Counters())
    hooks.mempool = SimpleNamespace(decoded=lambda i: SimpleNamespace(tx_id=i))
    assert hooks.prepare(1, envs) == envs
    assert hooks.counters.get("app_prepare_error", 0) == 1


def test_no_empty_blocks_until_a_transaction(tmp_path):
    home = _solo(tmp_path, create_empty_blocks=False)

    async def main():
        node = Node(home.path, rpc=False)
        await node.start()
        try:
            await asyncio.sleep(1.5)
            assert node.latest_height == 0
            r = await node.submit_tx(tx.encode_tx(crypto.SigningKey.generate(), 0, b"k=v",
                                                  "solo"))
            info = await node.wait_for_tx(r.tx_id, 10)
            assert info["height"] == 1
            # One more block carries the app hash the transaction changed; then nothing.
            await node.wait_for_height(2, 10)
            await asyncio.sleep(1.5)
            assert node.latest_height == 2
            assert node.block_info(2)["app_hash"] == node.block_info(1)["result_app_hash"]
        finally:
            await node.stop()
        # A restart does not make an empty block either.
        again = Node(home.path, rpc=False)
        await again.start()
        try:
            await asyncio.sleep(1.0)
            assert again.latest_height == 2
        finally:
            await again.stop()

    run(main())


def test_empty_block_interval(tmp_path):
    home = _solo(tmp_path, create_empty_blocks=False, create_empty_blocks_interval_ms=200)

    async def main():
        node = Node(home.path, rpc=False)
        await node.start()
        try:
            await node.wait_for_height(3, 10)
        finally:
            await node.stop()

    run(main())


def test_app_settings_and_home_reach_the_app(tmp_path):
    home = _solo(tmp_path, app_settings={"fee": 5, "name": "x"})
    assert config.load_home(home.path).config.app_settings == {"fee": 5, "name": "x"}

    async def main():
        app = KVStoreApp()
        node = Node(home.path, app=app, rpc=False)
        await node.start()
        try:
            assert app.settings == {"fee": 5, "name": "x"} and app.home == home.path
        finally:
            await node.stop()

    run(main())


class Strict(KVStoreApp):
    """Honest nodes never propose ``evil=`` transactions and reject blocks that carry one."""

    def prepare_proposal(self, height, txs):
        return [t for t in txs if not t.payload.startswith(b"evil=")]

    def process_proposal(self, height, txs):
        return not any(t.payload.startswith(b"evil=") for t in txs)


class Rogue(Strict):
    """Proposes everything it has."""

    def prepare_proposal(self, height, txs):
        return txs


def test_process_proposal_rejects_a_block_the_others_refuse(tmp_path):
    from tests.node.helpers import make_testnet

    homes = make_testnet(tmp_path, 4, "strict")

    async def main():
        nodes = [Node(homes[0], app=Rogue())] + [Node(h, app=Strict()) for h in homes[1:]]
        for n in nodes:
            await n.start()
        try:
            key = crypto.SigningKey.generate()
            evil = await nodes[0].submit_tx(tx.encode_tx(key, 0, b"evil=1", "strict"))
            assert evil.ok
            start = max(n.latest_height for n in nodes)
            # Rounds proposed by node 0 carry the evil transaction and are rejected; the others
            # leave it out. Wait until node 0 has had its turns.
            await asyncio.gather(*(n.wait_for_height(start + 8, 60) for n in nodes))
            assert nodes[0].tx_info(evil.tx_id) is None
            assert sum(n.counters.get("invalid_block", 0) for n in nodes[1:]) >= 1
            good = await nodes[1].submit_tx(tx.encode_tx(key, 1, b"k=v", "strict"))
            assert await nodes[1].wait_for_tx(good.tx_id, 30) is not None
        finally:
            for n in nodes:
                await n.stop()

    run(main(), 120)


def test_no_empty_blocks_on_four_validators(tmp_path):
    from tests.node.helpers import make_testnet

    homes = make_testnet(tmp_path, 4, "quiet", create_empty_blocks=False)

    async def main():
        nodes = [Node(h, rpc=False) for h in homes]
        for n in nodes:
            await n.start()
        try:
            await asyncio.sleep(1.5)
            assert [n.latest_height for n in nodes] == [0] * 4
            key = crypto.SigningKey.generate()
            for nonce, node in enumerate(nodes):  # each validator's pool starts a height
                r = await node.submit_tx(tx.encode_tx(key, nonce, b"k%d=v" % nonce, "quiet"))
                assert await node.wait_for_tx(r.tx_id, 20) is not None
            await asyncio.sleep(1.5)  # the block carrying the last app hash, then quiet
            settled = nodes[0].latest_height
            await asyncio.sleep(1.5)
            assert [n.latest_height for n in nodes] == [settled] * 4
            assert settled <= 8
        finally:
            for n in nodes:
                await n.stop()

    run(main(), 120)
