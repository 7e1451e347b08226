"""The simulated world: nodes running the real consensus core under a virtual clock and a seeded
network, with the faults of a ``FaultPlan``, checked continuously by a ``Checker``.

Everything is driven by one heap of (virtual time ms, sequence, event); all randomness comes from
``random.Random(seed)``, so a seed replays exactly. Each node runs the node's own driver
(``engine.node.driver.ConsensusDriver``) and journal (``engine.node.wal.Journal``, with the
node's WAL record codec) over simulated ports: timers on the virtual clock, an outbox onto the
seeded network (where the Byzantine behaviours live), and an in-memory model of the store's WAL
and signer record (engine/sim/storage.py). So the simulator checks the driver real nodes run:
WAL before ``step``, persist before send, commit, replay, Resume and stall gossip. A crash drops
memory (core, timers, unwritten records); the restart rebuilds the node as a node restarts
(signer state from the store, WAL replay through the driver) and the checker requires the
rebuilt state to equal the state at the crash when nothing durable was lost. A crash may also
lose the tail of the WAL (``Crash.wal_lost``): the signer record and its history (every own
signature of its height) survive, the rebuilt core is behind what it signed, and the driver's
Resume brings it back with its lock; from then on the guard must never refuse an honest node.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from engine import hashing
from engine.consensus import (
    NIL,
    CommitCertificate,
    CommitReceived,
    ConsensusCore,
    Decide,
    DuplicateVoteEvidence,
    Proposal,
    ProposalReceived,
    ProtocolError,
    Resume,
    SignerGuard,
    Start,
    TimeoutConfig,
    TimeoutFired,
    Validator,
    ValidatorSet,
    ValueReady,
    Vote,
    VoteReceived,
    VoteType,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from engine.consensus.core import _event_height
from engine.crypto import SigningKey
from engine.node.driver import ConsensusDriver
from engine.node.ports import Counters
from engine.node.valset import ValidatorHistory
from engine.node.wal import Journal
from engine.sim.blocks import GENESIS_HASH, SimBlock, make_validity
from engine.sim.checker import Checker
from engine.sim.crypto_cache import cached_verify, cached_verify_batch
from engine.sim.faults import BEHAVIOURS, FaultPlan, draw_plan, draw_wal_losses
from engine.sim.storage import MemoryWalStore
from engine.sim.valsets import draw_changes
from engine.valset import ValidatorUpdate

CHAIN_ID = b"engine-sim"
SIM_TIMEOUTS = TimeoutConfig(propose_ms=400, propose_delta_ms=100, prevote_ms=200,
                             prevote_delta_ms=100, precommit_ms=200, precommit_delta_ms=100)
#: How long a node may sit in one (height, round, step) before it re-gossips its messages.
GOSSIP_INTERVAL_MS = 300
#: Evidence items a proposer puts in one block.
BLOCK_EVIDENCE_MAX = 4


@dataclass
class SimConfig:
    validators: int = 4
    byzantine: int = 0
    heights: int = 5
    behaviours: tuple[str, ...] = BEHAVIOURS
    #: After the faults stop, every honest node must decide this many more heights ...
    liveness_heights: int = 2
    #: ... within this much virtual time.
    liveness_bound_ms: int = 120_000
    zero_delay: bool = False
    powers: tuple[int, ...] | None = None
    #: Buffer WAL records as the node does (written with the next own signature or after
    #: ``limits.wal_flush_ms``): a crash then also loses what was not written yet. Off by
    #: default, so a crash that loses nothing can be checked to rebuild the exact state.
    wal_buffered: bool = False
    #: Validator-set changes drawn per seed (engine/sim/valsets.py); 0: a fixed set.
    valset_changes: int = 0
    #: Extra honest nodes that start outside the set (they may join), with set changes.
    spare_validators: int = 2


@dataclass
class SeedResult:
    seed: int
    heights_decided: int
    rounds_total: int
    decisions: int
    messages: int
    virtual_ms: int
    evidence_committed: int
    violations: list[str] = field(default_factory=list)
    plan: str = ""
    #: Crashes that lost records from the WAL tail.
    wal_losses: int = 0
    #: Validator-set changes that took effect within the decided heights.
    valset_changes: int = 0
    #: Votes a removed validator kept sending that honest nodes refused.
    removed_votes_refused: int = 0
    #: Blocks executed before their decision, and decisions that reused such a result.
    speculations: int = 0
    speculations_reused: int = 0


_KEYS: dict[int, SigningKey] = {}


def validator_key(i: int) -> SigningKey:
    """Fixed keys per validator index, so verification caches carry across seeds."""
    key = _KEYS.get(i)
    if key is None:
        key = _KEYS[i] = SigningKey.from_seed(hashing.blake3(b"engine/sim/key/%d" % i))
    return key


class _SimTimers:
    """The driver's timers on the world's virtual clock; a crash (new epoch) voids them all."""

    def __init__(self, node: SimNode):
        self.node = node

    def call_later(self, delay_ms: float, callback) -> _Call:
        call = _Call(callback)
        self.node.world.schedule(delay_ms, "call", self.node.instance, self.node.epoch, call)
        return call

    def cancel_all(self) -> None:
        pass  # the epoch changes at a crash, which voids every pending call


class _Call:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback):
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _SimOutbox:
    """Own messages onto the seeded network, with the node's Byzantine behaviour."""

    def __init__(self, node: SimNode):
        self.node = node

    def votes(self, votes, to: int | None = None) -> None:
        for v in votes:
            self.node.send_vote(v, to)

    def proposal(self, proposal: Proposal, block: bytes, to: int | None = None) -> None:
        self.node.send_proposal(proposal, block, to)


class _SimObserver:
    """The checker sees every signature before it leaves, and every refusal after recovery."""

    def __init__(self, node: SimNode):
        self.node = node

    def signed(self, height: int, round: int, step: int, sign_bytes: bytes,
               signature: bytes) -> None:
        self.node.world.checker.on_signed(self.node, height, round, step, sign_bytes)

    def received(self, public_keys, messages, verdicts) -> None:
        pass

    def refused(self, height: int, round: int, step: int, reason: str,
                replaying: bool) -> None:
        node = self.node
        if node.honest and not replaying:
            # Replaying a WAL that lost records may ask again for a signature whose record
            # was lost with them (refused: harmless). Afterwards, a refusal means the core is
            # behind its signer record: it would stay silent.
            node.world.checker.violation(
                f"instance {node.instance}: own guard refused (h={height}, r={round}, "
                f"step={step}) after recovery: {reason}")


class SimNode:
    """One instance: the node's own driver (engine/node/driver.py) around a ConsensusCore, over
    simulated ports and storage (twins are two instances, one key). The simulator supplies the
    world (network, clock, block values, catch-up); the driver does what it does in a node."""

    def __init__(self, world: World, instance: int, validator: int, behaviour: str | None):
        self.world = world
        self.instance = instance
        self.validator = validator
        self.behaviour = behaviour
        self.key = validator_key(validator)
        # Durable model: survives crashes.
        self.store = MemoryWalStore()
        # height -> (block hash, block, certificate)
        self.decided: dict[int, tuple[bytes, bytes, CommitCertificate]] = {}
        self.evidence_pool: dict[bytes, DuplicateVoteEvidence] = {}
        self.evidence_committed: set[bytes] = set()
        self.up = True
        self.epoch = 0
        self.counters = Counters()
        self.driver: ConsensusDriver = None  # type: ignore[assignment]  # boot() builds it
        self.last_hrs: tuple = ()
        #: Which set signs each height, as this node knows it (extended on its commits).
        self.history = ValidatorHistory(world.validator_set)
        #: The block executed before its decision (optimistic execution, as the node's
        #: committer does it): (height, block hash, its "execution": BLAKE3 of the block).
        #: Memory only: a crash drops it.
        self.speculation: tuple[int, bytes, bytes] | None = None
        #: The index this validator last held (a removed one keeps sending with it).
        self.last_index: int | None = None

    def boot(self) -> None:
        """Build the driver (once the world's fault plan exists)."""
        self.driver = self._new_driver()

    @property
    def honest(self) -> bool:
        return self.behaviour is None

    @property
    def core(self) -> ConsensusCore:
        return self.driver.core

    def _parent_of(self, height: int) -> bytes | None:
        if height == 1:
            return GENESIS_HASH
        d = self.decided.get(height - 1)
        return d[0] if d else None

    def _new_driver(self) -> ConsensusDriver:
        w = self.world
        timers = _SimTimers(self)
        if w.config.wal_buffered:
            journal = Journal(self.store, timers)
        else:  # write-through: a crash loses only what lose_tail takes
            journal = Journal(self.store, timers, pending_bytes_max=0)
        height = len(self.decided) + 1
        core = ConsensusCore(
            CHAIN_ID, self.history.set_at(height),
            SignerGuard(self.key, journal.restore_signer_state()), height=height,
            is_valid=make_validity(CHAIN_ID, w.validator_set, cached_verify,
                                   cached_verify_batch, self._parent_of, self.history.at),
            verify=cached_verify, timeouts=SIM_TIMEOUTS, validators_at=self.history.at)
        return ConsensusDriver(core, journal=journal, outbox=_SimOutbox(self), timers=timers,
                               values=self, committer=self, evidence=self,
                               observer=_SimObserver(self), counters=self.counters,
                               start_delay_ms=w.plan.commit_delay_ms)

    # --- the driver's value source, committer and evidence sink --------------------------------

    def request(self, height: int, round: int) -> None:
        event = self._make_value(height, round)
        self.driver.timers.call_later(0, lambda: self.feed(event))

    def speculate(self, height: int, block_hash: bytes, block: bytes) -> None:
        """The driver sent an own precommit for ``block_hash``: execute it later (the next
        virtual instant, as the node defers it), keep the result for the decision."""
        self.world.checker.on_speculate(self, height, block_hash, block)
        self.driver.timers.call_later(0, lambda: self._execute_early(height, block_hash, block))

    def _execute_early(self, height: int, block_hash: bytes, block: bytes) -> None:
        if len(self.decided) != height - 1:
            return  # decided before its turn came (the node's committer checks its tip)
        self.speculation = (height, block_hash, hashing.blake3(block))
        self.world.checker.speculations += 1

    def commit(self, a: Decide) -> None:
        if a.height in self.decided:
            return
        held, self.speculation = self.speculation, None
        if held is not None and held[:2] == (a.height, a.block_hash):
            self.world.checker.on_reuse(self, a, held[2])
        self.decided[a.height] = (a.block_hash, a.block, a.certificate)
        change = self.history.next_change(a.height, self.world.changes.get(a.height, []))
        if change is not None:
            self.history.record(*change)
        self.history.committed(a.height)
        self.store.drop_decided(a.height)
        block = SimBlock.decode(a.block)
        for e in block.evidence:
            self.evidence_committed.add(e.encode())
        self.world.checker.on_decide(self, a)

    def report(self, evidence: DuplicateVoteEvidence) -> None:
        self.evidence_pool[evidence.encode()] = evidence

    def _make_value(self, height: int, round: int) -> ValueReady:
        w = self.world
        parent = self._parent_of(height) or GENESIS_HASH
        evidence = tuple(e for k, e in sorted(self.evidence_pool.items())
                         if k not in self.evidence_committed
                         and e.height < height)[:BLOCK_EVIDENCE_MAX]
        payload = w.rng.randbytes(w.rng.randint(0, 64))
        parent_commit = self.decided.get(height - 1)
        last_commit = parent_commit[2].encode() if parent_commit else b""
        block = SimBlock(height, parent, self.instance, self.behaviour == "invalid",
                         evidence, last_commit, payload)
        return ValueReady(height, round, block.encode())

    # --- inputs --------------------------------------------------------------------------------

    def feed(self, event) -> None:
        """Through the driver: WAL first, then step, then execute (an input the core refuses
        leaves no record and changes nothing)."""
        if not self.up:
            return
        try:
            self.driver.input(event, _wal_height(event))
        except ProtocolError:
            pass

    # --- outputs (the outbox), with the Byzantine behaviours -----------------------------------

    def _targets(self, to: int | None) -> list[int]:
        return self.world.peers(self.instance) if to is None else [to]

    def send_vote(self, vote: Vote, to: int | None) -> None:
        w = self.world
        if self.behaviour == "silent":
            return
        if self.behaviour == "equivocate" and vote.validator_index == self.core.own_index:
            other = w.rng.randbytes(32) if vote.block_hash == NIL else NIL
            sb = vote_sign_bytes(CHAIN_ID, vote.type, vote.height, vote.round, other)
            forged = Vote(vote.type, vote.height, vote.round, other, vote.validator_index,
                          self.key.sign(sb))  # bypasses the guard on purpose
            for dst in self._targets(to):
                w.send(self.instance, dst, ("vote", forged if w.rng.random() < 0.5 else vote))
            return
        for dst in self._targets(to):
            w.send(self.instance, dst, ("vote", vote))

    def send_proposal(self, p: Proposal, block: bytes, to: int | None) -> None:
        w = self.world
        if self.behaviour == "silent":
            return
        if self.behaviour == "equivocate" and p.proposer_index == self.core.own_index:
            b = SimBlock.decode(block)
            alt = SimBlock(b.height, b.parent_hash, b.proposer_tag, False, (), b.last_commit,
                           b.payload + b"equivocation").encode()
            ah = hashing.blake3(alt)
            sb = proposal_sign_bytes(CHAIN_ID, p.height, p.round, p.pol_round, ah)
            alt_p = Proposal(p.height, p.round, p.pol_round, ah, p.proposer_index,
                             self.key.sign(sb))
            for dst in self._targets(to):
                msg = ("proposal", alt_p, alt) if w.rng.random() < 0.5 else ("proposal", p, block)
                w.send(self.instance, dst, msg)
            return
        for dst in self._targets(to):
            w.send(self.instance, dst, ("proposal", p, block))

    # --- gossip, catch-up, crash ---------------------------------------------------------------

    def gossip(self) -> None:
        """When stuck in one (height, round, step), the driver re-sends what a node re-sends
        on a stall (own messages, the proof of lock, the round's proposals)."""
        core = self.core
        hrs = (core.height, core.round, core.step_)
        if hrs == self.last_hrs:
            self.driver.relay_on_stall(len(self.world.validator_set))
        self.last_hrs = hrs
        if core.own_index is not None:
            self.last_index = core.own_index
        elif self.last_index is not None and self.honest:
            self.zombie_votes()

    def zombie_votes(self) -> None:
        """A removed validator that keeps sending: a signed prevote at the current height
        under the index it held (bypassing its guard, as a misconfigured or hostile node
        would). Every node must refuse it: the index is someone else's, or out of range."""
        w, core = self.world, self.core
        assert self.last_index is not None
        bh = w.rng.randbytes(32)
        sb = vote_sign_bytes(CHAIN_ID, 1, core.height, core.round, bh)
        vote = Vote(VoteType.PREVOTE, core.height, core.round, bh, self.last_index,
                    self.key.sign(sb))
        for dst in self._targets(None):
            w.send(self.instance, dst, ("vote", vote, "removed"))
    def on_message(self, src: int, msg: tuple) -> None:
        kind = msg[0]
        if kind == "vote" and len(msg) == 3:  # from a removed validator
            self._refuse_removed(msg[1])
        elif kind == "vote":
            self._catch_up(src, msg[1].height)
            if self.driver.height_kept(msg[1].height):
                self.feed(VoteReceived(msg[1]))
        elif kind == "proposal":
            self._catch_up(src, msg[1].height)
            if self.driver.height_kept(msg[1].height):
                self.feed(ProposalReceived(msg[1], msg[2]))
        elif kind == "commit":
            self.feed(CommitReceived(msg[1], msg[2]))
        elif kind == "need":
            d = self.decided.get(msg[1])
            if d is not None:
                self.world.send(self.instance, src, ("commit", d[1], d[2]))

    def _refuse_removed(self, vote: Vote) -> None:
        """A removed validator's vote goes through the driver like any other; it must be
        refused (ProtocolError) whenever this node judges it (its height is the current one)."""
        if not self.up or vote.height != self.core.height:
            return
        try:
            self.driver.input(VoteReceived(vote), vote.height)
        except ProtocolError:
            self.world.removed_votes_refused += 1
            return
        self.world.checker.violation(f"instance {self.instance} accepted a vote of removed "
                                     f"validator {self.validator} at height {vote.height}")

    def _catch_up(self, src: int, height: int) -> None:
        if height < self.core.height:
            d = self.decided.get(height)
            if d is not None:
                self.world.send(self.instance, src, ("commit", d[1], d[2]))
        elif height > self.core.height:
            self.world.send(self.instance, src, ("need", self.core.height))

    def crash(self, wal_lost: int = 0) -> None:
        """Memory is gone (the core, timers, unwritten WAL records); a damaged disk may also
        lose the last ``wal_lost`` WAL records."""
        unwritten = len(self.driver.journal.pending)
        lost = self.store.lose_tail(wal_lost)
        if lost or unwritten:
            self.world.wal_losses += 1
        elif self.core.started:
            # Nothing durable was lost: the rebuilt state must be exactly this one.
            self.world.checker.crash_snapshot[self.instance] = self.core.snapshot()
        self.driver.running = False
        self.up = False
        self.epoch += 1
        self.speculation = None

    def restart(self) -> None:
        """Rebuild from the durable model as a node does: signer state from the store, the
        WAL replayed through the driver, then Resume and re-send."""
        self.up = True
        self.epoch += 1
        self.driver = self._new_driver()
        self.driver.replay()
        self.world.checker.on_restart(self)
        self.driver.resume()
        self.driver.resend_own()


def _wal_height(event) -> int:
    if isinstance(event, (TimeoutFired, ValueReady, Start, Resume)):
        return event.height
    return _event_height(event)


class World:
    def __init__(self, seed: int, config: SimConfig):
        self.seed = seed
        self.config = config
        self.rng = random.Random(seed)
        n = config.validators
        powers = config.powers or (1,) * n
        self.validator_set = ValidatorSet([Validator(validator_key(i).public_key, powers[i])
                                           for i in range(n)])
        byzantine = list(range(n - config.byzantine, n))
        behaviours = {v: self.rng.choice(config.behaviours) for v in byzantine}
        spares = config.spare_validators if config.valset_changes else 0
        self.changes: dict[int, list[ValidatorUpdate]] = {}
        if config.valset_changes:
            self.changes = draw_changes(
                random.Random(f"engine/sim/valsets/{seed}"), self.validator_set,
                [validator_key(i).public_key for i in range(n + spares)],
                {validator_key(v).public_key for v in byzantine}, config.valset_changes,
                config.heights)
        #: The canonical set history (the checker verifies certificates against it).
        self.history = ValidatorHistory(self.validator_set, committed_height=1 << 40)
        for h, updates in sorted(self.changes.items()):
            change = self.history.next_change(h, updates)
            assert change is not None
            self.history.record(*change)
        self.removed_votes_refused = 0
        self.nodes: list[SimNode] = []
        instances_of: dict[int, list[int]] = {}
        for v in range(n + spares):
            copies = 2 if behaviours.get(v) == "twin" else 1
            for _ in range(copies):
                node = SimNode(self, len(self.nodes), v, behaviours.get(v))
                instances_of.setdefault(v, []).append(node.instance)
                self.nodes.append(node)
        self.plan: FaultPlan = draw_plan(self.rng, behaviours, instances_of, config.zero_delay)
        draw_wal_losses(random.Random(f"engine/sim/wal-loss/{seed}"), self.plan,
                        [node.validator for node in self.nodes], powers, set(byzantine))
        self.wal_losses = 0
        for node in self.nodes:
            node.boot()
        byz_power = sum(powers[v] for v in byzantine)
        self.safe = 3 * byz_power < sum(powers)
        self.checker = Checker(self)
        self.now_ms = 0
        self._heap: list = []
        self._seq = 0
        self.messages = 0

    # --- scheduling and network ------------------------------------------------------------------

    def schedule(self, delay_ms: float, kind: str, *data) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self.now_ms + int(delay_ms), self._seq, kind, data))

    def peers(self, src: int) -> list[int]:
        return [n.instance for n in self.nodes if n.instance != src]

    def broadcast(self, src: int, msg: tuple) -> None:
        for dst in range(len(self.nodes)):
            if dst != src:
                self.send(src, dst, msg)

    def send(self, src: int, dst: int, msg: tuple) -> None:
        plan, rng = self.plan, self.rng
        faulty = self.now_ms < plan.faults_end_ms
        if faulty:
            if any(p.blocks(self.now_ms, src, dst) for p in plan.partitions):
                return
            if plan.loss and rng.random() < plan.loss:
                return
            if plan.duplicate and rng.random() < plan.duplicate:
                self.schedule(plan.delay_ms(rng, False), "deliver", src, dst, msg)
        self.schedule(plan.delay_ms(rng, not faulty), "deliver", src, dst, msg)

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> SeedResult:
        cfg, plan = self.config, self.plan
        for c in plan.crashes:
            self.now_ms = c.at_ms
            self.schedule(0, "crash", c.instance, c.wal_lost)
            self.schedule(c.down_ms, "restart", c.instance)
        self.now_ms = 0
        self.schedule(plan.faults_end_ms, "faults_end")
        for node in self.nodes:
            self.schedule(GOSSIP_INTERVAL_MS, "gossip", node.instance)
            node.driver.start_height(1)
        deadline = plan.faults_end_ms + cfg.liveness_bound_ms
        targets: dict[int, int] | None = None
        while self._heap:
            t, _, kind, data = heapq.heappop(self._heap)
            if t > deadline:
                break
            self.now_ms = t
            self._dispatch(kind, data)
            if kind == "faults_end":
                targets = {n.instance: max(cfg.heights, len(n.decided) + cfg.liveness_heights)
                           for n in self.nodes if n.honest}
            if self.checker.violations and not self.safe:
                break  # a fork was found; nothing more to learn from this seed
            if targets is not None and all(len(self.nodes[i].decided) >= h
                                           for i, h in targets.items()):
                break
        if self.safe and (targets is None or any(len(self.nodes[i].decided) < h
                                                 for i, h in targets.items())):
            lag = {i: len(self.nodes[i].decided) for i in (targets or {})}
            self.checker.violation(f"liveness: honest heights {lag} did not reach {targets} "
                                   f"within {cfg.liveness_bound_ms} ms after the faults stopped")
        return self._result()

    def _dispatch(self, kind: str, data: tuple) -> None:
        if kind == "deliver":
            src, dst, msg = data
            node = self.nodes[dst]
            if node.up:
                self.messages += 1
                node.on_message(src, msg)
        elif kind == "call":
            inst, epoch, call = data
            node = self.nodes[inst]
            if node.up and node.epoch == epoch and not call.cancelled:
                call.callback()
        elif kind == "gossip":
            node = self.nodes[data[0]]
            if node.up:
                node.gossip()
            self.schedule(GOSSIP_INTERVAL_MS, "gossip", data[0])
        elif kind == "crash" and self.nodes[data[0]].up:
            self.nodes[data[0]].crash(data[1])
        elif kind == "restart" and not self.nodes[data[0]].up:
            self.nodes[data[0]].restart()

    def _result(self) -> SeedResult:
        honest = [n for n in self.nodes if n.honest]
        heights = min((len(n.decided) for n in honest), default=0)
        rounds = self.checker.rounds_total
        committed: set[bytes] = set()
        for n in honest:
            committed |= n.evidence_committed
        changed = sum(1 for start, _ in self.history.changes()[1:] if start <= heights)
        return SeedResult(self.seed, heights, rounds, self.checker.decisions, self.messages,
                          self.now_ms, len(committed), list(self.checker.violations),
                          self.plan.describe(), self.wal_losses, changed,
                          self.removed_votes_refused, self.checker.speculations,
                          self.checker.speculations_reused)


def run_seed(seed: int, config: SimConfig) -> SeedResult:
    return World(seed, config).run()
