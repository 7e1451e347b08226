"""The application interface: what a node runs on top of consensus, and the built-in kvstore.

A node calls, in this order and from one thread (the node's event loop thread):

- ``info()`` at start (name, version; what the app reports about itself);
- ``init_chain(chain_id, app_state)`` **once**, at height 0, with the genesis app state. It
  returns the genesis app hash, or an :class:`InitResult` carrying the app hash and the genesis
  state ``writes``: the node saves those writes and the app hash in one store transaction before
  anything else happens, then calls ``commit()``; ``check_tx``, ``query`` and block 1 see them
  in committed state. A node that restarts does not call ``init_chain`` again:
- ``restore(height, app_hash)`` on every start after the genesis was saved, with the last
  committed height (0 before block 1) and the app hash after it;
- ``check_tx(tx)`` for every transaction entering the mempool (signature already verified);
  an app may define ``check_tx(tx, pending)`` to see the pool (:class:`PendingView`),
  ``check_txs(txs)`` to answer a whole admission chunk in one call (its batch form; verdicts
  independent of one another), and ``recheck_tx(tx, pending)`` to re-judge pooled
  transactions after every commit;
- ``finalize_block(height, txs)`` (or ``finalize_block(height, txs, context)`` with a
  :class:`BlockContext`) when a block is decided: execute the transactions in order and return a
  result per transaction, the state writes, and the new app hash. The node stores the writes in
  the *same* LMDB transaction as the block and its certificate, so a crash never leaves the
  state of one block with the block of another;
- ``commit()`` once that transaction is durable;
- ``query(path, data)`` (or ``query(path, data, height)``) for reads (RPC and embedding),
  always on the node's loop thread.

Exceptions are contained: one raised by ``check_tx`` refuses that transaction (``app_error``),
one from ``query`` answers a non-zero code, one from ``finalize_block`` halts the node visibly.
State is read through ``self.state`` (``get(key)``, ``items(prefix)``), which the node points at
the store; between ``finalize_block`` and ``commit`` the app reads its own pending writes first.
Everything here must be deterministic: every validator runs it and must reach the same app hash.
The contract in full: docs/application.md.
"""
from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from engine._txcodec import kv_verdicts as _kv_verdicts
from engine._txcodec import kv_writes as _kv_writes
from engine.nonces import RESERVED_PREFIX
from engine.snapshot import STATE_FORMAT, Snapshot, decode_state_chunk
from engine.statetree import StateTree

if TYPE_CHECKING:
    from engine.tx import Tx

__all__ = [
    "Application",
    "BlockContext",
    "BlockResult",
    "CheckResult",
    "Event",
    "InitResult",
    "KVStoreApp",
    "MemoryState",
    "PendingView",
    "QueryResult",
    "Snapshot",
    "StateView",
    "TxResult",
    "load_app",
]


class StateView(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every committed (key, value) whose key starts with ``prefix``, in key order."""
        ...


class MemoryState:
    """A dict-backed state view, for apps run without a store (tests, embedding experiments)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.data.get(k) for k in keys]

    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        for k, v in writes.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


@dataclass(frozen=True)
class Event:
    """Something a transaction or a block did, for clients: a ``type`` and string attributes
    (``Event("transfer", {"sender": "ab..", "amount": "5"})``). Subscriptions filter on them."""

    type: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise TypeError("Event type must be a non-empty str")
        for k, v in self.attributes.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"Event attributes must map str to str, not {k!r}: {v!r}")

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "attributes": dict(self.attributes)}


@dataclass(frozen=True)
class CheckResult:
    """Whether a transaction may enter the mempool; ``code`` 0 is accepted. ``priority``
    (higher first) orders blocks across senders; a sender's own transactions stay in nonce
    order."""

    code: int = 0
    log: str = ""
    priority: int = 0

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class TxResult:
    """What executing one transaction did; a failed transaction still stays in its block."""

    code: int = 0
    log: str = ""
    data: bytes = b""
    events: Sequence[Event] = ()


@dataclass
class BlockResult:
    """The outcome of ``finalize_block``: per-transaction results, state writes (None deletes),
    the app hash after the block, and events of the block itself (not of one transaction)."""

    tx_results: list[TxResult]
    app_hash: bytes
    writes: Mapping[bytes, bytes | None] = field(default_factory=dict)
    events: Sequence[Event] = ()
    #: Validator-set changes (engine.valset.ValidatorUpdate: public key, new power; 0
    #: removes); they change the set that signs height + 2 (docs/application.md).
    validator_updates: Sequence[Any] = ()


@dataclass(frozen=True)
class InitResult:
    """What ``init_chain`` may return instead of a bare app hash: the genesis state writes,
    saved with the genesis app hash in one store transaction at height 0."""

    app_hash: bytes
    writes: Mapping[bytes, bytes | None] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockContext:
    """What ``finalize_block(height, txs, context)`` learns about the decided block. Every
    field comes from the block or its certificate, so every validator sees the same values.

    ``time_ms`` is the proposer's clock (never below the parent's); ``evidence`` holds the
    decoded duplicate-vote evidence the block carries; ``last_commit_signers`` the public keys
    of the validators whose precommits for the parent block the block carries (empty at
    height 1); ``next_validators`` the set that signs ``height + 1`` (an
    ``engine.consensus.ValidatorSet``): the set this block's ``validator_updates`` apply to,
    so an application can check them with ``engine.valset.apply_updates`` first."""

    chain_id: str
    height: int
    time_ms: int
    block_hash: bytes
    proposer: bytes
    proposer_index: int
    evidence: tuple[Any, ...] = ()
    last_commit_signers: tuple[bytes, ...] = ()
    next_validators: Any = None


class PendingView(Protocol):
    """What ``check_tx(tx, pending)`` sees of the pool: the transactions already pooled."""

    def by_sender(self, sender: bytes) -> list[Tx]:
        """The pooled transactions of ``sender``, in nonce order."""
        ...

    def next_nonce(self, sender: bytes) -> int | None:
        """One past the highest pooled nonce of ``sender``; None when it has none pooled."""
        ...


@dataclass(frozen=True)
class QueryResult:
    code: int = 0
    value: bytes | None = None
    log: str = ""
    #: The height the answer is about (None: the latest committed height).
    height: int | None = None
    #: A proof of the value against a state commitment (None until one exists).
    proof: Any = None


class Application:
    """Base class for applications. Override what you need; the defaults accept everything and
    keep no state (the app hash stays 32 zero bytes).

    Before ``info()`` the node sets ``state`` (the committed state view), ``home`` (the node's
    home folder, or None) and ``settings`` (the ``[app_settings]`` table of config.toml)."""

    name = "application"
    version = "0"
    #: Whether the node may call ``finalize_block`` on a block it has precommitted for,
    #: before the block is decided (optimistic execution: the block's execution overlaps
    #: the last vote round, so the decision is followed by the block's save alone). An
    #: application that says True makes a second ``finalize_block`` for a height not yet
    #: committed replace everything the first one did (another block was decided);
    #: ``commit()`` follows the call for the decided block. docs/application.md,
    #: "Optimistic execution".
    optimistic_execution = False

    def __init__(self) -> None:
        self.state: StateView = MemoryState()
        self.last_app_hash = bytes(32)
        self.home: str | None = None
        self.settings: dict[str, Any] = {}
        #: The chain's crypto suite (genesis ``crypto``: ``ed25519-blake3`` or ``sm2-sm3``),
        #: set by the node before ``init_chain``/``restore``, like ``home`` and ``settings``:
        #: an app that hashes its state in the chain's suite reads it (the kvstore does).
        self.crypto: str = "ed25519-blake3"

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version,
                "last_app_hash": self.last_app_hash.hex()}

    def init_chain(self, chain_id: str, app_state: dict[str, Any]) -> bytes | InitResult:
        """Apply the genesis app state, once, at height 0; returns the genesis app hash, or an
        :class:`InitResult` with the genesis state writes."""
        return self.last_app_hash

    def restore(self, height: int, app_hash: bytes) -> None:
        """The node restarted at ``height`` (0: genesis saved, no block yet) whose state has
        ``app_hash``; committed state is in ``self.state``. Keep ``last_app_hash`` in step."""
        self.last_app_hash = app_hash

    def check_tx(self, tx: Tx) -> CheckResult:
        return CheckResult()

    def finalize_block(self, height: int, txs: list[Tx]) -> BlockResult:
        return BlockResult([TxResult() for _ in txs], self.last_app_hash)

    def commit(self) -> None:
        """The last finalized block and its writes are durable."""

    def query(self, path: str, data: bytes) -> QueryResult:
        return QueryResult(code=1, log=f"unknown query path {path!r}")

    # ---- snapshots (state sync, in the style of ABCI; docs/state-sync.md) ----------------
    def list_snapshots(self) -> list[Snapshot] | None:
        """The snapshots this application offers to peers, or None (the default): the engine
        then snapshots the state it keeps for the application (``self.state``) every
        ``snapshot_interval`` heights, so an app built on ``self.state`` needs nothing more."""
        return None

    def load_snapshot_chunk(self, height: int, format: int, index: int) -> bytes | None:
        """Chunk ``index`` of an own snapshot (only called when ``list_snapshots`` lists)."""
        return None

    def offer_snapshot(self, snapshot: Snapshot, app_hash: bytes) -> bool:
        """Whether to restore from ``snapshot``, whose app hash the node has verified against
        a certified header (``app_hash``). The default takes the engine's own format."""
        return snapshot.format == STATE_FORMAT and snapshot.app_hash == app_hash

    def snapshot_state_hash(self, entries: list[tuple[bytes, bytes]]) -> bytes | None:
        """The app hash that restored state ``entries`` stand for, or None (the default) when
        the application cannot tell. State sync refuses a snapshot whose entries hash to
        another app hash than the certified one (a forged but self-consistent snapshot)."""
        return None

    def apply_snapshot_chunk(self, index: int, chunk: bytes) -> list[tuple[bytes, bytes]]:
        """The state entries of chunk ``index`` (its hash already checked), in ascending key
        order, for the node to write into the store with the rest of the restore in one
        transaction. An app with its own storage stores the chunk itself and returns [].
        Raise ValueError for a malformed chunk: the snapshot is refused."""
        return decode_state_chunk(chunk)


#: State keys are 1..STATE_KEY_BYTES_MAX bytes, values bytes (the store's limits, checked when a
#: block's writes are taken: a violation halts the node, naming the key).
STATE_KEY_BYTES_MAX = 400

#: Results are immutable, so every accepted or successful transaction shares one.
_CHECK_OK = CheckResult()
_TX_OK = TxResult()
_TX_MALFORMED = TxResult(1, "malformed payload")
KEY_BYTES_MAX = 256
VALUE_BYTES_MAX = 4096
_CHECK_NOT_KV = CheckResult(1, "payload must be key=value with a non-empty key "
                               f"(key <= {KEY_BYTES_MAX} bytes, value <= {VALUE_BYTES_MAX})")


def parse_kv(payload: bytes) -> tuple[bytes, bytes] | None:
    """``key=value`` split at the first ``=``; None when malformed, over the limits, or under
    the engine's reserved state prefix (whose writes the node drops)."""
    key, sep, value = bytes(payload).partition(b"=")
    if not sep or not key or len(key) > KEY_BYTES_MAX or len(value) > VALUE_BYTES_MAX \
            or key.startswith(RESERVED_PREFIX):
        return None
    return key, value


def kv_ok(payload: bytes) -> bool:
    """``parse_kv(payload) is not None`` without building the key and value (admission's
    check): a key shorter than the reserved prefix cannot match it, because the payload
    continues with ``=``, which the prefix does not hold."""
    if type(payload) is not bytes:
        return parse_kv(payload) is not None
    i = payload.find(b"=")
    return 0 < i <= KEY_BYTES_MAX and len(payload) - i - 1 <= VALUE_BYTES_MAX \
        and not payload.startswith(RESERVED_PREFIX)


#: kvstore payloads with this prefix change the validator set (``val:<hex key>=<power>``).
VAL_PREFIX = b"val:"
#: The kvstore state key holding the validator admins (32-byte Ed25519 public keys,
#: concatenated); an ``sm2-sm3`` chain's 64-byte SM2 admin keys are kept under their own key,
#: so a key is only ever compared with whole keys of its own size.
VAL_ADMINS_KEY = b"val:admins"
VAL_ADMINS_KEYS = {32: VAL_ADMINS_KEY, 64: b"val:admins:sm2"}
_TX_NOT_ADMIN = TxResult(3, "sender is not listed in validator_admins")


def parse_val(payload: bytes) -> tuple[bytes, int] | None:
    """``val:<hex public key>=<power>`` as (public key, power): 64 hex digits for an Ed25519
    key, 128 for an SM2 one (which of the two a chain takes is the engine's rule: a key must
    have the size of the set's keys, engine/valset.py); None when malformed (power: decimal
    digits, at most the total power bound)."""
    from engine import limits

    head, sep, power = bytes(payload).partition(b"=")
    hexkey = head[len(VAL_PREFIX):]
    if not sep or not head.startswith(VAL_PREFIX) or len(hexkey) not in (64, 128) \
            or not 1 <= len(power) <= 19 or not power.isdigit():
        return None
    try:
        key = bytes.fromhex(hexkey.decode("ascii"))
    except ValueError:
        return None
    value = int(power)
    return (key, value) if value <= limits.voting_power_total_max else None


class KVStoreApp(Application):
    """The built-in key/value store: a transaction's payload ``key=value`` sets ``key``.

    Validator-set changes: a payload ``val:<hex public key>=<power>`` (64 hex digits for an
    Ed25519 key, 128 for an SM2 key on an ``sm2-sm3`` chain) from a sender listed in the
    genesis app state under ``validator_admins`` (a list of hex public keys of the chain's
    suite, kept in state under ``val:admins``, or ``val:admins:sm2`` for SM2 keys) sets that
    validator's power (0 removes it, a new key adds it) from height + 2 on, and records it in
    state under ``val:<hex>``.
    A change the engine would refuse (engine/valset.py: an empty set, more than
    ``limits.validator_updates_per_block_max`` in one block, ...) fails with code 2 and
    changes nothing; a sender that is not an admin is refused with code 3. No plain
    ``key=value`` transaction can write a ``val:`` key.

    App hash = the root of a :class:`engine.statetree.StateTree` over the whole state (keys
    hashed into 4096 buckets, a Merkle root over the buckets; docs/formats.md "State
    commitment"; its hashes are the chain's suite's, ``self.crypto``: SM3 on an ``sm2-sm3``
    chain), so a key's value or its absence is provable against a header's ``app_hash``
    (``query("/key", key, height)`` answers with a :class:`engine.statetree.StateProof` as JSON
    in ``proof``; ``engine.light.verify_state_proof`` checks it). A block touches only the
    buckets of the keys it writes. The genesis app state (string keys and values) is written at
    height 0. Proofs are answered for the last ``StateTree.history_heights`` heights since the
    node started.
    """

    name = "kvstore"
    version = "2"
    #: A second finalize_block for a height rolls the state tree back first (the tree keeps
    #: each block's old values for its proof history).
    optimistic_execution = True

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[bytes, bytes | None] = {}
        self.tree = StateTree()
        #: The height finalize_block ran for, until commit(): the next call rolls the state
        #: tree back first (optimistic execution of a block that was not decided).
        self._finalized: int | None = None
        self._pending_hash = self.last_app_hash

    def init_chain(self, chain_id: str, app_state: dict[str, Any]) -> InitResult:
        app_state = dict(app_state)
        admins = _admin_keys(app_state.pop("validator_admins", []))
        writes: dict[bytes, bytes | None] = {str(k).encode(): str(v).encode()
                                             for k, v in sorted(app_state.items())}
        if any(k.startswith(VAL_PREFIX) for k in writes):
            raise ValueError("genesis app_state keys may not start with 'val:' (reserved)")
        if admins:
            writes[VAL_ADMINS_KEYS[len(admins[0])]] = b"".join(admins)
        self._pending = writes
        self._chain_tree()
        self.tree.load([], 0)
        self.last_app_hash = self.tree.apply(0, writes, lambda key: None)
        return InitResult(self.last_app_hash, dict(writes))

    def _chain_tree(self) -> None:
        """The state tree in the chain's suite (``self.crypto``: SM3 on an SM2/SM3 chain)."""
        if self.tree.suite.name != self.crypto:
            self.tree = StateTree(self.tree.history_heights, self.tree.history_writes_max,
                                  suite=self.crypto)

    def restore(self, height: int, app_hash: bytes) -> None:
        super().restore(height, app_hash)
        self._pending = {}
        self._finalized = None
        self._chain_tree()
        # The engine's own records (nonces) share the state database; they are not the app's.
        self.tree.load([(k, v) for k, v in self.state.items(b"")
                        if not k.startswith(RESERVED_PREFIX)], height)
        if self.tree.root() != app_hash:
            raise ValueError(f"the kvstore state at height {height} does not hash to the "
                             "stored app hash (a store written by another kvstore version?)")

    def snapshot_state_hash(self, entries: list[tuple[bytes, bytes]]) -> bytes | None:
        """The state tree root over restored entries (the engine's own records left out)."""
        tree = StateTree(suite=self.crypto)
        tree.load([(k, v) for k, v in entries if not k.startswith(RESERVED_PREFIX)], 0)
        return tree.root()

    def check_tx(self, tx: Tx) -> CheckResult:
        if tx.payload.startswith(VAL_PREFIX):
            if parse_val(tx.payload) is None:
                return CheckResult(1, "payload must be val:<64 or 128 hex digits of a public "
                                      "key>=<power>")
            if not self._is_admin(tx.sender):
                return CheckResult(_TX_NOT_ADMIN.code, _TX_NOT_ADMIN.log)
            return _CHECK_OK
        if not kv_ok(tx.payload):
            return _CHECK_NOT_KV
        return _CHECK_OK

    def check_txs(self, txs: list[Tx]) -> list[CheckResult]:
        """``[check_tx(tx) for tx in txs]``: the key=value rule natively over the whole chunk,
        validator transactions one by one."""
        out: list[CheckResult | None] = _kv_verdicts(
            txs, _CHECK_OK, _CHECK_NOT_KV, KEY_BYTES_MAX, VALUE_BYTES_MAX, RESERVED_PREFIX,
            VAL_PREFIX) if type(txs) is list else [None] * len(txs)
        if not any(map(operator.is_, out, itertools.repeat(None))):
            return cast("list[CheckResult]", out)  # no validator transaction: all answered
        check = self.check_tx
        return [check(t) if r is None else r for t, r in zip(txs, out)]

    def finalize_block(self, height: int, txs: list[Tx],
                       context: BlockContext | None = None) -> BlockResult:
        if self._finalized is not None:
            # A block executed before it was decided, and another one was decided: the tree
            # goes back to the committed state (which self.state holds) before this block.
            self.tree.rollback(self._finalized)
            self._finalized = None
        writes: dict[bytes, bytes | None] = {}
        results: list[TxResult] = []
        updates: dict[bytes, int] = {}
        # A block without validator transactions is parsed natively in one pass (same rule
        # as parse_kv, same writes in the same order); otherwise transaction by transaction.
        fast = _kv_writes(txs, KEY_BYTES_MAX, VALUE_BYTES_MAX, RESERVED_PREFIX, VAL_PREFIX) \
            if type(txs) is list else None
        if fast is not None:
            writes = cast("dict[bytes, bytes | None]", fast[0])
            results = [_TX_OK] * len(txs)
            for i in fast[1]:
                results[i] = _TX_MALFORMED
        else:
            append = results.append
            for tx in txs:
                if tx.payload.startswith(VAL_PREFIX):
                    append(self._validator_tx(tx, updates, writes, context))
                    continue
                kv = parse_kv(tx.payload)
                if kv is None:
                    append(_TX_MALFORMED)
                    continue
                writes[kv[0]] = kv[1]
                append(_TX_OK)
        self._pending = writes
        # Between finalize_block and commit, self.state is still the state before the block.
        app_hash = self.tree.apply(height, writes, self.state.get,
                                   old_values=getattr(self.state, "get_many", None))
        self._finalized, self._pending_hash = height, app_hash
        from engine.valset import ValidatorUpdate

        return BlockResult(results, app_hash, dict(writes),
                           validator_updates=[ValidatorUpdate(k, p) for k, p in updates.items()])

    def _is_admin(self, sender: bytes) -> bool:
        n = len(sender)
        where = VAL_ADMINS_KEYS.get(n)
        if where is None:
            return False
        admins = self.state.get(where) or b""
        return any(admins[i:i + n] == sender for i in range(0, len(admins), n))

    def _validator_tx(self, tx: Tx, updates: dict[bytes, int],
                      writes: dict[bytes, bytes | None],
                      context: BlockContext | None) -> TxResult:
        parsed = parse_val(tx.payload)
        if parsed is None:
            return _TX_MALFORMED
        if not self._is_admin(tx.sender):
            return _TX_NOT_ADMIN
        key, power = parsed
        trial = {**updates, key: power}
        if context is not None and context.next_validators is not None:
            from engine.valset import ValidatorUpdate, apply_updates

            try:
                apply_updates(context.next_validators,
                              [ValidatorUpdate(k, p) for k, p in trial.items()])
            except ValueError as e:
                return TxResult(2, f"validator change refused: {e}")
        updates[key] = power
        writes[VAL_PREFIX + key.hex().encode()] = str(power).encode()
        return TxResult(0, "", b"", (Event("validator_update",
                                           {"pub_key": key.hex(), "power": str(power)}),))

    def commit(self) -> None:
        if isinstance(self.state, MemoryState):
            self.state.apply(self._pending)
        self._pending = {}
        if self._finalized is not None:
            self.last_app_hash = self._pending_hash
        self._finalized = None

    def query(self, path: str, data: bytes, height: int | None = None) -> QueryResult:
        """``/key``: the value of ``data`` in the state after ``height`` (default: the latest),
        with its proof (the proof of absence when the key is not set)."""
        if path not in ("", "/", "/key", "key"):
            return QueryResult(code=1, log=f"unknown query path {path!r}; use /key")
        key = bytes(data)
        if not key:
            return QueryResult(code=1, log="the key must not be empty")
        # A block executed early (optimistic execution) is in the tree but not committed:
        # answers stay at the committed height, proven by rolling that block back.
        committed = self.tree.height if self._finalized is None else self._finalized - 1
        if height is not None and height > committed:
            return QueryResult(code=1, log=f"the state at height {height} is not committed "
                                           f"(latest: {committed})", height=height)
        current = self._pending[key] if key in self._pending else self.state.get(key)
        try:
            proof = self.tree.prove(key, current, committed if height is None else height)
        except ValueError as e:
            return QueryResult(code=1, log=str(e), height=height)
        if proof.value is None:
            return QueryResult(code=1, log="key not found", height=proof.height,
                               proof=proof.to_json())
        return QueryResult(value=proof.value, height=proof.height, proof=proof.to_json())


def _admin_keys(value: Any) -> list[bytes]:
    """The genesis ``validator_admins``: a list of public keys in hex, all of one size (64
    digits for Ed25519 keys, 128 for SM2 keys: the chain's suite)."""
    if not isinstance(value, list):
        raise ValueError("app_state validator_admins must be a list of hex public keys")  # noqa: TRY004 - a genesis error
    keys: list[bytes] = []
    for i, item in enumerate(value):
        try:
            key = bytes.fromhex(item) if isinstance(item, str) else b""
        except ValueError:
            key = b""
        if len(key) not in (32, 64):
            raise ValueError(f"app_state validator_admins[{i}] must be 64 hex digits (an "
                             f"Ed25519 public key) or 128 (an SM2 public key)")
        if keys and len(key) != len(keys[0]):
            raise ValueError(f"app_state validator_admins[{i}] is not of the size of "
                             f"validator_admins[0]: every admin key is of the chain's suite")
        keys.append(key)
    return keys


def load_app(spec: str | None) -> Application:
    """An application from ``package.module:ClassName`` (None or ``kvstore``: the built-in)."""
    if spec in (None, "", "kvstore"):
        return KVStoreApp()
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"app must be 'kvstore' or 'package.module:ClassName', not {spec!r}")
    import importlib

    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"app {spec!r} cannot be loaded: {e}") from e
    app = cls()
    if not isinstance(app, Application):
        raise TypeError(f"app {spec!r} is not an engine.app.Application subclass")
    return app
