"""What the RPC server needs from a node: the narrow interface it consumes.

The server is written against this protocol, never against the node class, so the node can
change inside without the HTTP layer noticing (and a test can serve the API from a fake).
``engine.node.Node`` implements it.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["EventSubscription", "NodeAPI", "SubmitResult"]


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

    def status(self) -> dict[str, Any]: ...

    def block_info(self, height: int) -> dict[str, Any] | None: ...

    async def wait_for_blocks(self, from_height: int, timeout_s: float,
                              count_max: int = ...) -> list[dict[str, Any]]: ...

    def tx_info(self, tx_id: bytes) -> dict[str, Any] | None: ...

    async def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> dict[str, Any] | None: ...

    async def submit_tx(self, envelope: bytes) -> SubmitResult: ...

    async def submit_txs(self, envelopes: list[bytes]) -> list[SubmitResult]: ...

    def validators_info(self) -> dict[str, Any]: ...

    def query(self, path: str, data: bytes, height: int | None = None,
              prove: bool = False) -> dict[str, Any]:
        """``{code, codespace, log, value (hex or None), height, proof}`` from the app."""
        ...

    def subscribe(self, filters: list[str] | tuple[str, ...] = (),
                  queue_max: int | None = None) -> EventSubscription:
        """Committed events matching every filter; raises ValueError on a bad filter."""
        ...

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition of the node's metrics."""
        ...
