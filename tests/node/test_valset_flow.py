"""Validator-set changes end to end, in-process nodes on real sockets: the README flow (a fifth
validator joins a running 4-validator testnet through the kvstore admin's `val:` transaction,
then one is removed), checked through the set history, GET /validators?height=H, the
certificates the new validator signs, the peer set, and `engine store check`; on both crypto
suites (an `sm2-sm3` chain changes its set with SM2 keys: 64-byte keys in the updates, the
set history and the certificates), and a node restarted after the changes reads its history
back."""
from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest

from engine import config, tx
from engine.cli import main as cli_main
from engine.localnet import free_base_port
from engine.node import Node
from engine.node.check import verifier_for_home
from engine.store import Store, check_store, store_path
from tests.node.helpers import make_testnet, run

CHAIN = "valset"
_NONCES = [0]


async def _commit(node: Node, key, payload: bytes) -> dict:
    _NONCES[0] += 1  # a sender's nonces only grow
    env = tx.encode_tx(key, _NONCES[0], payload, CHAIN)
    added = await node.submit_tx(env)
    assert added.ok, (added.code, added.log)
    info = await node.wait_for_tx(added.tx_id, 30)
    assert info is not None and info["result"]["code"] == 0, info
    return info


def _keys(vset) -> list[bytes]:
    return [v.public_key for v in vset.validators]


async def _signed_by(node: Node, index_of_key: bytes, from_height: int, timeout_s: float) -> int:
    """The first height >= from_height whose commit certificate carries ``index_of_key``'s
    signature (its index in that height's set)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    h = from_height
    while asyncio.get_running_loop().time() < deadline:
        if node.latest_height >= h:
            index = node.validator_set_at(h).index_of(index_of_key)
            info = node.block_info(h)
            assert info is not None
            if index is not None and index in info["certificate"]["signers"]:
                return h
            h += 1
        else:
            await asyncio.sleep(0.05)
    raise AssertionError(f"no certificate from {from_height} to {h} carries that signature")


@pytest.mark.parametrize("crypto", ["ed25519-blake3", "sm2-sm3"])
def test_add_a_fifth_validator_then_remove_one(tmp_path, crypto):
    net = tmp_path / "net"
    homes = make_testnet(net, 4, CHAIN, crypto=crypto)
    suite = homes[0].genesis.suite
    assert suite.name == crypto
    admin = config._read_key(str(net / config.ADMIN_KEY_FILE), suite)
    assert homes[0].genesis.app_state["validator_admins"] == [admin.public_key.hex()]
    base = free_base_port(2)
    # The README's command: `engine join --home ... --from ... --p2p-port ... --rpc-port ...`.
    assert cli_main(["join", "--home", str(net / "node4"), "--from", homes[0].path,
                     "--p2p-port", str(base), "--rpc-port", str(base + 1)]) == 0
    fifth_home = config.load_home(str(net / "node4"))
    assert all(fifth_home.node_key.public_key < h.node_key.public_key for h in homes)
    assert fifth_home.genesis == homes[0].genesis
    fifth_key = fifth_home.validator_key.public_key
    assert len(fifth_key) == suite.public_key_bytes
    removed_key = homes[3].validator_key.public_key

    async def main():
        nodes = [Node(h) for h in homes]
        for n in nodes:
            await n.start()
        fifth = Node(fifth_home)
        await fifth.start()
        try:
            h, h2 = await _flow(nodes, fifth)
            # A node restarted after both changes reads the set history back from its store
            # (the records of h + 2 and h2 + 2, keys of the chain's suite) and goes on.
            await nodes[0].stop()
            nodes[0] = Node(homes[0])
            await nodes[0].start()
            for height in (h + 1, h + 2, h2 + 1, h2 + 2):
                assert nodes[0].validator_set_at(height) == nodes[1].validator_set_at(height)
            assert nodes[0].validator_set_at(h + 2) != nodes[0].validator_set_at(h + 1)
            assert nodes[0].validator_set_at(h2 + 2) != nodes[0].validator_set_at(h2 + 1)
            await nodes[0].wait_for_height(nodes[1].latest_height + 2, 30)
        finally:
            for n in [*nodes, fifth]:
                await n.stop()

    async def _flow(nodes, fifth):
        await nodes[0].wait_for_height(2, 20)
        genesis_set = nodes[0].validator_set_at(1)
        assert fifth_key not in _keys(genesis_set)
        # Not a validator yet: the network refuses its connections, it stays at height 0.
        assert fifth.latest_height == 0

        # A sender outside validator_admins is refused at admission.
        outsider = config._read_key(os.path.join(homes[1].path, config.VALIDATOR_KEY_FILE),
                                    suite)
        refused = await nodes[0].submit_tx(tx.encode_tx(
            outsider, 1, b"val:" + fifth_key.hex().encode() + b"=10", CHAIN))
        assert not refused.ok and "validator_admins" in refused.log

        info = await _commit(nodes[0], admin, b"val:" + fifth_key.hex().encode() + b"=10")
        h = info["height"]
        await nodes[0].wait_for_height(h + 2, 20)
        # The change signs h + 2: the header of h + 1 names it, h + 1 is still the old set.
        assert nodes[0].validator_set_at(h + 1) == nodes[0].validator_set_at(h)
        added = nodes[0].validator_set_at(h + 2)
        assert _keys(added) == [*_keys(genesis_set), fifth_key]
        assert added.public_key(4) == fifth_key and added.total_power == 50
        for n in nodes:  # every node has the same history
            assert n.validator_set_at(h + 2) == added
        async with aiohttp.ClientSession() as http:
            url = nodes[1].rpc.url
            async with http.get(f"{url}/validators?height={h + 2}") as r:
                body = await r.json()
            assert [(v["pub_key"], v["power"]) for v in body["validators"]] == \
                [(k.hex(), 10) for k in _keys(added)]
            async with http.get(f"{url}/validators?height={h + 1}") as r:
                assert len((await r.json())["validators"]) == 4
            async with http.get(f"{url}/validators?height={nodes[1].latest_height + 50}") as r:
                assert r.status == 400  # not decided yet
            async with http.get(f"{url}/validators?height=0") as r:
                assert r.status == 400
        # The new validator connects, catches up and signs certificates.
        signed = await _signed_by(nodes[0], fifth_key, h + 2, 40)
        assert fifth.latest_height >= signed - 1
        assert fifth.core is not None and fifth.core.own_index == 4

        # Remove node3's validator with the README's `engine tx` (a blocking HTTP client: run
        # it off the loop the nodes live on).
        code = await asyncio.to_thread(cli_main, [
            "tx", "--rpc", fifth.rpc.url, "--key", str(net / config.ADMIN_KEY_FILE),
            f"val:{removed_key.hex()}=0"])
        assert code == 0
        await nodes[0].wait_for_height(fifth.latest_height, 20)
        h2 = 0
        for h in range(1, nodes[0].latest_height + 1):
            if removed_key not in _keys(nodes[0].validator_set_at(h + 2)):
                h2 = h  # the height the removal was committed at
                break
        assert h2 > signed
        await nodes[0].wait_for_height(h2 + 4, 30)
        after = nodes[0].validator_set_at(h2 + 2)
        assert removed_key not in _keys(after) and fifth_key in _keys(after)
        assert removed_key in _keys(nodes[0].validator_set_at(h2 + 1))
        # The peer set followed: node3 (no longer a validator) is dropped by the others.
        for _ in range(100):
            if all(nodes[3].node_key.public_key not in n.peers.connected()
                   for n in (nodes[0], nodes[1], nodes[2], fifth)):
                break
            await asyncio.sleep(0.05)
        assert nodes[3].node_key.public_key not in nodes[0].peers.connected()
        assert nodes[0].peers.faults["peer_removed"] >= 1
        # ... and the chain goes on without it, signed by the new set.
        top = await nodes[0].wait_for_height(h2 + 6, 30)
        info = nodes[0].block_info(top)
        assert info is not None
        assert max(info["certificate"]["signers"]) <= 3  # four validators now
        return h, h2

    run(main(), 120)
    # `engine store check` verifies every certificate against the set of its height.
    for home in [*homes[:3], fifth_home]:
        with Store(store_path(home.path), readonly=True) as store:
            report = check_store(store, verify_block=verifier_for_home(home.path, store))
            assert report.ok, report.summary()
            assert len(store.validator_sets()) == 2
