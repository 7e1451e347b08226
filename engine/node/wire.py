"""The node's real ports: asyncio timers, and the outbox over the peer set.

:class:`PeerWire` sends encoded frames (to all peers or one; nothing while the peer set is not
running). :class:`PeerOutbox` is the driver's :class:`~engine.node.ports.Outbox`: it encodes own
votes and proposals with the wire codec and hands them to the wire. :class:`LoopTimers` is the
driver's :class:`~engine.node.ports.Timers` on the running asyncio loop.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from engine import consensus as cs
from engine.net import codec
from engine.net.peers import PeerSet
from engine.node.compact import split_block
from engine.suite import DEFAULT, Suite

__all__ = ["LoopTimers", "PeerOutbox", "PeerWire"]


class PeerWire:
    """Encoded frames to peers; a no-op until the peer set is attached."""

    def __init__(self) -> None:
        self.peers: PeerSet | None = None

    def broadcast(self, message: bytes) -> None:
        if self.peers is not None:
            self.peers.broadcast(message)

    def send(self, peer: bytes, message: bytes) -> None:
        if self.peers is not None:
            self.peers.send(peer, message)

    def penalize(self, peer: bytes, reason: str) -> None:
        if self.peers is not None:
            self.peers.penalize(peer, reason)

    def connected(self) -> list[bytes]:
        return sorted(self.peers.connected()) if self.peers is not None else []


class PeerOutbox:
    """Own votes and proposals, encoded and sent over a :class:`PeerWire`; with ``compact``,
    a proposal goes out as its block's head and transaction ids (engine/node/compact.py)."""

    def __init__(self, wire: PeerWire, *, compact: bool = False, suite: Suite = DEFAULT):
        self.wire = wire
        self.compact = compact
        self.suite = suite

    def votes(self, votes: Sequence[cs.Vote], to: bytes | None = None) -> None:
        if votes:
            self._send(codec.encode(codec.VOTES, [v.encode() for v in votes]), to)

    def proposal(self, proposal: cs.Proposal, block: bytes, to: bytes | None = None) -> None:
        if not self.compact:
            self._send(codec.encode(codec.PROPOSAL, proposal.encode(), block), to)
            return
        head, _, ids = split_block(block, self.suite)
        self._send(codec.encode(codec.COMPACT_PROPOSAL, proposal.encode(), head, ids), to)

    def _send(self, message: bytes, to: bytes | None) -> None:
        if to is None:
            self.wire.broadcast(message)
        else:
            self.wire.send(to, message)


class _Handle:
    __slots__ = ("handle", "owner")

    def __init__(self, owner: LoopTimers):
        self.owner = owner
        self.handle: asyncio.Handle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.owner._handles.discard(self)


class LoopTimers:
    """Timers on the running asyncio loop; every pending one can be cancelled at stop. A
    callback that raises is reported to ``on_error`` (asyncio would only log it)."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._handles: set[_Handle] = set()
        self._on_error = on_error

    def call_later(self, delay_ms: float, callback: Callable[[], Any]) -> _Handle:
        h, fire = self._wrap(callback)
        h.handle = asyncio.get_running_loop().call_later(delay_ms / 1000, fire)
        return h

    def call_soon(self, callback: Callable[[], Any]) -> _Handle:
        """Run ``callback`` after the callbacks already ready (first in, first out): after the
        wake-ups of the peer writers a message was just queued for, say."""
        h, fire = self._wrap(callback)
        h.handle = asyncio.get_running_loop().call_soon(fire)
        return h

    def _wrap(self, callback: Callable[[], Any]) -> tuple[_Handle, Callable[[], None]]:
        h = _Handle(self)

        def fire() -> None:
            self._handles.discard(h)
            try:
                callback()
            except Exception as e:  # noqa: BLE001 - reported, never lost
                self._on_error(e)

        self._handles.add(h)
        return h, fire

    def cancel_all(self) -> None:
        for h in list(self._handles):
            h.cancel()
        self._handles.clear()
