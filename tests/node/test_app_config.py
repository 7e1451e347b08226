"""The application interface, the kvstore app, node homes and `engine init/testnet`."""
from __future__ import annotations

import json
import os
import stat
from types import SimpleNamespace

import pytest

from engine import app as app_mod
from engine import cli, config


def tx(payload: bytes):
    return SimpleNamespace(payload=payload)


def test_kvstore_check_finalize_commit_query():
    kv = app_mod.KVStoreApp()
    init = kv.init_chain("c", {"seed": "1"})
    # Genesis state is written at height 0 (the node saves it in one store transaction).
    assert init.app_hash == kv.last_app_hash and init.writes == {b"seed": b"1"}
    kv.commit()
    assert kv.check_tx(tx(b"a=1")).ok
    for bad in (b"noequals", b"=v", b"k" * 300 + b"=v"):
        assert not kv.check_tx(tx(bad)).ok
    before = kv.last_app_hash
    res = kv.finalize_block(1, [tx(b"a=1"), tx(b"bad"), tx(b"b=2"), tx(b"a=3")])
    assert [r.code for r in res.tx_results] == [0, 1, 0, 0]
    assert res.writes == {b"a": b"3", b"b": b"2"}
    assert res.app_hash != before and len(res.app_hash) == 32
    # Until commit() queries answer from the committed state (a block may be executed before
    # it is decided: docs/application.md, "Optimistic execution").
    assert kv.query("/key", b"a").code == 1 and kv.query("/key", b"seed").value == b"1"
    kv.commit()
    assert kv.query("/key", b"a").value == b"3"
    assert kv.query("/key", b"b").value == b"2"
    assert kv.query("/key", b"seed").value == b"1"
    assert kv.finalize_block(2, [tx(b"c=4")]).writes == {b"c": b"4"}
    assert kv.query("/key", b"zz").code == 1
    assert kv.query("/nope", b"a").code == 1


def test_kvstore_app_hash_is_deterministic_and_order_sensitive():
    def run(blocks):
        kv = app_mod.KVStoreApp()
        kv.init_chain("c", {})
        hashes = []
        for h, txs in enumerate(blocks, 1):
            hashes.append(kv.finalize_block(h, [tx(p) for p in txs]).app_hash)
            kv.commit()
        return hashes
    a = run([[b"x=1", b"y=2"], [b"x=3"]])
    assert a == run([[b"x=1", b"y=2"], [b"x=3"]])
    assert a[-1] != run([[b"x=3"], [b"x=1", b"y=2"]])[-1]
    assert run([[b"x=1", b"x=2"]]) != run([[b"x=2", b"x=1"]])


def test_load_app():
    assert isinstance(app_mod.load_app(None), app_mod.KVStoreApp)
    assert isinstance(app_mod.load_app("engine.app:KVStoreApp"), app_mod.KVStoreApp)
    with pytest.raises(ValueError, match="cannot be loaded"):
        app_mod.load_app("engine.app:Missing")
    with pytest.raises(ValueError, match="package.module:ClassName"):
        app_mod.load_app("engine.app")
    with pytest.raises(TypeError, match="Application"):
        app_mod.load_app("engine.config:NodeConfig")


def test_init_home_keys_are_private_and_reload(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "my-chain")
    for name in (config.NODE_KEY_FILE, config.VALIDATOR_KEY_FILE):
        mode = stat.S_IMODE(os.stat(os.path.join(home.path, name)).st_mode)
        assert mode == 0o600, oct(mode)
    again = config.load_home(home.path)
    assert again.genesis.chain_id == "my-chain"
    assert again.validator_key.public_key == home.genesis.validators[0].public_key
    with pytest.raises(ValueError, match="already initialised"):
        config.init_home(home.path)


def test_bad_homes_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        config.load_home(str(tmp_path / "missing"))
    home = config.init_home(str(tmp_path / "n"))
    cfg = os.path.join(home.path, config.CONFIG_FILE)
    with open(cfg, "a") as f:
        f.write("surprise = 1\n")
    with pytest.raises(ValueError, match="unknown settings"):
        config.load_home(home.path)
    with pytest.raises(ValueError, match="chain_id"):
        config.init_home(str(tmp_path / "m"), "x" * 51)
    with pytest.raises(ValueError, match="validators"):
        config.Genesis.from_json({"chain_id": "c", "validators": []})


def test_cli_init_and_testnet(tmp_path, capsys):
    assert cli.main(["init", "--home", str(tmp_path / "solo"), "--chain-id", "solo"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chain_id"] == "solo"
    assert cli.main(["testnet", "--validators", "3", "--output", str(tmp_path / "net"),
                     "--base-port", "31000"]) == 0
    text = capsys.readouterr().out
    assert "31001" in text and "node2" in text
    homes = [config.load_home(str(tmp_path / "net" / f"node{i}")) for i in range(3)]
    assert len({h.genesis.chain_id for h in homes}) == 1
    assert [h.config.p2p_port for h in homes] == [31000, 31002, 31004]
    node_keys = {h.node_key.public_key.hex() for h in homes}
    for h in homes:
        assert {p.node_key for p in h.config.peers} == node_keys - {h.node_key.public_key.hex()}
    assert cli.main(["testnet", "--validators", "0", "--output", str(tmp_path / "x")]) == 2
