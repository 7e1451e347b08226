"""Every validation rule of engine/config.py, each on both sides of its boundary: the value just
inside is accepted and the one just outside raises ValueError naming the file and the field.
(test_app_config.py covers loading, key file modes and the CLI.)"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from engine import config, crypto

# ---- config.toml: NodeConfig.validate ---------------------------------------------------------


@pytest.mark.parametrize("name", ["p2p_port", "rpc_port"])
def test_ports_are_0_to_65535(name):
    for ok in (0, 65535):
        config.NodeConfig(**{name: ok}).validate()
    for bad in (-1, 65536, "26656", True, 1.0):
        with pytest.raises(ValueError, match=f"^{name} must be a port number"):
            config.NodeConfig(**{name: bad}).validate()


LIMITS = [f.name for f in dataclasses.fields(config.NodeConfig)
          if f.name.endswith(("_ms", "_max")) and f.name not in config.OPTIONAL_INTERVALS]


def test_every_limit_and_timeout_is_named_by_the_rule():
    assert len(LIMITS) == 11 and "block_interval_ms" in LIMITS and "mempool_bytes_max" in LIMITS
    assert config.OPTIONAL_INTERVALS == ("create_empty_blocks_interval_ms",)


@pytest.mark.parametrize("name", config.OPTIONAL_INTERVALS)
def test_optional_intervals_are_off_at_zero_and_never_negative(name):
    for ok in (0, 1, 5000):
        config.NodeConfig(**{name: ok}).validate()
    for bad in (-1, 1.5, True, "100"):
        with pytest.raises(ValueError, match=f"^{name} must be a non-negative integer"):
            config.NodeConfig(**{name: bad}).validate()


@pytest.mark.parametrize("name", LIMITS)
def test_limits_and_timeouts_are_positive_integers(name):
    config.NodeConfig(**{name: 1}).validate()
    for bad in (0, -5, 1.5, True, "100"):
        with pytest.raises(ValueError, match=f"^{name} must be a positive integer"):
            config.NodeConfig(**{name: bad}).validate()


def test_a_bad_value_in_config_toml_names_the_file(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "c")
    path = os.path.join(home.path, config.CONFIG_FILE)
    text = Path(path).read_text()
    with open(path, "w") as f:
        f.write(text.replace("block_txs_max = 10000", "block_txs_max = 0"))
    with pytest.raises(ValueError, match=f"^{path}: block_txs_max must be a positive integer"):
        config.load_home(home.path)


def test_config_toml_unreadable_unknown_or_malformed(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "c")
    path = os.path.join(home.path, config.CONFIG_FILE)
    good = Path(path).read_text()
    cases = [("moniker = [", "cannot read config"),
             (good + "surprise = 1\n", r"unknown settings \['surprise'\]"),
             (good.replace("peers = []", "peers = [{node_key = 'ab'}]"), "malformed")]
    assert "peers = []" in good  # a peer without host and port is malformed
    for text, message in cases:
        with open(path, "w") as f:
            f.write(text)
        with pytest.raises(ValueError, match=f"^{path}: {message}"):
            config.load_home(home.path)
    os.remove(path)
    with pytest.raises(ValueError, match=f"^{path}: cannot read config"):
        config.load_home(home.path)


# ---- genesis.json: Genesis.from_json and check_chain_id ---------------------------------------

PK = crypto.SigningKey.generate().public_key.hex()


def genesis(**fields):
    obj = {"chain_id": "c", "validators": [{"name": "v", "power": 1, "public_key": PK}]}
    obj.update(fields)
    return obj


def test_genesis_accepts_the_smallest_valid_file():
    g = config.Genesis.from_json(genesis(), "g.json")
    assert g.chain_id == "c" and g.validators[0].power == 1 and g.app_state == {}


@pytest.mark.parametrize("obj, message", [
    ([], "must hold a JSON object"),
    (genesis(validators=[]), "validators must be a non-empty list"),
    (genesis(validators={"v": 1}), "validators must be a non-empty list"),
    (genesis(validators=[{"power": 1}]), r"validators\[0\] is malformed"),
    (genesis(validators=[{"power": 1, "public_key": "zz"}]), r"validators\[0\] is malformed"),
    (genesis(validators=[{"power": 1, "public_key": PK[:-2]}]),
     r"validators\[0\] needs a 32-byte public_key"),
    (genesis(validators=[{"power": 0, "public_key": PK}]), r"validators\[0\] needs .* power"),
    (genesis(validators=[{"power": "1", "public_key": PK}]), r"validators\[0\] needs .* power"),
    (genesis(validators=[{"power": True, "public_key": PK}]), r"validators\[0\] needs .* power"),
    (genesis(app_state=[]), "app_state must be an object"),
    (genesis(chain_id=""), "chain_id must be a non-empty string"),
    (genesis(chain_id=7), "chain_id must be a non-empty string"),
])
def test_genesis_rules(obj, message):
    with pytest.raises(ValueError, match=f"^g.json: {message}"):
        config.Genesis.from_json(obj, "g.json")


def test_chain_id_is_printable_and_at_most_50_bytes():
    assert config.check_chain_id("x" * 50) == "x" * 50
    for bad in ("x" * 51, "é" * 26, "a\nb", "tab\there"):  # "é" is 2 bytes: 52
        with pytest.raises(ValueError, match="printable and at most 50 bytes"):
            config.check_chain_id(bad)


def test_unreadable_genesis_names_the_file(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "c")
    path = os.path.join(home.path, config.GENESIS_FILE)
    with open(path, "w") as f:
        f.write("{")
    with pytest.raises(ValueError, match=f"^{path}: cannot read genesis"):
        config.load_home(home.path)


# ---- key files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [config.NODE_KEY_FILE, config.VALIDATOR_KEY_FILE])
def test_key_files_must_hold_a_seed_matching_their_public_key(tmp_path, name):
    home = config.init_home(str(tmp_path / "n"), "c")
    path = os.path.join(home.path, name)
    obj = json.loads(Path(path).read_text())
    other = crypto.SigningKey.generate().public_key.hex()
    for text, message in [("not json", "not a readable key file"),
                          (json.dumps({"public_key": obj["public_key"]}), "not a readable key"),
                          (json.dumps(dict(obj, seed="00" * 31)), "not a readable key file"),
                          (json.dumps(dict(obj, public_key=other)),
                           "public_key does not match the seed")]:
        with open(path, "w") as f:
            f.write(text)
        with pytest.raises(ValueError, match=f"^{path}: {message}"):
            config.load_home(home.path)
    with open(path, "w") as f:  # without public_key the seed alone is accepted
        json.dump({"seed": obj["seed"]}, f)
    loaded = config.load_home(home.path)
    key = loaded.node_key if name == config.NODE_KEY_FILE else loaded.validator_key
    assert key.public_key.hex() == obj["public_key"]


# ---- homes and testnets ------------------------------------------------------------------------

def test_homes_must_exist_and_are_never_initialised_twice(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        config.load_home(str(tmp_path / "missing"))
    config.init_home(str(tmp_path / "n"), "c")
    with pytest.raises(ValueError, match="already initialised"):
        config.init_home(str(tmp_path / "n"), "c")
    config.init_home(str(tmp_path / "net" / "node1"), "c")
    with pytest.raises(ValueError, match="node1' is already initialised"):
        config.init_testnet(str(tmp_path / "net"), 2, base_port=30000, chain_id="c")


def test_testnet_sizes_ports_and_hosts(tmp_path):
    assert len(config.init_testnet(str(tmp_path / "a"), 1, base_port=1024, chain_id="c")) == 1
    for bad in (0, 1001, True, 2.0):
        with pytest.raises(ValueError, match="validators must be an integer in 1..1000"):
            config.init_testnet(str(tmp_path / "b"), bad, chain_id="c")
    # Node i uses base + 2i and base + 2i + 1: 3 nodes need base <= 65535 - 6.
    assert len(config.init_testnet(str(tmp_path / "c"), 3, base_port=65529, chain_id="c")) == 3
    for base in (1023, 65530, "30000"):
        with pytest.raises(ValueError, match="leaves no room for 3 nodes"):
            config.init_testnet(str(tmp_path / "d"), 3, base_port=base, chain_id="c")
    with pytest.raises(ValueError, match="hosts lists 2 hosts for 3 validators"):
        config.init_testnet(str(tmp_path / "e"), 3, base_port=30000, chain_id="c",
                            hosts=["h0", "h1"])
    assert not os.path.exists(tmp_path / "b") and not os.path.exists(tmp_path / "e")
