"""Per-seed fault mixes ("swarm testing"): every rate and episode is drawn from the seed.

A ``FaultPlan`` says how the network delays, loses and duplicates messages, which partitions
(symmetric, one-way, or a twins split) open and heal when, which nodes crash and restart, and
when all faults stop (``faults_end_ms``), after which liveness is checked.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

BEHAVIOURS = ("twin", "equivocate", "silent", "invalid")
#: WAL records a crash may lose from the tail (0: intact); the largest loses every record of
#: the unfinished heights.
WAL_LOSS_CHOICES = (0, 0, 0, 1, 2, 5, 20, 1_000_000)


@dataclass(frozen=True)
class Partition:
    start_ms: int
    end_ms: int
    kind: str                 # "symmetric", "one-way" (side cannot send out) or "twins"
    side: frozenset[int]      # instance ids on one side

    def blocks(self, now_ms: int, src: int, dst: int) -> bool:
        if not self.start_ms <= now_ms < self.end_ms:
            return False
        if self.kind == "one-way":
            return src in self.side and dst not in self.side
        return (src in self.side) != (dst in self.side)


@dataclass(frozen=True)
class Crash:
    instance: int
    at_ms: int
    down_ms: int
    #: WAL records lost from the tail at the crash (a torn write, a bad disk); the decided
    #: blocks and the signer record survive, the signer's history only where its WAL did.
    wal_lost: int = 0


@dataclass
class FaultPlan:
    delay_kind: str
    delay_mean_ms: float
    loss: float
    duplicate: float
    faults_end_ms: int
    #: Pause between a decision and the next height's Start (CometBFT's timeout_commit).
    commit_delay_ms: int = 0
    partitions: list[Partition] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    behaviours: dict[int, str] = field(default_factory=dict)   # validator index -> behaviour

    def describe(self) -> str:
        parts = ", ".join(f"{p.kind}[{p.start_ms}-{p.end_ms}]" for p in self.partitions)
        crashes = ", ".join(f"i{c.instance}@{c.at_ms}+{c.down_ms}"
                            + (f"-wal{c.wal_lost}" if c.wal_lost else "") for c in self.crashes)
        return (f"delay={self.delay_kind}/{self.delay_mean_ms:.0f}ms loss={self.loss:.2f} "
                f"commit_delay={self.commit_delay_ms}ms "
                f"dup={self.duplicate:.2f} faults_end={self.faults_end_ms}ms "
                f"partitions=[{parts}] crashes=[{crashes}] byzantine={self.behaviours}")

    def delay_ms(self, rng: random.Random, after_faults: bool) -> int:
        m = self.delay_mean_ms
        if self.delay_kind == "constant":
            d = m
        elif self.delay_kind == "uniform":
            d = rng.uniform(0, 2 * m)
        else:  # long tail: exponential, capped after the faults stop so delivery is timely
            d = rng.expovariate(1 / m) if m > 0 else 0
        return int(min(d, 4 * m + 1) if after_faults else d)


def draw_plan(rng: random.Random, behaviours: dict[int, str],
              instances_of: dict[int, list[int]], zero_delay: bool = False) -> FaultPlan:
    """Draw a fault mix. ``instances_of`` maps validator index -> instance ids (twins have two)."""
    if zero_delay:
        return FaultPlan("constant", 0.0, 0.0, 0.0, 0, behaviours=behaviours)
    plan = FaultPlan(
        delay_kind=rng.choice(("constant", "uniform", "exponential")),
        delay_mean_ms=rng.choice((1, 5, 10, 20, 50)),
        loss=0.0 if rng.random() < 0.3 else rng.uniform(0, 0.3),
        duplicate=0.0 if rng.random() < 0.5 else rng.uniform(0, 0.2),
        faults_end_ms=rng.randint(1000, 6000),
        commit_delay_ms=rng.choice((0, 10, 50, 100)),
        behaviours=behaviours,
    )
    all_instances = sorted(i for ids in instances_of.values() for i in ids)
    for _ in range(rng.randint(0, 3)):
        start = rng.randint(0, plan.faults_end_ms)
        end = min(plan.faults_end_ms, start + rng.randint(200, 4000))
        has_twins = any(len(ids) == 2 for ids in instances_of.values())
        kind = rng.choice(("symmetric", "one-way") + ("twins",) * (3 if has_twins else 1))
        if kind == "twins":
            side = _twins_side(rng, instances_of)
        else:
            side = frozenset(rng.sample(all_instances, rng.randint(1, max(1, len(all_instances) - 1))))
        plan.partitions.append(Partition(start, end, kind, side))
    for _ in range(rng.randint(0, 2)):
        at = rng.randint(0, plan.faults_end_ms)
        plan.crashes.append(Crash(rng.choice(all_instances), at, rng.randint(50, 3000)))
    return plan


def _twins_side(rng: random.Random, instances_of: dict[int, list[int]]) -> frozenset[int]:
    """One side of a split that puts each twin of a pair on a different side and the other
    validators half on each side: the partition that lets twins with >= 1/3 power fork."""
    side = set()
    flip = rng.randint(0, 1)
    for ids in instances_of.values():
        if len(ids) == 2:
            side.add(ids[rng.randint(0, 1)])
        else:
            flip ^= 1
            if flip:
                side.add(ids[0])
    return frozenset(side)


def draw_wal_losses(rng: random.Random, plan: FaultPlan, validator_of: Sequence[int],
                    powers: Sequence[int], byzantine: set[int]) -> None:
    """Let some crashes of honest validators lose the tail of the WAL (up to all of it). This is
    no amnesia: the signer record keeps every own signature of its height outside the WAL
    (``signer_history``), so the restarted node restores its votes and its lock exactly, and
    losses are drawn for any number of honest validators, more than 1/3 of the power included.
    ``rng`` is separate from the plan's, so every other fault of a seed stays as it was.
    (``powers`` is kept for the callers: no power budget applies any more.)"""
    crashes = []
    for c in plan.crashes:
        lost = rng.choice(WAL_LOSS_CHOICES)
        if validator_of[c.instance] in byzantine:
            lost = 0
        crashes.append(replace(c, wal_lost=lost))
    plan.crashes = crashes
