"""Genesis and app-hash agreement: a node with another genesis is refused in the handshake with
a clear reason, and a node whose application computes another state halts with the heights and
hashes instead of catching up for ever."""
from __future__ import annotations

import asyncio
import json
import os

from engine import cli, config, crypto, tx
from engine.app import KVStoreApp
from engine.hashing import blake3
from engine.node import Node
from tests.node.helpers import make_testnet, run

CHAIN = "genesis"


def _rewrite_genesis(home, **changes):
    path = os.path.join(home.path, config.GENESIS_FILE)
    with open(path) as f:
        obj = json.load(f)
    obj.update(changes)
    with open(path, "w") as f:
        json.dump(obj, f)
    return config.load_home(home.path)


def test_a_node_with_another_genesis_is_refused_with_a_clear_reason(tmp_path, caplog):
    homes = make_testnet(tmp_path, 4, CHAIN)
    other = _rewrite_genesis(homes[3], app_state={"surprise": "1"})

    async def main():
        a, b = Node(homes[0]), Node(other)
        await a.start()
        await b.start()
        try:
            assert a.status()["genesis_hash"] != b.status()["genesis_hash"]
            assert a.status()["genesis_hash"] == homes[0].genesis.hash().hex()
            for _ in range(100):
                if a.peers.faults["genesis_mismatch"] and b.peers.faults["genesis_mismatch"]:
                    break
                await asyncio.sleep(0.05)
            assert a.peers.faults["genesis_mismatch"] >= 1
            assert b.peers.faults["genesis_mismatch"] >= 1
            assert not a.peers.connected() and not b.peers.connected()
        finally:
            await b.stop()
            await a.stop()

    with caplog.at_level("ERROR", logger="engine.net"):
        run(main())
    assert any("runs another genesis" in r.getMessage() for r in caplog.records)


class Diverging(KVStoreApp):
    """Computes another app hash than everyone else for every block with writes."""

    def finalize_block(self, height, txs):
        result = super().finalize_block(height, txs)
        if result.writes:
            result.app_hash = self.last_app_hash = blake3(b"diverged" + result.app_hash)
        return result


def test_an_app_hash_divergence_halts_with_heights_and_hashes(tmp_path):
    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        nodes = [Node(h) for h in homes[:3]] + [Node(homes[3], app=Diverging())]
        for n in nodes:
            await n.start()
        try:
            await asyncio.gather(*(n.wait_for_height(1, 20) for n in nodes))
            r = await nodes[0].submit_tx(tx.encode_tx(crypto.SigningKey.generate(), 0, b"k=v",
                                                      CHAIN))
            info = await nodes[0].wait_for_tx(r.tx_id, 20)
            await asyncio.gather(*(n.wait_for_height(info["height"] + 3, 30)
                                   for n in nodes[:3]))
            reason = await asyncio.wait_for(nodes[3].wait_halted(), 30)
            h = info["height"]
            theirs = nodes[0].block_info(h)["result_app_hash"]
            assert reason == (f"app hash mismatch at height {h}: ours "
                              f"{nodes[3].latest_app_hash.hex()}, network {theirs}")
            assert nodes[3].latest_app_hash.hex() != theirs
        finally:
            for n in nodes:
                await n.stop()

    run(main(), 120)


def test_cli_writes_app_and_app_state(tmp_path, capsys):
    state = tmp_path / "alloc.json"
    state.write_text(json.dumps({"balances": {"ab": 5}}))
    assert cli.main(["testnet", "--validators", "2", "--output", str(tmp_path / "net"),
                     "--base-port", "31100", "--app", "engine.app:KVStoreApp",
                     "--app-state", str(state)]) == 0
    homes = [config.load_home(str(tmp_path / "net" / f"node{i}")) for i in range(2)]
    assert all(h.genesis.app_state == {"balances": {"ab": 5}} for h in homes)
    assert all(h.config.app == "engine.app:KVStoreApp" for h in homes)
    assert homes[0].genesis.hash() == homes[1].genesis.hash()
    assert cli.main(["init", "--home", str(tmp_path / "solo"), "--app-state",
                     str(state)]) == 0
    assert config.load_home(str(tmp_path / "solo")).genesis.app_state == {"balances": {"ab": 5}}
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    assert cli.main(["init", "--home", str(tmp_path / "x"), "--app-state", str(bad)]) == 2
    assert "JSON object" in capsys.readouterr().err
