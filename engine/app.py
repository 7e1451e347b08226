"""The application interface: what a node runs on top of consensus, and the built-in kvstore.

A node calls, in this order and from one thread:

- ``info()`` at start (name, version; what the app reports about itself);
- ``init_chain(chain_id, app_state)`` once, before the first block, with the genesis app state;
- ``check_tx(tx)`` for every transaction entering the mempool (signature already verified);
- ``finalize_block(height, txs)`` when a block is decided: execute the transactions in order and
  return a result per transaction, the state writes, and the new app hash. The node stores the
  writes in the *same* LMDB transaction as the block and its certificate, so a crash never leaves
  the state of one block with the block of another;
- ``commit()`` once that transaction is durable;
- ``query(path, data)`` for reads (RPC and embedding).

State is read through ``self.state`` (``get(key) -> bytes | None``), which the node points at
the store; between ``finalize_block`` and ``commit`` the app reads its own pending writes first.
Everything here must be deterministic: every validator runs it and must reach the same app hash.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.hashing import blake3, merkle_root

__all__ = [
    "Application",
    "BlockResult",
    "CheckResult",
    "KVStoreApp",
    "MemoryState",
    "QueryResult",
    "StateView",
    "TxResult",
    "load_app",
]


class StateView(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class MemoryState:
    """A dict-backed state view, for apps run without a store (tests, embedding experiments)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        for k, v in writes.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


@dataclass(frozen=True)
class CheckResult:
    """Whether a transaction may enter the mempool; ``code`` 0 is accepted."""

    code: int = 0
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class TxResult:
    """What executing one transaction did; a failed transaction still stays in its block."""

    code: int = 0
    log: str = ""
    data: bytes = b""


@dataclass
class BlockResult:
    """The outcome of ``finalize_block``: per-transaction results, state writes (None deletes)
    and the app hash after the block."""

    tx_results: list[TxResult]
    app_hash: bytes
    writes: dict[bytes, bytes | None] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryResult:
    code: int = 0
    value: bytes | None = None
    log: str = ""


class Application:
    """Base class for applications. Override what you need; the defaults accept everything and
    keep no state (the app hash stays 32 zero bytes)."""

    name = "application"
    version = "0"

    def __init__(self) -> None:
        self.state: StateView = MemoryState()
        self.last_app_hash = bytes(32)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version,
                "last_app_hash": self.last_app_hash.hex()}

    def init_chain(self, chain_id: str, app_state: dict[str, Any]) -> bytes:
        """Apply the genesis app state; returns the initial app hash."""
        return self.last_app_hash

    def check_tx(self, tx: Any) -> CheckResult:
        return CheckResult()

    def finalize_block(self, height: int, txs: list[Any]) -> BlockResult:
        return BlockResult([TxResult() for _ in txs], self.last_app_hash)

    def commit(self) -> None:
        """The last finalized block and its writes are durable."""

    def query(self, path: str, data: bytes) -> QueryResult:
        return QueryResult(code=1, log=f"unknown query path {path!r}")


#: Results are immutable, so every accepted or successful transaction shares one.
_CHECK_OK = CheckResult()
_TX_OK = TxResult()
_TX_MALFORMED = TxResult(1, "malformed payload")
_KV_DOMAIN = b"engine/kvstore/v1"
KEY_BYTES_MAX = 256
VALUE_BYTES_MAX = 4096


def parse_kv(payload: bytes) -> tuple[bytes, bytes] | None:
    """``key=value`` split at the first ``=``; None when malformed or over the limits."""
    key, sep, value = bytes(payload).partition(b"=")
    if not sep or not key or len(key) > KEY_BYTES_MAX or len(value) > VALUE_BYTES_MAX:
        return None
    return key, value


class KVStoreApp(Application):
    """The built-in key/value store: a transaction's payload ``key=value`` sets ``key``.

    App hash after a block = BLAKE3(domain || previous app hash || height u64 || Merkle root of
    the block's writes, each ``u32 len(key) || key || value``, sorted by key): it commits to the
    whole history of writes in order, costs one Merkle root per block, and every node computes
    it identically.
    """

    name = "kvstore"
    version = "1"

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[bytes, bytes | None] = {}
        self._genesis_writes: dict[bytes, bytes | None] = {}

    def init_chain(self, chain_id: str, app_state: dict[str, Any]) -> bytes:
        writes: dict[bytes, bytes | None] = {str(k).encode(): str(v).encode()
                                             for k, v in sorted(app_state.items())}
        # The store only takes state changes with a block, so genesis writes ride in block 1.
        self._genesis_writes = dict(writes)
        self._pending = writes
        self.last_app_hash = self._hash(0, writes)
        return self.last_app_hash

    def check_tx(self, tx: Any) -> CheckResult:
        if parse_kv(tx.payload) is None:
            return CheckResult(1, "payload must be key=value with a non-empty key "
                                  f"(key <= {KEY_BYTES_MAX} bytes, value <= {VALUE_BYTES_MAX})")
        return _CHECK_OK

    def finalize_block(self, height: int, txs: list[Any]) -> BlockResult:
        writes: dict[bytes, bytes | None] = dict(self._genesis_writes) if height == 1 else {}
        results: list[TxResult] = []
        append = results.append
        for tx in txs:
            kv = parse_kv(tx.payload)
            if kv is None:
                append(_TX_MALFORMED)
                continue
            writes[kv[0]] = kv[1]
            append(_TX_OK)
        self._pending = writes
        app_hash = self._hash(height, writes)
        self.last_app_hash = app_hash
        return BlockResult(results, app_hash, dict(writes))

    def _hash(self, height: int, writes: dict[bytes, bytes | None]) -> bytes:
        if height == 0:
            self.last_app_hash = bytes(32)
        leaves = [struct.pack("<I", len(k)) + k + (v or b"") for k, v in sorted(writes.items())]
        return blake3(_KV_DOMAIN + self.last_app_hash + struct.pack("<Q", height)
                      + merkle_root(leaves))

    def commit(self) -> None:
        if isinstance(self.state, MemoryState):
            self.state.apply(self._pending)
        self._pending = {}

    def query(self, path: str, data: bytes) -> QueryResult:
        if path not in ("", "/", "/key", "key"):
            return QueryResult(code=1, log=f"unknown query path {path!r}; use /key")
        key = bytes(data)
        value = self._pending[key] if key in self._pending else self.state.get(key)
        if value is None:
            return QueryResult(code=1, log="key not found")
        return QueryResult(value=value)


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
