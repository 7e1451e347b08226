"""Chain A accepts facts about chain B only when B's validators signed them: the example app
against a synthetic chain B (forged headers, wrong sets, stale trust, proofs for another
height, set changes), then two real in-process chains with the relayer in between."""
from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from engine import config, crypto, tx
from engine.app import BlockContext, MemoryState
from engine.examples.crosschain import HEADER_PREFIX, STATE_PREFIX, TX_PREFIX, CrossChainApp, relay
from engine.hashing import blake3, merkle_proof
from engine.light.synthetic import SyntheticChain, make_keys
from engine.node import Node
from engine.statetree import StateTree
from engine.suite import ED25519_BLAKE3, SM2_SM3, get_suite
from tests.node.helpers import make_testnet, run, start_nodes

B = b"chain-b"
KEYS = make_keys(9, b"xc")
PERIOD_MS = 3_600_000
ENVS = [b"envelope-%d" % i for i in range(5)]


def _chain_b(epochs, length=30):
    """B's kvstore state (``price`` set at heights 5 and 10), its roots in B's headers, and
    five transactions in block 7."""
    tree, state = StateTree(history_heights=length + 1), {}
    tree.load([], 0)
    roots = {0: tree.root()}
    for h in range(1, length + 1):
        writes = {b"price": b"%d" % h} if h in (5, 10) else {}
        roots[h] = tree.apply(h, writes, state.get)
        state.update(writes)
    chain = SyntheticChain(B, epochs, length, app_hash=lambda h: roots[h - 1],
                           tx_ids=lambda h: [blake3(e) for e in ENVS] if h == 7 else [])
    return chain, tree, state


class _A:
    def __init__(self, chain: SyntheticChain):
        self.chain = chain
        self.app = CrossChainApp()
        self.app.state = MemoryState()
        self.app.init_chain("chain-a", {"counterparty_chain_id": "chain-b",
                                        "trusted_light_block": chain.light_block(1).encode().hex(),
                                        "trusting_period_ms": PERIOD_MS, "hello": "world"})
        self.app.commit()
        self.height = 0
        self.key = crypto.SigningKey.generate()

    def block(self, *payloads, time_ms=None):
        """Run one block of A at ``time_ms`` (default: just after B's header 30)."""
        self.height += 1
        txs = [tx.decode_tx(tx.encode_tx(self.key, self.height * 100 + i, p, "chain-a"))
               for i, p in enumerate(payloads)]
        now = time_ms if time_ms is not None else self.chain.header(30).time_ms + 1000
        ctx = BlockContext("chain-a", self.height, now, bytes(32), bytes(32), 0)
        result = self.app.finalize_block(self.height, txs, ctx)
        self.app.commit()
        return [(r.code, r.log) for r in result.tx_results]


def _header(lb):
    return HEADER_PREFIX + lb.encode()


def _claim(proof):
    return STATE_PREFIX + json.dumps({"proof": proof.to_json()}).encode()


def test_a_accepts_a_proven_value_and_refuses_the_rest():
    chain, tree, state = _chain_b([(1, [(k, 10) for k in KEYS[:4]])])
    a = _A(chain)
    proof5 = tree.prove(b"price", state[b"price"], 5)
    assert proof5.value == b"5"
    # The header that carries the state after 5 is not trusted yet.
    assert "relay the counterparty header of height 6 first" in a.block(_claim(proof5))[0][1]
    assert a.block(_header(chain.light_block(6))) == [(0, "")]
    assert a.block(_claim(proof5)) == [(0, "")]
    assert a.app.state.get(b"xc/value/price") == b"5"
    # A forged value, and a proof moved to another height, are refused.
    assert "another value" in a.block(_claim(dataclasses.replace(proof5, value=b"99")))[0][1]
    assert a.block(_header(chain.light_block(11)))[0][0] == 0
    moved = dataclasses.replace(proof5, height=10)
    assert "app hash" in a.block(_claim(moved))[0][1]
    proof10 = tree.prove(b"price", state[b"price"], 10)
    assert a.block(_claim(proof10)) == [(0, "")]
    assert a.app.state.get(b"xc/value/price") == b"10"
    # Absence is provable too: no "volume" key ever existed on B.
    assert a.block(_claim(tree.prove(b"volume", None, 10))) == [(0, "")]
    # A transaction of B's block 7.
    assert a.block(_header(chain.light_block(7)))[0][0] == 0
    good_tx = {"height": 7, "tx": ENVS[1].hex(),
               "proof": {"index": 1, "size": 5,
                         "path": [p.hex() for p in merkle_proof(ENVS, 1).path]}}
    assert a.block(TX_PREFIX + json.dumps(good_tx).encode()) == [(0, "")]
    assert a.app.state.get(b"xc/tx/" + blake3(ENVS[1]).hex().encode()) == (7).to_bytes(8, "big")
    bad_tx = {**good_tx, "tx": b"not-in-block".hex()}
    assert "not in block 7" in a.block(TX_PREFIX + json.dumps(bad_tx).encode())[0][1]
    # Plain kvstore transactions still work; the relay's keys are not writable directly.
    res = a.block(b"x=1", b"xc/value/price=0")
    assert res[0] == (0, "") and res[1][0] == 1 and "xc/" in res[1][1]
    assert a.app.state.get(b"xc/value/price") == b"10"


def test_forged_headers_wrong_sets_and_stale_trust_are_refused():
    chain, _, _ = _chain_b([(1, [(k, 10) for k in KEYS[:4]])])
    a = _A(chain)
    lb = chain.light_block(12)
    sigs = list(lb.certificate.signatures)
    sigs[1] = bytes(64)
    forged = dataclasses.replace(lb, certificate=dataclasses.replace(lb.certificate,
                                                                      signatures=tuple(sigs)))
    assert "invalid signatures" in a.block(_header(forged))[0][1]
    # An impostor chain with the same id signed by other keys.
    fake = SyntheticChain(B, [(1, [(k, 10) for k in KEYS[4:8]])], 30)
    assert "not_enough_trust" in a.block(_header(fake.light_block(12)))[0][1]
    # Its adjacent header names another set than the trusted header named next.
    assert "not the next set" in a.block(_header(fake.light_block(2)))[0][1]
    # A header whose set is swapped for another.
    swapped = dataclasses.replace(lb, validators=fake.set_at(12))
    assert "not the one its header names" in a.block(_header(swapped))[0][1]
    # Stale trust: A's block time is past the trusted header's period.
    late = chain.header(1).time_ms + PERIOD_MS + 1
    assert "trust_expired" in a.block(_header(lb), time_ms=late)[0][1]
    assert a.block(_header(lb))[0][0] == 0
    assert a.app.state.get(b"xc/lb/" + (12).to_bytes(8, "big")) is not None


def test_relaying_across_set_changes_needs_the_intermediate_headers():
    # B's set of three is replaced one validator at a time (heights 8, 15, 22): height 25's
    # set shares nobody with height 1's.
    chain, _, _ = _chain_b([(1, [(k, 10) for k in KEYS[0:3]]), (8, [(k, 10) for k in KEYS[1:4]]),
                            (15, [(k, 10) for k in KEYS[2:5]]), (22, [(k, 10) for k in KEYS[3:6]])])
    a = _A(chain)
    assert "not_enough_trust" in a.block(_header(chain.light_block(25)))[0][1]
    for h in (12, 20, 25):
        assert a.block(_header(chain.light_block(h))) == [(0, "")], h


@pytest.mark.parametrize("b_crypto", [ED25519_BLAKE3, SM2_SM3])
def test_two_chains_in_process_with_the_relayer(tmp_path, b_crypto):
    """A (Ed25519/BLAKE3) follows B of either suite: on an SM2/SM3 B the light blocks, the
    state tree and its proofs are SM2/SM3, and A reads them so (``counterparty_crypto``)."""
    b_homes = make_testnet(tmp_path / "b", 4, chain_id="chain-b", crypto=b_crypto)
    b_key = get_suite(b_crypto).generate_key()
    key = crypto.SigningKey.generate()

    async def main():
        b_nodes = await start_nodes(b_homes)
        a_node = None
        loop = asyncio.get_running_loop()
        try:
            b = b_nodes[0]
            await b.wait_for_height(2, 30)
            trusted = b.light_block(1)
            from engine.light import LightBlock

            trusted_hex = LightBlock.from_json(trusted, b_crypto).encode().hex()
            a_home = config.init_home(str(tmp_path / "a"), "chain-a", p2p_port=0, rpc_port=0,
                                      app_state={"counterparty_chain_id": "chain-b",
                                                 "counterparty_crypto": b_crypto,
                                                 "trusted_light_block": trusted_hex})
            a_node = Node(a_home.path, app=CrossChainApp())
            await a_node.start()
            assert b.status()["crypto"] == b_crypto and a_node.status()["crypto"] == ED25519_BLAKE3
            env_b = tx.encode_tx(b_key, 0, b"price=42", "chain-b")
            r = await b.submit_tx(env_b)
            info = await b.wait_for_tx(r.tx_id, 20)
            await b.wait_for_height(info["height"] + 1, 20)
            answers = await loop.run_in_executor(
                None, lambda: relay(b.rpc.url, a_node.rpc.url, b"price", info["height"]))
            assert answers and all(x["result"]["code"] == 0 for x in answers), answers
            assert a_node.app.state.get(b"xc/value/price") == b"42"
            # A lie: the same proof with another value never enters A's mempool.
            proof = b.query("/key", b"price", info["height"], prove=True)["proof"]
            proof["value"] = b"1000".hex()
            lie = tx.encode_tx(key, 0, STATE_PREFIX + json.dumps({"proof": proof}).encode(),
                               "chain-a")
            res = await a_node.submit_tx(lie)
            assert not res.ok and "another value" in res.log
            # B's transaction itself, proven against B's header of its height (B's tx tree),
            # is recorded under its id on B (SM3 on an SM2/SM3 chain).
            lb = LightBlock.from_json(b.light_block(info["height"]), b_crypto)
            claim = {"height": info["height"], "tx": env_b.hex(), "proof": info["proof"]}
            for nonce, payload in enumerate((HEADER_PREFIX + lb.encode(),
                                             TX_PREFIX + json.dumps(claim).encode()), 1):
                res = await a_node.submit_tx(tx.encode_tx(key, nonce, payload, "chain-a"))
                assert res.ok, res.log
                done = await a_node.wait_for_tx(res.tx_id, 20)
                assert done["result"]["code"] == 0, done
            recorded = a_node.app.state.get(b"xc/tx/" + r.tx_id.hex().encode())
            assert recorded == info["height"].to_bytes(8, "big")
        finally:
            if a_node is not None:
                await a_node.stop()
            for n in reversed(b_nodes):
                await n.stop()

    run(main(), timeout_s=120)
