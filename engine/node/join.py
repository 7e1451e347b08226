"""A home for a node that joins a running network (``engine join``).

It copies the network's genesis and peer list (the source home's peers plus the source node
itself), and makes one new key of the chain's suite that is both its validator key and its node
key: a validator added after genesis is known to the other nodes by its validator key only, so
it authenticates with that key and they admit it once the set names it (engine/node/valset.py
``PeerFollower``). The key is drawn until it sorts below every peer's node key: the peer set
dials the keys above its own, so the new node dials everyone, and they need not know its
address. Until the set adds its key the node follows the chain as a full node (it syncs from
the peers that accept it: configured non-validator peers, or the validators once it is added).
"""
from __future__ import annotations

import json
import os

from engine.config import (
    GENESIS_FILE,
    Home,
    NodeConfig,
    PeerConfig,
    _prepare_dir,
    _write_home,
    load_home,
)

__all__ = ["init_joining_home"]

#: Key draws before giving up (each sorts below n peers with probability 1/(n+1)).
KEY_DRAWS_MAX = 100_000


def init_joining_home(home: str, from_home: str, *, p2p_port: int, rpc_port: int,
                      host: str = "127.0.0.1") -> Home:
    source = load_home(from_home)
    peers = [*source.config.peers,
             PeerConfig(source.node_key.public_key.hex(), source.config.p2p_host,
                        source.config.p2p_port, source.validator_key.public_key.hex())]
    lowest = min(bytes.fromhex(p.node_key) for p in peers)
    suite = source.genesis.suite
    for _ in range(KEY_DRAWS_MAX):
        key = suite.generate_key()  # of the chain's suite (Ed25519, or SM2 on an sm2-sm3 chain)
        if key.public_key < lowest:
            break
    else:
        raise ValueError("could not draw a key that sorts below every peer's node key")
    _prepare_dir(home)
    index = len(source.genesis.validators) + len(source.config.peers)
    config = NodeConfig(moniker=f"node{index}", app=source.config.app, p2p_host=host,
                        p2p_port=p2p_port, rpc_host=host, rpc_port=rpc_port, peers=peers,
                        app_settings=dict(source.config.app_settings))
    _write_home(home, config, source.genesis, key, key)
    with open(os.path.join(source.path, GENESIS_FILE)) as f, \
            open(os.path.join(home, GENESIS_FILE)) as g:
        if json.load(f) != json.load(g):
            raise ValueError("the copied genesis differs from the source's")
    return load_home(home)
