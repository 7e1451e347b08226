"""engine/node/join.py (``engine join``) without a network: what the joining home holds (the
network's genesis, every peer plus the source node, one key of the chain's suite that sorts
below every peer's node key), its config, and the refusals."""
from __future__ import annotations

import json
import os

import pytest

from engine import config
from engine.node import join
from engine.suite import ED25519_BLAKE3, SM2_SM3, Suite


@pytest.mark.parametrize("crypto", [ED25519_BLAKE3, SM2_SM3])
def test_a_joining_home_copies_the_network_and_draws_a_key_below_every_peer(tmp_path, crypto):
    homes = config.init_testnet(str(tmp_path / "net"), 3, base_port=27000, chain_id="join-c",
                                crypto=crypto, app_settings={"fee": 5})
    source = homes[1]
    joined = join.init_joining_home(str(tmp_path / "new"), source.path, p2p_port=27100,
                                    rpc_port=27101, host="127.0.0.2")
    assert joined.genesis.to_json() == source.genesis.to_json()
    with open(os.path.join(source.path, config.GENESIS_FILE)) as f, \
            open(os.path.join(joined.path, config.GENESIS_FILE)) as g:
        assert json.load(f) == json.load(g)
    # The source's peers plus the source itself, with the validator key it runs.
    got = [(p.node_key, p.host, p.port, p.validator) for p in joined.config.peers]
    want = [(p.node_key, p.host, p.port, p.validator) for p in source.config.peers] + [
        (source.node_key.public_key.hex(), source.config.p2p_host, source.config.p2p_port,
         source.validator_key.public_key.hex())]
    assert got == want and len(got) == 3
    # One key of the chain's suite, node and validator key at once, below every peer's.
    key = joined.validator_key.public_key
    assert joined.node_key.public_key == key
    assert len(key) == (32 if crypto == ED25519_BLAKE3 else 64)
    assert all(key < bytes.fromhex(p.node_key) for p in joined.config.peers)
    # Index after the genesis validators and the source's peers; its own address and ports.
    c = joined.config
    assert c.moniker == "node5"
    assert (c.p2p_host, c.p2p_port, c.rpc_host, c.rpc_port) == ("127.0.0.2", 27100,
                                                                 "127.0.0.2", 27101)
    assert c.app == source.config.app and c.app_settings == {"fee": 5}
    c.app_settings["fee"] = 6  # a copy, not the source's table
    assert source.config.app_settings == {"fee": 5}


def test_a_home_that_exists_or_a_key_that_cannot_sort_low_enough_is_refused(tmp_path,
                                                                          monkeypatch):
    homes = config.init_testnet(str(tmp_path / "net"), 2, base_port=27200, chain_id="join-r")
    join.init_joining_home(str(tmp_path / "new"), homes[0].path, p2p_port=27300, rpc_port=27301)
    with pytest.raises(ValueError, match="already initialised"):
        join.init_joining_home(str(tmp_path / "new"), homes[0].path, p2p_port=27300,
                               rpc_port=27301)
    draws = []

    class High:
        public_key = b"\xff" * 32  # sorts above every peer's node key

    def high_key(suite):
        draws.append(suite.name)
        return High()

    monkeypatch.setattr(join, "KEY_DRAWS_MAX", 7)
    monkeypatch.setattr(Suite, "generate_key", high_key)
    with pytest.raises(ValueError, match="could not draw a key that sorts below"):
        join.init_joining_home(str(tmp_path / "other"), homes[0].path, p2p_port=27302,
                               rpc_port=27303)
    assert draws == [ED25519_BLAKE3] * 7
    assert not os.path.exists(str(tmp_path / "other"))  # nothing written before the key


def test_a_key_equal_to_a_peer_key_is_drawn_again(tmp_path, monkeypatch):
    homes = config.init_testnet(str(tmp_path / "net"), 2, base_port=27400, chain_id="join-e")
    lowest = min(bytes.fromhex(p.node_key) for p in homes[0].config.peers
                 + [config.PeerConfig(homes[0].node_key.public_key.hex(), "", 0, "")])
    real = Suite.generate_key
    draws = []

    def equal_then_real(suite):
        draws.append(1)
        if len(draws) == 1:
            class Equal:
                public_key = lowest  # sorts below no peer: equal to one
            return Equal()
        key = real(suite)
        while key.public_key >= lowest:
            key = real(suite)
        return key

    monkeypatch.setattr(Suite, "generate_key", equal_then_real)
    joined = join.init_joining_home(str(tmp_path / "new"), homes[0].path, p2p_port=27500,
                                    rpc_port=27501)
    assert len(draws) == 2 and joined.node_key.public_key < lowest


def test_a_genesis_that_was_not_copied_faithfully_is_refused(tmp_path, monkeypatch):
    homes = config.init_testnet(str(tmp_path / "net"), 2, base_port=27600, chain_id="join-g")
    write_home = join._write_home

    def altered(home, conf, genesis, node_key, validator_key):
        write_home(home, conf, genesis, node_key, validator_key)
        path = os.path.join(home, config.GENESIS_FILE)
        with open(path) as f:
            obj = json.load(f)
        obj["chain_id"] = "another-chain"
        with open(path, "w") as f:
            json.dump(obj, f)

    monkeypatch.setattr(join, "_write_home", altered)
    with pytest.raises(ValueError, match="the copied genesis differs from the source's"):
        join.init_joining_home(str(tmp_path / "new"), homes[0].path, p2p_port=27700,
                               rpc_port=27701)
