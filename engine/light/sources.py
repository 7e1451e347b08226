"""Where a light client gets light blocks: a node's RPC (``GET /light_block/{h}``) or memory.

A source is untrusted: whatever it returns is verified by the client. A source raises
:class:`engine.light.verify.LightClientError` (reason ``unavailable``) when it cannot answer, and
``VerificationFailed`` when its answer is malformed.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from engine.errors import ProtocolError
from engine.light.block import LightBlock
from engine.light.verify import LightClientError, VerificationFailed
from engine.suite import Suite, get_suite

__all__ = ["LightBlockSource", "MemorySource", "RpcSource", "SourceUnavailable"]


class SourceUnavailable(LightClientError):
    reason = "unavailable"


@runtime_checkable
class LightBlockSource(Protocol):
    name: str

    def light_block(self, height: int) -> LightBlock: ...


class MemorySource:
    """Light blocks from a mapping (or a function of the height): tests, relayed blocks."""

    def __init__(self, blocks: Mapping[int, LightBlock] | Callable[[int], LightBlock | None],
                 name: str = "memory"):
        self._get = blocks.get if isinstance(blocks, Mapping) else blocks
        self.name = name

    def light_block(self, height: int) -> LightBlock:
        lb = self._get(height)
        if lb is None:
            raise SourceUnavailable(f"{self.name} has no light block at height {height}")
        return lb


class RpcSource:
    """A node's RPC API: ``GET /light_block/{h}`` (the JSON form, docs/formats.md), decoded as
    light blocks of a ``suite`` chain (default ``ed25519-blake3``; ``sm2-sm3`` for an SM2
    chain)."""

    def __init__(self, url: str, timeout_s: float = 10.0, suite: Suite | str | None = None):
        from engine.rpc.client import Client

        self.suite = get_suite(suite)
        self.client = Client(url, timeout_s)
        self.name = url

    def light_block(self, height: int) -> LightBlock:
        from engine.rpc.client import ClientError

        try:
            obj = self.client._request("GET", f"/light_block/{int(height)}")
        except ClientError as e:
            raise SourceUnavailable(f"{self.name}: light block {height}: {e}") from None
        try:
            return LightBlock.from_json(obj, self.suite)
        except ProtocolError as e:
            raise VerificationFailed(f"{self.name} sent a malformed light block for height "
                                     f"{height}: {e}") from None

    def latest_height(self) -> int:
        from engine.rpc.client import ClientError

        try:
            return int(self.client.status()["latest_height"])
        except (ClientError, KeyError, TypeError, ValueError) as e:
            raise SourceUnavailable(f"{self.name}: status: {e}") from None

    def close(self) -> None:
        self.client.close()
