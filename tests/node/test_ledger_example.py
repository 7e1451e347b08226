"""The README's account ledger, run as written on a 4-validator in-process network: transfers,
a query on every node, an event subscription that sees a payment, a recheck that evicts an
overdraft, a restart, and optimistic execution; and its second finalize_block for a height
replacing the first."""
from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import struct

from engine import crypto, tx
from engine.client import AsyncClient
from engine.node import Node
from tests.node.helpers import make_testnet, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAIN = "ledger"


def _ledger_module(tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        section = f.read().split("## An account ledger", 1)[1]
    source = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    path = tmp_path / "ledger_app.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("ledger_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pay(key, nonce, recipient, amount):
    return tx.encode_tx(key, nonce, recipient.public_key + struct.pack("<Q", amount), CHAIN)


def _balance(node, key) -> int:
    answer = node.query("/balance", key.public_key)
    assert answer["code"] == 0, answer
    return struct.unpack("<Q", bytes.fromhex(answer["value"]))[0]


def test_ledger_on_four_validators(tmp_path):
    ledger = _ledger_module(tmp_path)
    alice, bob = crypto.SigningKey.generate(), crypto.SigningKey.generate()
    racers = [crypto.SigningKey.generate() for _ in range(6)]
    balances = {k.public_key.hex(): 100 for k in [alice, *racers]}
    homes = make_testnet(tmp_path, 4, CHAIN, app_state={"balances": balances})

    async def main():
        nodes = [Node(h, app=ledger.LedgerApp()) for h in homes]
        for n in nodes:
            await n.start()
        try:
            # A wallet subscribes to payments to Bob (on another node than the sender's).
            client = AsyncClient(nodes[2].rpc.url)
            stream = client.subscribe([f"transfer.recipient={bob.public_key.hex()}"])
            seen = asyncio.ensure_future(stream.__anext__())
            await asyncio.sleep(0.3)
            r = await nodes[0].submit_tx(_pay(alice, 0, bob, 30))
            assert r.ok, r
            message = await asyncio.wait_for(seen, 20)
            assert message["tx_id"] == r.tx_id.hex()
            assert message["result"]["events"][0]["attributes"]["amount"] == "30"
            assert struct.unpack("<Q", bytes.fromhex(message["result"]["data"]))[0] == 70
            await stream.aclose()
            await client.close()
            # Admission judges against the pool: a second spend beyond the balance, and a
            # nonce gap, are refused before they reach a block.
            assert (await nodes[0].submit_tx(_pay(alice, 1, bob, 71))).code == "app_rejected"
            assert (await nodes[0].submit_tx(_pay(alice, 5, bob, 1))).code == "app_rejected"
            # Every node answers the same balances over RPC once it has the block.
            height = message["height"]
            await asyncio.gather(*(n.wait_for_height(height, 20) for n in nodes))
            for n in nodes:
                async with AsyncClient(n.rpc.url) as c:
                    answers = [await c.query("/balance", k.public_key) for k in (alice, bob)]
                assert [struct.unpack("<Q", bytes.fromhex(a["value"]))[0]
                        for a in answers] == [70, 30]
                assert all(a["height"] >= height and a["code"] == 0 for a in answers)
            # Two nodes each admit one of two spends (same nonce) that together overdraw the
            # account; once one is committed, the other is evicted from the other pool.
            for key in racers:
                x, y = _pay(key, 0, bob, 60), _pay(key, 0, bob, 70)
                rx, ry = await asyncio.gather(nodes[1].submit_tx(x), nodes[3].submit_tx(y))
                ids = [r.tx_id for r in (rx, ry) if r.ok]
                for _ in range(200):
                    if not any(i in n.mempool for i in ids for n in nodes):
                        break
                    await asyncio.sleep(0.05)
                committed = [i for i in ids if nodes[0].tx_info(i) is not None]
                assert len(committed) == 1, (rx, ry)
                if len(ids) == 2:
                    break
            else:
                raise AssertionError("the two spends never raced into two pools")
            # The loser left the other pool: its nonce is used (the engine's replay protection
            # evicts it; the app's recheck would refuse the overdraft as well).
            assert sum(n.mempool.rejected.get("stale_nonce", 0)
                       + n.mempool.rejected.get("recheck_evicted", 0) for n in nodes) >= 1
            # Sent again it is refused for its used nonce (not as a duplicate); the corrected
            # spend, signed with the next nonce, goes through.
            loser = next(e for e, r in ((x, rx), (y, ry)) if r.tx_id not in committed)
            assert (await nodes[0].submit_tx(loser)).code == "stale_nonce"
            fixed = await nodes[3].submit_tx(_pay(key, 1, bob, 10))
            assert fixed.ok and await nodes[3].wait_for_tx(fixed.tx_id, 20) is not None
            # A restart: node 3 stops, the network goes on, node 3 comes back and agrees.
            await nodes[3].stop()
            r = await nodes[0].submit_tx(_pay(alice, 1, bob, 20))
            info = await nodes[0].wait_for_tx(r.tx_id, 20)
            nodes[3] = Node(homes[3], app=ledger.LedgerApp())
            await nodes[3].start()
            try:
                await nodes[3].wait_for_height(info["height"], 30)
            except asyncio.TimeoutError:
                raise AssertionError(f"node 3 did not catch up: {nodes[3].status()}") from None
            assert _balance(nodes[3], alice) == 50
            assert len({(_balance(n, alice), _balance(n, bob)) for n in nodes}) == 1
            assert nodes[3].query("/nonce", alice.public_key)["value"] == \
                struct.pack("<Q", 2).hex()
            # The ledger allows optimistic execution: decisions used early results.
            assert sum(n.counters.get("optimistic_reused") for n in nodes) > 0
        finally:
            for n in nodes:
                await n.stop()

    run(main(), 180)


def test_ledger_second_finalize_replaces_the_first(tmp_path):
    """What optimistic execution asks of the README ledger: a block executed and then not
    decided leaves no trace; the decided one gives the hash and results it gives alone."""
    from engine.app import MemoryState

    ledger = _ledger_module(tmp_path)
    alice, bob, carol = (crypto.SigningKey.generate() for _ in range(3))
    genesis = {"balances": {alice.public_key.hex(): 100}}

    def app():
        a = ledger.LedgerApp()
        a.state = MemoryState()
        init = a.init_chain(CHAIN, genesis)
        a.state.apply(init.writes)
        a.commit()
        return a

    def txs(*envelopes):
        return [tx.decode_tx(e) for e in envelopes]

    early, alone = app(), app()
    undecided = early.finalize_block(1, txs(_pay(alice, 0, carol, 90)), None)
    assert early.query("/balance", alice.public_key).value == struct.pack("<Q", 100)
    decided = txs(_pay(alice, 0, bob, 30))
    got, want = early.finalize_block(1, decided, None), alone.finalize_block(1, decided, None)
    assert got.app_hash == want.app_hash != undecided.app_hash
    assert got.writes == want.writes and [r.data for r in got.tx_results] == \
        [r.data for r in want.tx_results]
    for a, result in ((early, got), (alone, want)):
        a.state.apply(result.writes)
        a.commit()
    assert early.last_app_hash == alone.last_app_hash == want.app_hash
    assert early.query("/balance", carol.public_key).value == struct.pack("<Q", 0)
