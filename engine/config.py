"""A node's home folder: TOML config, genesis file and key files.

Layout of ``HOME``::

    config.toml          node settings (p2p, rpc, consensus timeouts, mempool limits, app)
    genesis.json         chain id, crypto suite, validators (name, power, public key), app state
    node_key.json        the p2p identity (Ed25519 seed, or SM2 private key), mode 0600
    validator_key.json   the consensus signing key (likewise), mode 0600

``genesis.json``'s ``crypto`` names the chain's suite (engine/suite.py): absent means
``ed25519-blake3``; ``sm2-sm3`` makes every key, signature and chain hash SM2/SM3.
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

from engine.limits import chain_id_bytes_max
from engine.suite import Signer, Suite, get_suite, key_file_text, read_key_file

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
    #: Proposals carry transaction ids; validators rebuild blocks from their mempools and fetch
    #: only what they lack from the proposer (engine/node/compact.py). false: whole blocks.
    compact_proposals: bool = True
    #: A validator executes the block it precommitted for while the precommits come, when the
    #: application allows it (``Application.optimistic_execution``); the decision then waits
    #: for the block's save alone (engine/node/commit.py). false: execute after the decision.
    optimistic_execution: bool = True
    #: Trace one transaction in 16 through this node: each step's time in HOME/tx-trace.log
    #: (engine/node/txtrace.py; `engine bench tps --trace-txs`). A diagnostic: off by default.
    trace_txs: bool = False
    block_txs_max: int = 10_000
    block_bytes_max: int = 8 << 20
    mempool_txs_max: int = 100_000
    mempool_bytes_max: int = 256 << 20
    mempool_batch_txs_max: int = 4096
    mempool_batch_wait_ms: int = 2
    verify_threads: int = 0  # 0: every core
    #: Keep at least this many recent blocks, pruning older ones (0: keep every block). The
    #: engine never keeps fewer than ``engine.limits.retain_blocks_min`` (evidence, light
    #: clients) nor prunes a block a kept snapshot still needs (docs/state-sync.md).
    retain_blocks: int = 0
    #: Take an application snapshot every this many heights (0: no snapshots) ...
    snapshot_interval: int = 0
    #: ... and keep this many of the newest.
    snapshot_keep: int = 2
    #: Join by state sync (before the first start only): fetch a snapshot from peers instead of
    #: replaying every block, trusting the block ``state_sync_trust_hash`` (hex) at
    #: ``state_sync_trust_height``.
    state_sync: bool = False
    state_sync_trust_height: int = 0
    state_sync_trust_hash: str = ""
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
        self._validate_sync()

    def _validate_sync(self) -> None:
        """The pruning, snapshot and state sync keys (docs/state-sync.md)."""
        for name in ("retain_blocks", "snapshot_interval", "state_sync_trust_height"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        if type(self.snapshot_keep) is not int or self.snapshot_keep < 1:
            raise ValueError(f"snapshot_keep must be a positive integer, not "
                             f"{self.snapshot_keep!r}")
        if type(self.optimistic_execution) is not bool:
            raise ValueError("optimistic_execution must be true or false, not "
                             f"{self.optimistic_execution!r}")
        if type(self.trace_txs) is not bool:
            raise ValueError(f"trace_txs must be true or false, not {self.trace_txs!r}")
        if type(self.state_sync) is not bool:
            raise ValueError(f"state_sync must be true or false, not {self.state_sync!r}")
        trust = self.state_sync_trust_hash
        if not isinstance(trust, str) or (trust and (len(trust) != 64 or any(
                c not in "0123456789abcdef" for c in trust))):
            raise ValueError("state_sync_trust_hash must be 64 lowercase hex characters "
                             f"(a block hash), not {trust!r}")
        if self.state_sync and (not trust or self.state_sync_trust_height < 1):
            raise ValueError("state_sync = true needs state_sync_trust_height >= 1 and "
                             "state_sync_trust_hash (a block hash the operator trusts)")


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
    #: The crypto suite (engine/suite.py); fixed for the life of the chain.
    crypto: str = "ed25519-blake3"

    @property
    def suite(self) -> Suite:
        return get_suite(self.crypto)

    def to_json(self) -> dict[str, Any]:
        obj = {"chain_id": self.chain_id, "genesis_time_ms": self.genesis_time_ms,
               "validators": [{"name": v.name, "power": v.power,
                               "public_key": v.public_key.hex()} for v in self.validators],
               "app_state": self.app_state}
        if not self.suite.is_default:  # default genesis files (and hashes) stay as they were
            obj["crypto"] = self.crypto
        return obj

    def hash(self) -> bytes:
        """The suite's hash (BLAKE3 or SM3) of the canonical JSON (sorted keys, no spaces) of
        the whole genesis: two nodes of one network must hold the same (compared in the p2p
        handshake)."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return self.suite.hash(b"engine/genesis/v1" + text.encode())

    @classmethod
    def from_json(cls, obj: Any, where: str = GENESIS_FILE) -> Genesis:
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: must hold a JSON object")  # noqa: TRY004 - file content
        chain_id = check_chain_id(obj.get("chain_id"), f"{where}: chain_id")
        crypto = obj.get("crypto", "ed25519-blake3")
        try:
            suite = get_suite(crypto)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
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
            if len(pk) != suite.public_key_bytes and len(pk) in (32, 64):
                # the other suite's key size: say so (raises SuiteMismatch, a ValueError)
                suite.check_public_key(pk, f"{where}: validators[{i}].public_key")
            if len(pk) != suite.public_key_bytes or type(power) is not int or power < 1:
                raise ValueError(f"{where}: validators[{i}] needs a "
                                 f"{suite.public_key_bytes}-byte public_key and a positive "
                                 "integer power")
            out.append(GenesisValidator(name, power, pk))
        app_state = obj.get("app_state", {})
        if not isinstance(app_state, dict):
            raise ValueError(f"{where}: app_state must be an object")  # noqa: TRY004
        return cls(chain_id, out, app_state, int(obj.get("genesis_time_ms", 0)), suite.name)


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
    node_key: Signer
    validator_key: Signer

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


def _write_key(path: str, key: Signer, suite: Suite) -> None:
    _write_private(path, key_file_text(key, suite))


def _read_key(path: str, suite: Suite | None = None) -> Signer:
    return read_key_file(path, get_suite(suite))


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
                _read_key(os.path.join(home, NODE_KEY_FILE), genesis.suite),
                _read_key(os.path.join(home, VALIDATOR_KEY_FILE), genesis.suite))


def _prepare_dir(home: str) -> None:
    if os.path.exists(os.path.join(home, CONFIG_FILE)):
        raise ValueError(f"home {home!r} is already initialised")
    os.makedirs(os.path.join(home, DATA_DIR), exist_ok=True)


def _write_home(home: str, config: NodeConfig, genesis: Genesis, node_key: Signer,
                validator_key: Signer) -> None:
    config.validate()
    save_config(home, config)
    with open(os.path.join(home, GENESIS_FILE), "w") as f:
        json.dump(genesis.to_json(), f, indent=2)
        f.write("\n")
    _write_key(os.path.join(home, NODE_KEY_FILE), node_key, genesis.suite)
    _write_key(os.path.join(home, VALIDATOR_KEY_FILE), validator_key, genesis.suite)


def _app_state(app_state: dict[str, Any] | None) -> dict[str, Any]:
    if app_state is None:
        return {}
    if not isinstance(app_state, dict):
        raise TypeError(f"app_state must be a dict, not {type(app_state).__name__}")
    return dict(app_state)


def init_home(home: str, chain_id: str | None = None, *,
              app_state: dict[str, Any] | None = None, crypto: str | None = None,
              **settings: Any) -> Home:
    """A single validator that is its own network (``app_state``: the genesis app state;
    ``crypto``: the suite, ``ed25519-blake3`` by default or ``sm2-sm3``)."""
    suite = get_suite(crypto)
    chain_id = check_chain_id(chain_id or f"engine-{os.urandom(3).hex()}")
    _prepare_dir(home)
    node_key, val_key = suite.generate_key(), suite.generate_key()
    genesis = Genesis(chain_id, [GenesisValidator("node0", 10, val_key.public_key)],
                      _app_state(app_state), int(time.time() * 1000), suite.name)
    _write_home(home, NodeConfig(moniker="node0", **settings), genesis, node_key, val_key)
    return load_home(home)


def init_testnet(output: str, validators: int, *, base_port: int = 26656,
                 chain_id: str | None = None, hosts: list[str] | None = None,
                 app_state: dict[str, Any] | None = None, crypto: str | None = None,
                 full_nodes: int = 0, **settings: Any) -> list[Home]:
    """``validators`` homes ``output/node0``… sharing one genesis, peers wired to each other,
    then ``full_nodes`` non-validator homes (``node<validators>``…) that follow the chain
    (their validator keys are not in the genesis; every node lists every other as a peer).

    Node i listens for p2p on ``base_port + 2 i`` and serves RPC on ``base_port + 2 i + 1``.
    ``crypto`` names the chain's suite (``ed25519-blake3`` by default, or ``sm2-sm3``).
    ``hosts`` lists one host per node (validators first).
    """
    suite = get_suite(crypto)
    if type(validators) is not int or not 1 <= validators <= 1000:
        raise ValueError(f"validators must be an integer in 1..1000, not {validators!r}")
    if type(full_nodes) is not int or not 0 <= full_nodes <= 1000:
        raise ValueError(f"full_nodes must be an integer in 0..1000, not {full_nodes!r}")
    n = validators + full_nodes
    if type(base_port) is not int or not 1024 <= base_port <= 65535 - 2 * n:
        raise ValueError(f"base_port {base_port!r} leaves no room for {n} nodes")
    hosts = hosts or ["127.0.0.1"] * n
    if len(hosts) != n:
        what = "validators" if not full_nodes else "nodes"
        raise ValueError(f"hosts lists {len(hosts)} hosts for {n} {what}")
    chain_id = check_chain_id(chain_id or f"testnet-{os.urandom(3).hex()}")
    homes = [os.path.join(output, f"node{i}") for i in range(n)]
    for h in homes:
        _prepare_dir(h)
    node_keys = [suite.generate_key() for _ in homes]
    val_keys = [suite.generate_key() for _ in homes]
    state = _app_state(app_state)
    if settings.get("app") in (None, "", "kvstore"):
        # The kvstore's validator admin: its `val:<key>=<power>` transactions change the set
        # (a key of the chain's suite, as every sender's).
        admin = suite.generate_key()
        os.makedirs(output, exist_ok=True)
        _write_key(os.path.join(output, ADMIN_KEY_FILE), admin, suite)
        state["validator_admins"] = [*state.get("validator_admins", []),
                                     admin.public_key.hex()]
    genesis = Genesis(chain_id, [GenesisValidator(f"node{i}", 10, k.public_key)
                                 for i, k in enumerate(val_keys[:validators])],
                      state, int(time.time() * 1000), suite.name)
    for i, h in enumerate(homes):
        # Validators name the validator key they run (the peer set drops them when they leave
        # the set); full nodes are non-validator peers, always kept.
        peers = [PeerConfig(node_keys[j].public_key.hex(), hosts[j], base_port + 2 * j,
                            val_keys[j].public_key.hex() if j < validators else "")
                 for j in range(n) if j != i]
        bind = "127.0.0.1" if hosts[i] in ("127.0.0.1", "localhost") else "0.0.0.0"
        config = NodeConfig(moniker=f"node{i}", p2p_host=bind, p2p_port=base_port + 2 * i,
                            rpc_port=base_port + 2 * i + 1, peers=peers, **settings)
        _write_home(h, config, genesis, node_keys[i], val_keys[i])
    return [load_home(h) for h in homes]
