"""Continuous invariant checks of a simulated run.

- agreement: no two honest nodes decide different blocks at one height;
- validity: every honest decision is valid for the node that made it;
- no honest double-sign: an honest validator never signs two different sign bytes at one
  (height, round, step), across crashes and restarts;
- certificates: every commit certificate an honest node produces has more than 2/3 of the power
  and valid signatures (one batch verification + one native tally);
- recovery: a node rebuilt from its durable model after a crash has exactly the state it had;
- optimistic execution: a node executes early only a block it precommitted for, valid, of its
  current height, never while replaying; a decision that reuses an early result reuses the
  result of the decided block;
- liveness is checked by the world (after the faults stop).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine import hashing
from engine.consensus import Decide, ProtocolError, VoteType, vote_sign_bytes
from engine.sim.crypto_cache import cached_verify_batch

if TYPE_CHECKING:
    from engine.sim.world import SimNode, World

#: Violations kept per seed (the first ones tell the story).
VIOLATIONS_MAX = 20


class Checker:
    def __init__(self, world: World):
        self.world = world
        self.violations: list[str] = []
        self.decided: dict[int, bytes] = {}
        self.signed: dict[tuple[int, int, int, int], bytes] = {}
        self.crash_snapshot: dict[int, tuple] = {}
        self.rounds_total = 0
        self.decisions = 0
        self.speculations = 0
        self.speculations_reused = 0

    def violation(self, text: str) -> None:
        if len(self.violations) < VIOLATIONS_MAX:
            self.violations.append(f"t={self.world.now_ms}ms {text}")

    def on_signed(self, node: SimNode, height: int, round: int, step: int,
                  sign_bytes: bytes) -> None:
        if not node.honest:
            return
        key = (node.validator, height, round, step)
        prev = self.signed.setdefault(key, sign_bytes)
        if prev != sign_bytes:
            self.violation(f"honest double-sign by validator {node.validator} at "
                           f"(h={height}, r={round}, step={step})")

    def on_decide(self, node: SimNode, a: Decide) -> None:
        if not node.honest:
            return
        self.decisions += 1
        self.rounds_total += a.round + 1
        first = self.decided.setdefault(a.height, a.block_hash)
        if first != a.block_hash:
            self.violation(f"fork at height {a.height}: {first.hex()[:16]} vs "
                           f"{a.block_hash.hex()[:16]} (instance {node.instance})")
        if not node.core.is_valid(a.height, a.block):
            self.violation(f"invalid block decided at height {a.height} by {node.instance}")
        cert = a.certificate
        if (cert.height, cert.round, cert.block_hash) != (a.height, a.round, a.block_hash):
            self.violation(f"certificate does not match the decision at height {a.height}")
        try:
            # Against the set that signs this height (the canonical history).
            cert.verify(node.core.chain_id, self.world.history.set_at(a.height),
                        cached_verify_batch)
        except ProtocolError as e:
            self.violation(f"bad commit certificate at height {a.height}: {e}")

    def on_speculate(self, node: SimNode, height: int, block_hash: bytes,
                     block: bytes) -> None:
        where = f"instance {node.instance}: early execution at height {height}"
        if node.driver.replaying:
            self.violation(f"{where} while replaying its WAL")
        if height != len(node.decided) + 1 or height != node.core.height:
            self.violation(f"{where}, not its current height ({len(node.decided) + 1})")
        if node.core.hash_block(block) != block_hash:
            self.violation(f"{where} of a block that is not {block_hash.hex()[:16]}")
        elif not node.core.is_valid(height, block):
            self.violation(f"{where} of an invalid block")
        if node.honest and not any(
                self.signed.get((node.validator, height, r, int(VoteType.PRECOMMIT) + 1))
                == vote_sign_bytes(node.core.chain_id, VoteType.PRECOMMIT, height, r,
                                   block_hash)
                for r in range(node.core.round + 1)):
            self.violation(f"{where} of a block it has not precommitted for")

    def on_reuse(self, node: SimNode, a: Decide, result: bytes) -> None:
        self.speculations_reused += 1
        if result != hashing.blake3(a.block):
            self.violation(f"instance {node.instance}: decision at height {a.height} reused "
                           "the early execution of another block")

    def on_restart(self, node: SimNode) -> None:
        before = self.crash_snapshot.pop(node.instance, None)
        if before is not None and before != node.core.snapshot():
            self.violation(f"instance {node.instance}: state rebuilt from the WAL differs "
                           "from the state at the crash")
