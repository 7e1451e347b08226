"""Deterministic weighted round-robin proposer selection.

The schedule is the "smooth" weighted round-robin: every step each validator's priority grows by
its power, the highest priority (lowest index on a tie) proposes and drops by the total power.
Over one period of ``total / gcd(powers)`` steps each validator proposes exactly
``power / gcd`` times, evenly spread, and the priorities return to zero, so the schedule is
periodic and ``proposer(h, r) = schedule[(h + r) % period]``: every node computes the same answer
from the validator set alone. A schedule longer than ``limits.proposer_schedule_len_max`` is built
from powers scaled down to fit (still deterministic; weights become approximate).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine import limits


def _normalised(powers: Sequence[int]) -> list[int]:
    g = 0
    for p in powers:
        g = math.gcd(g, int(p))
    weights = [int(p) // g for p in powers]
    total = sum(weights)
    cap = limits.proposer_schedule_len_max
    if total > cap:
        # Scale down, keeping everyone at least 1; rounding makes the weights approximate.
        weights = [max(1, w * cap // total) for w in weights]
    return weights


def build_schedule(powers: Sequence[int]) -> np.ndarray:
    """One period of the weighted round-robin as an int32 array of validator indices."""
    if len(powers) == 0:
        raise ValueError("powers must not be empty")
    weights = np.array(_normalised(powers), dtype=np.int64)
    total = int(weights.sum())
    priority = np.zeros(len(weights), dtype=np.int64)
    schedule = np.empty(total, dtype=np.int32)
    for step in range(total):
        priority += weights
        best = int(np.argmax(priority))  # the first maximum: lowest index on a tie
        priority[best] -= total
        schedule[step] = best
    return schedule


class ProposerSchedule:
    """``proposer(height, round)`` for one validator set."""

    __slots__ = ("schedule",)

    def __init__(self, powers: Sequence[int]):
        self.schedule = build_schedule(powers)

    def proposer(self, height: int, round: int) -> int:
        return int(self.schedule[(height + round) % len(self.schedule)])
