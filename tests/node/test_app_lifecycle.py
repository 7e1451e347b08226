"""The application life cycle and contained app errors (issue 20's four bugs).

(a) a ``check_tx`` exception refuses that transaction as ``app_error``, never its batch, and RPC
answers JSON, never a 500; (b) the kvstore serves committed values, not genesis ones, after a
restart; (c) a halted node refuses transactions as ``halted``; (d) ``init_chain`` runs once, at
height 0, its genesis writes are committed state, and a restart calls ``restore(height, hash)``.
"""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from engine import config, crypto, tx
from engine.app import KVStoreApp
from engine.errors import NodeHalted
from engine.node import Node
from engine.rpc import join_envelopes
from tests.node.helpers import run


class ExplodingCheck(KVStoreApp):
    """check_tx raises on payloads starting with ``boom``."""

    def check_tx(self, t):
        if t.payload.startswith(b"boom"):
            raise RuntimeError("check_tx bug")
        return super().check_tx(t)


def _solo(tmp_path, **kw):
    return config.init_home(str(tmp_path / "solo"), "solo", p2p_port=0, rpc_port=0, **kw)


def test_check_tx_exception_refuses_one_tx_not_its_batch_and_rpc_answers_json(tmp_path):
    home = _solo(tmp_path)
    key = crypto.SigningKey.generate()
    good1 = tx.encode_tx(key, 0, b"a=1", "solo")
    boom = tx.encode_tx(key, 1, b"boom=1", "solo")
    good2 = tx.encode_tx(key, 2, b"b=2", "solo")

    async def main():
        node = Node(home.path, app=ExplodingCheck())
        await node.start()
        try:
            # Embedded: one batch, one failure.
            results = await node.submit_txs([good1, boom, good2])
            assert [r.code for r in results] == ["ok", "app_error", "ok"], results
            assert "check_tx bug" in results[1].log
            # Over RPC: JSON answers, never a 500.
            boom2 = tx.encode_tx(key, 3, b"boom=2", "solo")
            good3 = tx.encode_tx(key, 4, b"c=3", "solo")
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{node.rpc.url}/txs",
                                     data=join_envelopes([boom2, good3])) as resp:
                    assert resp.status == 200, await resp.text()
                    body = await resp.json()
                assert body["accepted"] == 1 and body["errors"][0]["code"] == "app_error"
                async with http.post(f"{node.rpc.url}/tx",
                                     data=tx.encode_tx(key, 5, b"boom=3", "solo")) as resp:
                    assert resp.status == 400
                    assert resp.content_type == "application/json"
                    assert (await resp.json())["error"] == "app_error"
            info = await node.wait_for_tx(results[2].tx_id, 10)
            assert info is not None
        finally:
            await node.stop()

    run(main())


def test_kvstore_serves_committed_values_over_genesis_ones_after_a_restart(tmp_path):
    home = _solo(tmp_path, app_state={"colour": "genesis-red"})
    key = crypto.SigningKey.generate()

    async def main():
        node = Node(home.path, rpc=False)
        await node.start()
        try:
            assert node.app.query("/key", b"colour").value == b"genesis-red"
            r = await node.submit_tx(tx.encode_tx(key, 0, b"colour=blue", "solo"))
            assert await node.wait_for_tx(r.tx_id, 10) is not None
            assert node.app.query("/key", b"colour").value == b"blue"
        finally:
            await node.stop()
        again = Node(home.path, rpc=False, app=KVStoreApp())
        await again.start()
        try:
            # Before any new block: the committed value, not the genesis one.
            assert again.app.query("/key", b"colour").value == b"blue"
        finally:
            await again.stop()

    run(main())


def test_a_halted_node_refuses_transactions_and_wait_halted_returns_the_reason(tmp_path):
    class Broken(KVStoreApp):
        def finalize_block(self, height, txs):
            if height == 2:
                raise RuntimeError("application bug")
            return super().finalize_block(height, txs)

    home = _solo(tmp_path)

    async def main():
        node = Node(home.path, app=Broken())
        await node.start()
        try:
            # A wait for something the halt makes impossible ends with the reason, at once.
            with pytest.raises(NodeHalted, match="application bug"):
                await node.wait_for_height(50, 30)
            reason = await asyncio.wait_for(node.wait_halted(), 10)
            assert "cannot commit block 2" in reason and "application bug" in reason
            assert node.status()["halted"] == reason
            env = tx.encode_tx(crypto.SigningKey.generate(), 0, b"k=v", "solo")
            r = await node.submit_tx(env)
            assert r.code == "halted" and not r.ok and "application bug" in r.log
            assert [x.code for x in await node.submit_txs([env])] == ["halted"]
            with pytest.raises(NodeHalted):
                await node.wait_for_tx(r.tx_id, 30)
            async with aiohttp.ClientSession() as http, \
                    http.post(f"{node.rpc.url}/tx", data=env) as resp:
                assert resp.status == 503 and (await resp.json())["error"] == "halted"
            assert len(node.mempool) == 0
        finally:
            await node.stop()

    run(main())


class Recording(KVStoreApp):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def init_chain(self, chain_id, app_state):
        self.calls.append(("init_chain", chain_id, dict(app_state)))
        return super().init_chain(chain_id, app_state)

    def restore(self, height, app_hash):
        self.calls.append(("restore", height, app_hash))
        super().restore(height, app_hash)


def test_init_chain_runs_once_at_height_0_and_restarts_are_told_height_and_app_hash(tmp_path):
    home = _solo(tmp_path, app_state={"seed": "1"})

    async def main():
        first = Recording()
        node = Node(home.path, app=first, rpc=False)
        await node.start()
        try:
            assert first.calls == [("init_chain", "solo", {"seed": "1"})]
            # The genesis write is committed state before block 1, not a pending value.
            assert first.state.get(b"seed") == b"1" and first._pending == {}
            await node.wait_for_height(2, 10)
        finally:
            await node.stop()
        height, app_hash = node.latest_height, node.latest_app_hash
        second = Recording()
        again = Node(home.path, app=second, rpc=False)
        await again.start()
        try:
            assert second.calls[0] == ("restore", height, app_hash)
            assert not [c for c in second.calls if c[0] == "init_chain"]
            assert second.last_app_hash == app_hash
            assert second.state.get(b"seed") == b"1"
            await again.wait_for_height(height + 1, 10)
        finally:
            await again.stop()

    run(main())


def test_a_restart_before_block_1_keeps_the_genesis_state(tmp_path):
    home = _solo(tmp_path, app_state={"seed": "1"}, create_empty_blocks=False)

    async def main():
        node = Node(home.path, rpc=False, app=Recording())
        await node.start()
        genesis, height = node.latest_app_hash, node.latest_height
        await node.stop()
        assert height == 0  # stopped before block 1 (no transaction, no empty block yet)
        app = Recording()
        again = Node(home.path, rpc=False, app=app)
        await again.start()
        try:
            assert app.calls[0] == ("restore", 0, genesis)
            assert again.latest_app_hash == genesis
            assert app.query("/key", b"seed").value == b"1"
        finally:
            await again.stop()

    run(main())


def test_a_write_over_the_state_key_limit_halts_naming_the_key(tmp_path):
    from engine.app import STATE_KEY_BYTES_MAX
    from engine.store import store as store_mod

    assert STATE_KEY_BYTES_MAX == store_mod.state_key_bytes_max

    class LongKeys(KVStoreApp):
        def finalize_block(self, height, txs):
            result = super().finalize_block(height, txs)
            if txs:
                result.writes = {b"k" * (STATE_KEY_BYTES_MAX + 1): b"v"}
            return result

    home = _solo(tmp_path)

    async def main():
        node = Node(home.path, app=LongKeys(), rpc=False)
        await node.start()
        try:
            await node.submit_tx(tx.encode_tx(crypto.SigningKey.generate(), 0, b"a=1", "solo"))
            reason = await asyncio.wait_for(node.wait_halted(), 10)
            assert "STATE_KEY_BYTES_MAX" in reason and "b'kkkk" in reason
        finally:
            await node.stop()

    run(main())
