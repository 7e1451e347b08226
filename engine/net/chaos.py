"""Test-only chaos layer for the engine's own transport: latency, reordering, duplication and
loss of whole messages, applied where a message is queued for a peer.

This kernel has no ``tc netem``, so the fault-injection runner (engine/faults) cannot delay or
duplicate packets below TCP; it injects those faults one level up instead. A ``Chaos`` object
is attached to a :class:`engine.net.peers.PeerSet` as ``peers.chaos`` only by
``engine.faults.hooks`` (which needs ``ENGINE_TEST_FAULTS=1`` and a ``testing.toml`` in the
node home); a real node never has one, and ``PeerSet.send`` then takes its ordinary path.

Faults, drawn from a seeded generator so a run can be repeated:

- ``drop_pct``: the message is never queued (the link itself stays up, like a lost datagram);
- ``duplicate_pct``: the message is queued twice;
- ``latency_ms`` + a uniform ``jitter_ms``: queued later; jitter larger than the gap between
  messages reorders them.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from engine.net import codec

#: Bounds on what a test configuration may ask for (a typo must not stall a run for hours).
CHAOS_LATENCY_MS_MAX = 10_000
CHAOS_PCT_MAX = 100.0

__all__ = ["Chaos", "ChaosConfig"]


@dataclass(frozen=True)
class ChaosConfig:
    """Fault rates of the chaos layer; all zero means no fault at all."""

    latency_ms: int = 0
    jitter_ms: int = 0
    duplicate_pct: float = 0.0
    drop_pct: float = 0.0
    #: Message kinds affected (names from engine.net.codec.KIND_NAMES); empty means all.
    kinds: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= CHAOS_LATENCY_MS_MAX:
                raise ValueError(f"{name} must be an integer in 0..{CHAOS_LATENCY_MS_MAX}, "
                                 f"not {value!r}")
        for name in ("duplicate_pct", "drop_pct"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= CHAOS_PCT_MAX:
                raise ValueError(f"{name} must be a percentage in 0..100, not {value!r}")
        unknown = set(self.kinds) - set(codec.KIND_NAMES.values())
        if unknown:
            raise ValueError(f"kinds names unknown message kinds {sorted(unknown)}")
        if type(self.seed) is not int:
            raise ValueError(f"seed must be an integer, not {self.seed!r}")

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ChaosConfig:
        if not isinstance(obj, dict):
            raise TypeError(f"chaos settings must be a table, not {type(obj).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"unknown chaos settings {unknown}")
        values = dict(obj)
        if "kinds" in values:
            values["kinds"] = tuple(values["kinds"])
        return cls(**values)


Deliver = Callable[[bytes, bytes], bool]


class Chaos:
    """Decides, per message, whether it is dropped, duplicated or delayed, then delivers."""

    def __init__(self, config: ChaosConfig):
        self.config = config
        self._rng = random.Random(config.seed)
        self._kinds = {k for k, name in codec.KIND_NAMES.items() if name in config.kinds}
        #: What was done, for the test report: dropped, duplicated, delayed.
        self.counts: Counter[str] = Counter()

    def _affects(self, message: bytes) -> bool:
        # The kind is the first element of the msgpack array: a positive fixint at byte 1.
        return not self._kinds or (len(message) > 1 and message[1] in self._kinds)

    def intercept(self, peer_key: bytes, message: bytes, deliver: Deliver) -> bool:
        """Send ``message`` to ``peer_key`` through ``deliver`` with the configured faults.
        Returns what an ordinary send would (True when queued or deliberately lost)."""
        cfg = self.config
        if not self._affects(message):
            return deliver(peer_key, message)
        rng = self._rng
        if cfg.drop_pct and rng.random() * 100 < cfg.drop_pct:
            self.counts["dropped"] += 1
            return True
        copies = 2 if cfg.duplicate_pct and rng.random() * 100 < cfg.duplicate_pct else 1
        if copies == 2:
            self.counts["duplicated"] += 1
        ok = True
        for _ in range(copies):
            delay_ms = cfg.latency_ms + (rng.uniform(0, cfg.jitter_ms) if cfg.jitter_ms else 0)
            if delay_ms <= 0:
                ok = deliver(peer_key, message) and ok
            else:
                self.counts["delayed"] += 1
                asyncio.get_running_loop().call_later(delay_ms / 1000, deliver, peer_key,
                                                      message)
        return ok
