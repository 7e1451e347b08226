"""The simulated world: nodes running the real consensus core under a virtual clock and a seeded
network, with the faults of a ``FaultPlan``, checked continuously by a ``Checker``.

Everything is driven by one heap of (virtual time ms, sequence, event); all randomness comes from
``random.Random(seed)``, so a seed replays exactly. Each node's driver does what the real node
driver does: it writes every input to its WAL model before ``step``, persists the signer state
with each signed message before "sending" it, stores decided blocks and certificates, re-gossips
its own messages when stuck, and serves commits to peers that are behind. A crash drops the
in-memory core and its timers; the restart rebuilds the core from the durable model (decided
blocks, signer state, WAL replay) and the checker requires the rebuilt state to equal the state
at the crash. A crash may also lose the tail of the WAL (``Crash.wal_lost``): the signer record
survives but its history only where the WAL did (as in the node, which keeps it there), the
rebuilt core is behind what it signed, and the driver feeds ``core.resume_event()`` after the
replay, as the node does; from then on the guard must never refuse an honest node.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from engine import hashing, limits
from engine.consensus import (
    NIL,
    BroadcastProposal,
    BroadcastVote,
    CommitCertificate,
    CommitReceived,
    ConsensusCore,
    Decide,
    DuplicateVoteEvidence,
    Proposal,
    ProposalReceived,
    ProtocolError,
    ReportEvidence,
    RequestValue,
    Resume,
    ScheduleTimeout,
    SignerGuard,
    SignerState,
    SignRefused,
    Start,
    TimeoutConfig,
    TimeoutFired,
    Validator,
    ValidatorSet,
    ValueReady,
    Vote,
    VoteReceived,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from engine.consensus.core import _event_height
from engine.consensus.events import Event
from engine.crypto import SigningKey
from engine.sim.blocks import GENESIS_HASH, SimBlock, make_validity
from engine.sim.checker import Checker
from engine.sim.crypto_cache import cached_verify, cached_verify_batch
from engine.sim.faults import BEHAVIOURS, FaultPlan, draw_plan, draw_wal_losses

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


_KEYS: dict[int, SigningKey] = {}


def validator_key(i: int) -> SigningKey:
    """Fixed keys per validator index, so verification caches carry across seeds."""
    key = _KEYS.get(i)
    if key is None:
        key = _KEYS[i] = SigningKey.from_seed(hashing.blake3(b"engine/sim/key/%d" % i))
    return key


class SimNode:
    """One instance: a driver around a ConsensusCore (twins are two instances, one key)."""

    def __init__(self, world: World, instance: int, validator: int, behaviour: str | None):
        self.world = world
        self.instance = instance
        self.validator = validator
        self.behaviour = behaviour
        self.key = validator_key(validator)
        # Durable model: survives crashes.
        self.signer_state = SignerState()
        self.wal: list[tuple[int, Event]] = []  # (core height when fed, event)
        # height -> (block hash, block, certificate)
        self.decided: dict[int, tuple[bytes, bytes, CommitCertificate]] = {}
        self.evidence_pool: dict[bytes, DuplicateVoteEvidence] = {}
        self.evidence_committed: set[bytes] = set()
        self.up = True
        self.epoch = 0
        self.core = self._new_core()
        self.last_hrs: tuple = ()
        #: (height, round, step) of each own signature -> the WAL record whose input led to it
        #: (the signer history keeps it only while that record survives a WAL loss).
        self.sig_marks: dict[tuple[int, int, int], tuple] = {}
        self.replaying = False

    @property
    def honest(self) -> bool:
        return self.behaviour is None

    def _parent_of(self, height: int) -> bytes | None:
        if height == 1:
            return GENESIS_HASH
        d = self.decided.get(height - 1)
        return d[0] if d else None

    def _new_core(self) -> ConsensusCore:
        w = self.world
        return ConsensusCore(
            CHAIN_ID, w.validator_set, SignerGuard(self.key, self.signer_state),
            height=len(self.decided) + 1,
            is_valid=make_validity(CHAIN_ID, w.validator_set, cached_verify,
                                   cached_verify_batch, self._parent_of),
            verify=cached_verify, timeouts=SIM_TIMEOUTS)

    # --- inputs -------------------------------------------------------------------------------

    def feed(self, event) -> None:
        """WAL first, then step, then execute the actions."""
        if not self.up:
            return
        self.wal.append((self.core.height, event))
        try:
            actions = self.core.step(event)
        except ProtocolError:
            self.wal.pop()  # rejected input changed nothing; keep it out of the WAL
            return
        self.execute(actions)

    def execute(self, actions: list) -> None:
        w = self.world
        for a in actions:
            if isinstance(a, (BroadcastVote, BroadcastProposal)) and self.wal:
                st = a.signer_state
                self.sig_marks.setdefault((st.height, st.round, st.step), self.wal[-1])
            if isinstance(a, BroadcastVote):
                self.signer_state = a.signer_state  # persisted before the send
                w.checker.on_signed(self, a.vote.height, a.vote.round, int(a.vote.type) + 1,
                                    a.vote.sign_bytes(CHAIN_ID))
                self._send_vote(a.vote)
            elif isinstance(a, BroadcastProposal):
                self.signer_state = a.signer_state
                w.checker.on_signed(self, a.proposal.height, a.proposal.round, 1,
                                    a.proposal.sign_bytes(CHAIN_ID))
                self._send_proposal(a.proposal, a.block)
            elif isinstance(a, ScheduleTimeout):
                w.schedule(a.duration_ms, "timeout", self.instance, self.epoch,
                           TimeoutFired(a.height, a.round, a.step))
            elif isinstance(a, RequestValue):
                w.schedule(0, "value", self.instance, self.epoch, self._make_value(a))
            elif isinstance(a, Decide):
                if a.height not in self.decided:
                    self._on_decide(a)
                w.schedule(w.plan.commit_delay_ms, "value", self.instance, self.epoch,
                           Start(a.height + 1))
            elif isinstance(a, ReportEvidence):
                self.evidence_pool[a.evidence.encode()] = a.evidence
            elif isinstance(a, SignRefused) and self.honest and not self.replaying:
                # Replaying a WAL that lost records may ask again for a signature whose record
                # was lost with them (refused: harmless). Afterwards, a refusal means the core
                # is behind its signer record: it would stay silent.
                w.checker.violation(f"instance {self.instance}: own guard refused "
                                    f"(h={a.height}, r={a.round}, step={int(a.step)}) after "
                                    f"recovery: {a.reason}")

    def _on_decide(self, a: Decide) -> None:
        self.decided[a.height] = (a.block_hash, a.block, a.certificate)
        block = SimBlock.decode(a.block)
        for e in block.evidence:
            self.evidence_committed.add(e.encode())
        # The WAL keeps the inputs of heights not yet decided that the core kept: a message
        # too far ahead when it arrived was dropped then and must not count on replay.
        self.wal = [rec for rec in self.wal
                    if a.height < _wal_height(rec[1]) <= rec[0] + limits.heights_ahead_max]
        self.sig_marks = {k: v for k, v in self.sig_marks.items() if k[0] > a.height}
        self.world.checker.on_decide(self, a)

    def _make_value(self, a: RequestValue) -> ValueReady:
        w = self.world
        parent = self._parent_of(a.height) or GENESIS_HASH
        evidence = tuple(e for k, e in sorted(self.evidence_pool.items())
                         if k not in self.evidence_committed
                         and e.height < a.height)[:BLOCK_EVIDENCE_MAX]
        payload = w.rng.randbytes(w.rng.randint(0, 64))
        parent_commit = self.decided.get(a.height - 1)
        last_commit = parent_commit[2].encode() if parent_commit else b""
        block = SimBlock(a.height, parent, self.instance, self.behaviour == "invalid",
                         evidence, last_commit, payload)
        return ValueReady(a.height, a.round, block.encode())

    # --- outputs -------------------------------------------------------------------------------

    def _send_vote(self, vote: Vote) -> None:
        w = self.world
        if self.behaviour == "silent":
            return
        if self.behaviour == "equivocate":
            other = w.rng.randbytes(32) if vote.block_hash == NIL else NIL
            sb = vote_sign_bytes(CHAIN_ID, vote.type, vote.height, vote.round, other)
            forged = Vote(vote.type, vote.height, vote.round, other, vote.validator_index,
                          self.key.sign(sb))  # bypasses the guard on purpose
            for dst in w.peers(self.instance):
                w.send(self.instance, dst, ("vote", forged if w.rng.random() < 0.5 else vote))
            return
        w.broadcast(self.instance, ("vote", vote))

    def _send_proposal(self, p: Proposal, block: bytes) -> None:
        w = self.world
        if self.behaviour == "silent":
            return
        if self.behaviour == "equivocate":
            b = SimBlock.decode(block)
            alt = SimBlock(b.height, b.parent_hash, b.proposer_tag, False, (), b.last_commit,
                           b.payload + b"equivocation").encode()
            ah = hashing.blake3(alt)
            sb = proposal_sign_bytes(CHAIN_ID, p.height, p.round, p.pol_round, ah)
            alt_p = Proposal(p.height, p.round, p.pol_round, ah, p.proposer_index,
                             self.key.sign(sb))
            for dst in w.peers(self.instance):
                msg = ("proposal", alt_p, alt) if w.rng.random() < 0.5 else ("proposal", p, block)
                w.send(self.instance, dst, msg)
            return
        w.broadcast(self.instance, ("proposal", p, block))

    # --- gossip, catch-up, crash ---------------------------------------------------------------

    def gossip(self) -> None:
        """When stuck in one (height, round, step), re-send own votes of this height, relay the
        proof of lock of the valid value (the prevotes that made it valid) and the proposals of
        the current round: gossip relays what a correct node received, eventually."""
        core = self.core
        hrs = (core.height, core.round, core.step_)
        if hrs == self.last_hrs and self.behaviour != "silent":
            own = core.own_index
            if own is not None:
                for v in core.votes.votes_of(own):
                    self.world.broadcast(self.instance, ("vote", v))
            if core.valid_value is not None:
                for v in core.votes.votes_for(core.valid_round, 1, core.valid_value):
                    self.world.broadcast(self.instance, ("vote", v))
            for bh, p in core.proposals.get(core.round, {}).items():
                self.world.broadcast(self.instance, ("proposal", p, core.blocks[bh]))
        self.last_hrs = hrs

    def on_message(self, src: int, msg: tuple) -> None:
        kind = msg[0]
        if kind == "vote":
            self._catch_up(src, msg[1].height)
            self.feed(VoteReceived(msg[1]))
        elif kind == "proposal":
            self._catch_up(src, msg[1].height)
            self.feed(ProposalReceived(msg[1], msg[2]))
        elif kind == "commit":
            self.feed(CommitReceived(msg[1], msg[2]))
        elif kind == "need":
            d = self.decided.get(msg[1])
            if d is not None:
                self.world.send(self.instance, src, ("commit", d[1], d[2]))

    def _catch_up(self, src: int, height: int) -> None:
        if height < self.core.height:
            d = self.decided.get(height)
            if d is not None:
                self.world.send(self.instance, src, ("commit", d[1], d[2]))
        elif height > self.core.height:
            self.world.send(self.instance, src, ("need", self.core.height))

    def crash(self, wal_lost: int = 0) -> None:
        lost = self.wal[len(self.wal) - min(wal_lost, len(self.wal)):]
        if not lost:
            self.world.checker.crash_snapshot[self.instance] = self.core.snapshot()
        else:
            self._lose_wal_tail(lost)
        self.up = False
        self.epoch += 1
        self.core = None  # type: ignore[assignment]

    def _lose_wal_tail(self, lost: list[tuple]) -> None:
        """Drop ``lost`` (the last WAL records) and the signer history entries whose WAL
        record went with them; the last signature stays (the signer record has it)."""
        gone = {id(rec) for rec in lost}
        del self.wal[len(self.wal) - len(lost):]
        st = self.signer_state
        kept = tuple(e for e in st.history
                     if (e[0], e[1]) == (st.round, st.step)
                     or id(self.sig_marks.get((st.height, e[0], e[1]))) not in gone)
        self.signer_state = SignerState(st.height, st.round, st.step, st.sign_bytes,
                                        st.signature, kept)
        self.sig_marks = {k: v for k, v in self.sig_marks.items()
                          if k[0] == st.height and id(v) not in gone}
        self.world.wal_losses += 1

    def restart(self) -> None:
        self.up = True
        self.epoch += 1
        self.core = self._new_core()
        wal, self.wal = self.wal, []
        replayed = []
        for rec in wal:  # the same record objects: signature marks refer to them
            self.wal.append(rec)
            replayed.extend(self.core.step(rec[1]))
        self.world.checker.on_restart(self)
        self.replaying = True  # until the core is where its durable state says
        try:
            self.execute(replayed)
            if not self.core.started:  # crashed between Decide and Start (or lost the Start)
                self.feed(Start(self.core.height))
        finally:
            self.replaying = False
        resume = self.core.resume_event()
        if resume is not None:  # the WAL lost its tail: catch up with the signer record
            self.feed(resume)


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
        self.nodes: list[SimNode] = []
        instances_of: dict[int, list[int]] = {}
        for v in range(n):
            copies = 2 if behaviours.get(v) == "twin" else 1
            for _ in range(copies):
                node = SimNode(self, len(self.nodes), v, behaviours.get(v))
                instances_of.setdefault(v, []).append(node.instance)
                self.nodes.append(node)
        self.plan: FaultPlan = draw_plan(self.rng, behaviours, instances_of, config.zero_delay)
        draw_wal_losses(random.Random(f"engine/sim/wal-loss/{seed}"), self.plan,
                        [node.validator for node in self.nodes], powers, set(byzantine))
        self.wal_losses = 0
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
            node.feed(Start(1))
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
        elif kind in ("timeout", "value"):
            inst, epoch, event = data
            node = self.nodes[inst]
            if node.up and node.epoch == epoch:
                node.feed(event)
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
        return SeedResult(self.seed, heights, rounds, self.checker.decisions, self.messages,
                          self.now_ms, len(committed), list(self.checker.violations),
                          self.plan.describe(), self.wal_losses)


def run_seed(seed: int, config: SimConfig) -> SeedResult:
    return World(seed, config).run()
