"""What the RPC server needs from a node: the narrow interface it consumes.

The server is written against this protocol, never against the node class, so the node can
change inside without the HTTP layer noticing (and a test can serve the API from a fake).
``engine.node.Node`` implements it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypedDict, runtime_checkable

__all__ = ["EventInfo", "EventSubscription", "NodeAPI", "QueryInfo", "ResultInfo", "StatusInfo",
           "SubmitResult", "TxInfo"]


class EventInfo(TypedDict):
    type: str
    attributes: dict[str, str]


class ResultInfo(TypedDict):
    """What executing a transaction did: ``data`` is hex."""

    code: int
    log: str
    data: str
    events: list[EventInfo]


class ProofInfo(TypedDict):
    root: str
    index: int
    size: int
    path: list[str]


class TxInfo(TypedDict):
    """A committed transaction (``GET /tx/{id}``, ``Node.tx_info``); hashes are hex."""

    tx_id: str
    height: int
    index: int
    tx: str
    result: ResultInfo
    block_hash: str
    proof: ProofInfo


class QueryInfo(TypedDict):
    """The application's answer to a query (``GET /query``, ``Node.query``)."""

    code: int
    codespace: str
    log: str
    value: str | None
    height: int
    proof: Any


class ConsensusInfo(TypedDict):
    height: int
    round: int
    step: str


class MempoolInfo(TypedDict):
    txs: int
    bytes: int


class StatusInfo(TypedDict):
    """``GET /status``, ``Node.status()``; hashes and keys are hex."""

    chain_id: str
    #: The chain's crypto suite (genesis ``crypto``): ``ed25519-blake3`` or ``sm2-sm3``.
    crypto: str
    genesis_hash: str
    node_id: str
    moniker: str
    validator: str
    latest_height: int
    #: The lowest height whose block the node holds (blocks below are pruned; 0: none yet).
    earliest_height: int
    latest_block_hash: str
    latest_app_hash: str
    latest_block_time_ms: int
    consensus: ConsensusInfo | None
    peers: list[str]
    mempool: MempoolInfo
    catching_up: bool
    halted: str | None
    app: dict[str, Any]


class SubmitResult(Protocol):
    """The admission verdict of one transaction (``engine.mempool.AddResult``)."""

    @property
    def code(self) -> str: ...
    @property
    def tx_id(self) -> bytes: ...
    @property
    def log(self) -> str: ...
    @property
    def ok(self) -> bool: ...


class EventSubscription(Protocol):
    """A stream of committed events (``engine.node.events.Subscription``)."""

    @property
    def reason(self) -> str | None:
        """Why the subscription closed (``slow_client: ...``, ``node stopped``), or None."""
        ...

    async def get(self) -> dict[str, Any] | None:
        """The next message, or None once closed."""
        ...

    def close(self, reason: str = ...) -> None: ...


@runtime_checkable
class NodeAPI(Protocol):
    """Status, blocks, transactions, submission, validators and metrics of one node."""

    @property
    def latest_height(self) -> int: ...

    def status(self) -> StatusInfo: ...

    def block_info(self, height: int) -> dict[str, Any] | None: ...

    async def wait_for_blocks(self, from_height: int, timeout_s: float,
                              count_max: int = ...) -> list[dict[str, Any]]: ...

    def tx_info(self, tx_id: bytes) -> TxInfo | None: ...

    async def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> TxInfo | None: ...

    async def submit_tx(self, envelope: bytes) -> SubmitResult: ...

    async def submit_txs(self, envelopes: list[bytes]) -> Sequence[SubmitResult]: ...

    def validators_info(self, height: int | None = None) -> dict[str, Any]:
        """The set that signs ``height`` (default latest + 1): ``{height, total_power, hash,
        validators: [{index, pub_key, power, name}]}``; ValueError when not known."""
        ...

    def validator_set_at(self, height: int) -> Any:
        """The ``engine.consensus.ValidatorSet`` that signs ``height`` (the store's set
        history); ValueError when ``height`` < 1 or beyond what is known (latest + 2)."""
        ...

    def light_block(self, height: int) -> dict[str, Any] | None:
        """``{height, hash, header, certificate, validators}`` (hex of each part's encoding,
        docs/formats.md "Light block"), or None when the block is not stored."""
        ...

    def query(self, path: str, data: bytes, height: int | None = None,
              prove: bool = False) -> QueryInfo:
        """``{code, codespace, log, value (hex or None), height, proof}`` from the app."""
        ...

    def subscribe(self, filters: list[str] | tuple[str, ...] = (),
                  queue_max: int | None = None) -> EventSubscription:
        """Committed events matching every filter; raises ValueError on a bad filter."""
        ...

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition of the node's metrics."""
        ...
