"""A node's home folder: TOML config, genesis file and key files.

Layout of ``HOME``::

    config.toml          node settings (p2p, rpc, consensus timeouts, mempool limits, app)
    genesis.json         chain id, validators (name, power, public key), app state
    node_key.json        the p2p identity (Ed25519 seed), mode 0600
    validator_key.json   the consensus signing key (Ed25519 seed), mode 0600
    store/               the LMDB store (engine.store.store_path)

Keys and hashes are lowercase hex everywhere. ``init_home`` and ``init_testnet`` write new homes;
``load_home`` reads one back and checks it, raising ValueError that names the file and field.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import tomli_w

from engine import crypto
from engine.limits import chain_id_bytes_max

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
NODE_KEY_FILE = "node_key.json"
VALIDATOR_KEY_FILE = "validator_key.json"
#: Written by `engine testnet` next to the node homes: the kvstore validator admin key.
ADMIN_KEY_FILE = "admin_key.json"
DATA_DIR = "store"  # engine.store.store_path(home)

__all__ = [
    "Genesis",
    "GenesisValidator",
    "Home",
    "NodeConfig",
    "init_home",
    "init_testnet",
    "load_home",
]


@dataclass
class PeerConfig:
    node_key: str  # hex
    host: str
    port: int
    #: The validator public key (hex) this peer runs, when it is a validator: the peer set
    #: drops it once it leaves the validator set. Empty: a non-validator peer, always kept.
    validator: str = ""


#: Intervals of NodeConfig that 0 turns off.
OPTIONAL_INTERVALS = ("create_empty_blocks_interval_ms",)


@dataclass
class NodeConfig:
    """Everything in config.toml. Timeouts in ms; limits named with their unit last."""

    moniker: str = "node"
    app: str = "kvstore"
    p2p_host: str = "127.0.0.1"
    p2p_port: int = 26656
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 26657
    peers: list[PeerConfig] = field(default_factory=list)
    timeout_propose_ms: int = 1000
    timeout_prevote_ms: int = 500
    timeout_precommit_ms: int = 500
    timeout_delta_ms: int = 250
    #: Pause after a commit before the next height starts, to batch transactions into blocks.
    block_interval_ms: int = 100
    create_empty_blocks: bool = True
    #: With create_empty_blocks = false: an empty block anyway after this long (0: never).
    create_empty_blocks_interval_ms: int = 0
    block_txs_max: int = 10_000
    block_bytes_max: int = 8 << 20
    mempool_txs_max: int = 100_000
    mempool_bytes_max: int = 256 << 20
    mempool_batch_txs_max: int = 4096
    mempool_batch_wait_ms: int = 2
    verify_threads: int = 0  # 0: every core
    #: The ``[app_settings]`` table: handed to the application as ``app.settings``.
    app_settings: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not isinstance(self.app_settings, dict):
            raise ValueError("app_settings must be a table")  # noqa: TRY004 - a config error
        for name in ("p2p_port", "rpc_port"):
            port = getattr(self, name)
            if type(port) is not int or not 0 <= port <= 65535:
                raise ValueError(f"{name} must be a port number, not {port!r}")
        for name, value in asdict(self).items():
            if not name.endswith(("_ms", "_max")):
                continue
            if name in OPTIONAL_INTERVALS:  # 0 turns it off
                if type(value) is not int or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer (0: off), "
                                     f"not {value!r}")
            elif type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class GenesisValidator:
    name: str
    power: int
    public_key: bytes


@dataclass
class Genesis:
    chain_id: str
    validators: list[GenesisValidator]
    app_state: dict[str, Any] = field(default_factory=dict)
    genesis_time_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "genesis_time_ms": self.genesis_time_ms,
                "validators": [{"name": v.name, "power": v.power,
                                "public_key": v.public_key.hex()} for v in self.validators],
                "app_state": self.app_state}

    def hash(self) -> bytes:
        """BLAKE3 of the canonical JSON (sorted keys, no spaces) of the whole genesis: two
        nodes of one network must hold the same (compared in the p2p handshake)."""
        from engine.hashing import blake3

        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return blake3(b"engine/genesis/v1" + text.encode())

    @classmethod
    def from_json(cls, obj: Any, where: str = GENESIS_FILE) -> Genesis:
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: must hold a JSON object")  # noqa: TRY004 - file content
        chain_id = check_chain_id(obj.get("chain_id"), f"{where}: chain_id")
        vals = obj.get("validators")
        if not isinstance(vals, list) or not vals:
            raise ValueError(f"{where}: validators must be a non-empty list")
        out = []
        for i, v in enumerate(vals):
            try:
                pk = bytes.fromhex(v["public_key"])
                power = v["power"]
                name = str(v.get("name", f"validator{i}"))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{where}: validators[{i}] is malformed ({e})") from e
            if len(pk) != 32 or type(power) is not int or power < 1:
                raise ValueError(f"{where}: validators[{i}] needs a 32-byte public_key and "
                                 "a positive integer power")
            out.append(GenesisValidator(name, power, pk))
        app_state = obj.get("app_state", {})
        if not isinstance(app_state, dict):
            raise ValueError(f"{where}: app_state must be an object")  # noqa: TRY004
        return cls(chain_id, out, app_state, int(obj.get("genesis_time_ms", 0)))


def check_chain_id(chain_id: Any, what: str = "chain_id") -> str:
    if not isinstance(chain_id, str) or not chain_id:
        raise ValueError(f"{what} must be a non-empty string")
    if len(chain_id.encode()) > chain_id_bytes_max or not chain_id.isprintable():
        raise ValueError(f"{what} must be printable and at most {chain_id_bytes_max} bytes")
    return chain_id


@dataclass
class Home:
    """A loaded node home."""

    path: str
    config: NodeConfig
    genesis: Genesis
    node_key: crypto.SigningKey
    validator_key: crypto.SigningKey

    @property
    def data_dir(self) -> str:
        return os.path.join(self.path, DATA_DIR)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.config.rpc_host}:{self.config.rpc_port}"


def _write_private(path: str, text: str) -> None:
    """Create the file with mode 0600 from the start (no window where others may read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _write_key(path: str, key: crypto.SigningKey) -> None:
    _write_private(path, json.dumps({"type": "ed25519", "seed": key.seed.hex(),
                                     "public_key": key.public_key.hex()}, indent=2) + "\n")


def _read_key(path: str) -> crypto.SigningKey:
    try:
        with open(path) as f:
            obj = json.load(f)
        key = crypto.SigningKey.from_seed(bytes.fromhex(obj["seed"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable key file ({e})") from e
    if obj.get("public_key") not in (None, key.public_key.hex()):
        raise ValueError(f"{path}: public_key does not match the seed")
    return key


def save_config(home: str, config: NodeConfig) -> None:
    obj = asdict(config)
    if not obj["app_settings"]:
        del obj["app_settings"]  # an empty table would swallow settings appended by hand
    with open(os.path.join(home, CONFIG_FILE), "wb") as f:
        tomli_w.dump(obj, f)


def load_config(home: str) -> NodeConfig:
    path = os.path.join(home, CONFIG_FILE)
    try:
        with open(path, "rb") as f:
            obj = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read config ({e})") from e
    known = NodeConfig.__dataclass_fields__
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}")
    try:
        peers = [PeerConfig(**p) for p in obj.pop("peers", [])]
        config = NodeConfig(**obj, peers=peers)
    except TypeError as e:
        raise ValueError(f"{path}: malformed ({e})") from e
    try:
        config.validate()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return config


def load_home(home: str) -> Home:
    if not os.path.isdir(home):
        raise ValueError(f"home {home!r} is not a directory (run `engine init --home {home}`)")
    config = load_config(home)
    gpath = os.path.join(home, GENESIS_FILE)
    try:
        with open(gpath) as f:
            genesis = Genesis.from_json(json.load(f), gpath)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{gpath}: cannot read genesis ({e})") from e
    return Home(os.path.abspath(home), config, genesis,
                _read_key(os.path.join(home, NODE_KEY_FILE)),
                _read_key(os.path.join(home, VALIDATOR_KEY_FILE)))


def _prepare_dir(home: str) -> None:
    if os.path.exists(os.path.join(home, CONFIG_FILE)):
        raise ValueError(f"home {home!r} is already initialised")
    os.makedirs(os.path.join(home, DATA_DIR), exist_ok=True)


def _write_home(home: str, config: NodeConfig, genesis: Genesis, node_key: crypto.SigningKey,
                validator_key: crypto.SigningKey) -> None:
    config.validate()
    save_config(home, config)
    with open(os.path.join(home, GENESIS_FILE), "w") as f:
        json.dump(genesis.to_json(), f, indent=2)
        f.write("\n")
    _write_key(os.path.join(home, NODE_KEY_FILE), node_key)
    _write_key(os.path.join(home, VALIDATOR_KEY_FILE), validator_key)


def _app_state(app_state: dict[str, Any] | None) -> dict[str, Any]:
    if app_state is None:
        return {}
    if not isinstance(app_state, dict):
        raise TypeError(f"app_state must be a dict, not {type(app_state).__name__}")
    return dict(app_state)


def init_home(home: str, chain_id: str | None = None, *,
              app_state: dict[str, Any] | None = None, **settings: Any) -> Home:
    """A single validator that is its own network (``app_state``: the genesis app state)."""
    chain_id = check_chain_id(chain_id or f"engine-{os.urandom(3).hex()}")
    _prepare_dir(home)
    node_key, val_key = crypto.SigningKey.generate(), crypto.SigningKey.generate()
    genesis = Genesis(chain_id, [GenesisValidator("node0", 10, val_key.public_key)],
                      _app_state(app_state), int(time.time() * 1000))
    _write_home(home, NodeConfig(moniker="node0", **settings), genesis, node_key, val_key)
    return load_home(home)


def init_testnet(output: str, validators: int, *, base_port: int = 26656,
                 chain_id: str | None = None, hosts: list[str] | None = None,
                 app_state: dict[str, Any] | None = None, **settings: Any) -> list[Home]:
    """``validators`` homes ``output/node0``… sharing one genesis, peers wired to each other.

    Node i listens for p2p on ``base_port + 2 i`` and serves RPC on ``base_port + 2 i + 1``.
    """
    if type(validators) is not int or not 1 <= validators <= 1000:
        raise ValueError(f"validators must be an integer in 1..1000, not {validators!r}")
    if type(base_port) is not int or not 1024 <= base_port <= 65535 - 2 * validators:
        raise ValueError(f"base_port {base_port!r} leaves no room for {validators} nodes")
    hosts = hosts or ["127.0.0.1"] * validators
    if len(hosts) != validators:
        raise ValueError(f"hosts lists {len(hosts)} hosts for {validators} validators")
    chain_id = check_chain_id(chain_id or f"testnet-{os.urandom(3).hex()}")
    homes = [os.path.join(output, f"node{i}") for i in range(validators)]
    for h in homes:
        _prepare_dir(h)
    node_keys = [crypto.SigningKey.generate() for _ in homes]
    val_keys = [crypto.SigningKey.generate() for _ in homes]
    state = _app_state(app_state)
    if settings.get("app") in (None, "", "kvstore"):
        # The kvstore's validator admin: its `val:<key>=<power>` transactions change the set.
        admin = crypto.SigningKey.generate()
        os.makedirs(output, exist_ok=True)
        _write_key(os.path.join(output, ADMIN_KEY_FILE), admin)
        state["validator_admins"] = [*state.get("validator_admins", []),
                                     admin.public_key.hex()]
    genesis = Genesis(chain_id, [GenesisValidator(f"node{i}", 10, k.public_key)
                                 for i, k in enumerate(val_keys)], state,
                      int(time.time() * 1000))
    for i, h in enumerate(homes):
        peers = [PeerConfig(node_keys[j].public_key.hex(), hosts[j], base_port + 2 * j,
                            val_keys[j].public_key.hex())
                 for j in range(validators) if j != i]
        bind = "127.0.0.1" if hosts[i] in ("127.0.0.1", "localhost") else "0.0.0.0"
        config = NodeConfig(moniker=f"node{i}", p2p_host=bind, p2p_port=base_port + 2 * i,
                            rpc_port=base_port + 2 * i + 1, peers=peers, **settings)
        _write_home(h, config, genesis, node_keys[i], val_keys[i])
    return [load_home(h) for h in homes]
