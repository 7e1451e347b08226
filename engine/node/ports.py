"""The ports: the small interfaces through which the consensus driver does I/O.

The driver (engine/node/driver.py) never touches a socket, a loop or a clock itself; it is given
an :class:`Outbox` (send own votes and proposals), :class:`Timers` (call back later), a
:class:`SignatureObserver` (told of every signature made and received), :class:`Counters`, and
the journal over a WAL store. The node passes real implementations (asyncio timers, the peer set);
the simulator passes simulated ones (a virtual clock, a seeded network, an in-memory store), so
``engine sim`` runs the very driver real nodes run. Test tooling changes behaviour by wrapping a
port (:class:`NodeSeams`), never by patching the node.

Contracts:

- ``Outbox.votes(votes, to=None)`` / ``Outbox.proposal(proposal, block, to=None)``: queue own
  signed messages to every peer (``to=None``) or one peer; never blocks, never raises for a
  peer's sake (a dead peer just misses the message; the driver re-sends on stalls).
- ``Timers.call_later(delay_ms, callback)`` returns a handle with ``cancel()``; callbacks run on
  the driver's thread, one at a time; ``cancel_all()`` drops every pending callback.
- ``SignatureObserver.signed`` is called after a signature is durable and before it is sent;
  ``received`` with every validator signature a batch verification accepted; ``refused`` when
  the double-sign guard refused to sign. Observers must not raise.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine import consensus as cs

__all__ = ["Cancellable", "Counters", "NodeSeams", "NullObserver", "Outbox", "SignatureObserver",
           "Timers"]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    def call_later(self, delay_ms: float, callback: Callable[[], None]) -> Cancellable: ...

    def cancel_all(self) -> None: ...


#: Who a message goes to: a node key (bytes) in the node, an instance number in the simulator.
PeerId = Any


class Outbox(Protocol):
    def votes(self, votes: Sequence[cs.Vote], to: PeerId = None) -> None: ...

    def proposal(self, proposal: cs.Proposal, block: bytes, to: PeerId = None) -> None: ...


class SignatureObserver(Protocol):
    def signed(self, height: int, round: int, step: int, sign_bytes: bytes,
               signature: bytes) -> None: ...

    def received(self, public_keys: Sequence[bytes], messages: Sequence[bytes],
                 verdicts: Sequence[bool]) -> None: ...

    def refused(self, height: int, round: int, step: int, reason: str,
                replaying: bool) -> None: ...


class NullObserver:
    """Observes nothing (the default)."""

    def signed(self, height: int, round: int, step: int, sign_bytes: bytes,
               signature: bytes) -> None:
        pass

    def received(self, public_keys: Sequence[bytes], messages: Sequence[bytes],
                 verdicts: Sequence[bool]) -> None:
        pass

    def refused(self, height: int, round: int, step: int, reason: str,
                replaying: bool) -> None:
        pass


class Counters:
    """Named event counters (exported as ``engine_node_events{event=...}``)."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + n

    def get(self, name: str, default: int = 0) -> int:
        return self.values.get(name, default)


#: Wraps the node's outbox: (outbox, connected peers, counters) -> outbox.
OutboxWrapper = Callable[[Outbox, Callable[[], list[bytes]], Counters], Outbox]


@dataclass(frozen=True)
class NodeSeams:
    """What a caller may put between the node and the world (test tooling, instrumentation):
    a wrapper around the outbox, a signature observer, and a chaos transport for the peer set
    (``engine.net.chaos.Chaos``). The defaults change nothing."""

    wrap_outbox: OutboxWrapper | None = None
    observer: SignatureObserver | None = None
    chaos: Any = None
