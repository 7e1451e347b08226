"""The consensus driver: the one path into the core, and the executor of its actions.

Theory of operation
-------------------
Every input to consensus goes through :meth:`ConsensusDriver.input`: its WAL record (for its
height) goes to the journal, then the event is given to ``ConsensusCore.step``, and the returned
actions are executed at once, in order, before the next input is taken (the driver runs on one
thread, so no input can slip in between). Actions:

- ``BroadcastProposal`` / ``BroadcastVote``: **persist before send**: the journal makes the
  signature durable (signer record + every WAL record written so far, one synced transaction;
  the signatures of one step share one transaction); only then does the outbox get the
  message. Votes of one step leave together.
- ``ScheduleTimeout``: a timer that feeds ``TimeoutFired`` back through ``input``.
- ``RequestValue``: the value source builds a block and later feeds ``ValueReady``.
- ``Decide``: the committer executes and stores the block (which drops the height's WAL), then
  the next height starts (at once, or after ``start_delay_ms``).
- An own precommit for a block, once sent, is told to the committer when it is a
  :class:`Speculator` (not while replaying, not when the same step decided): it may execute
  the block while the other precommits come, so the decision waits for the block's save alone
  (optimistic execution; engine/node/commit.py).
- ``ReportEvidence``: to the evidence sink; ``MessageDropped`` and ``SignRefused`` are counted.

Restart is replay (:meth:`replay`): the WAL of the height is fed through ``step`` again in the
order it was written, the height's start included (a ``Start`` record: messages that came before
it were taken by a height not yet started, and must be again); a replayed decision moves to the
next height, whose WAL is replayed next.
Nothing is sent while replaying; own messages are re-sent once it is over. A WAL that lost its
tail leaves the core behind its signer record: :meth:`resume` feeds the core's ``Resume``.

The driver does no I/O itself: it is given its ports (engine/node/ports.py) and a journal, so
the node runs it over LMDB, asyncio and TCP, and ``engine sim`` runs the same class over a
virtual clock, a seeded network and an in-memory store.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from engine import consensus as cs
from engine import limits
from engine.node.ports import Counters, Outbox, SignatureObserver, Timers
from engine.node.wal import Journal, encode_event

log = logging.getLogger("engine.node.driver")

__all__ = ["Committer", "ConsensusDriver", "EvidenceSink", "Speculator", "ValueSource"]


class ValueSource(Protocol):
    def request(self, height: int, round: int) -> None:
        """Build a block for (height, round) and feed ``ValueReady`` through the driver."""
        ...


class Committer(Protocol):
    def commit(self, decide: cs.Decide) -> None:
        """Execute and store a decided block durably (dropping its height's WAL); raise when
        that is impossible (the driver halts: going on could only sign on a missing state)."""
        ...


class Speculator(Protocol):
    def speculate(self, height: int, block_hash: bytes, block: bytes) -> None:
        """This node's precommit for ``block_hash`` at ``height`` has been sent (the block is
        valid and more than 2/3 prevoted for it; the node is locked on it): the block may be
        executed before it is decided. Nothing durable may come of it; the committer reuses
        the result if this block is the one decided."""
        ...


class EvidenceSink(Protocol):
    def report(self, evidence: cs.DuplicateVoteEvidence) -> None: ...


class ConsensusDriver:
    """Feeds one ConsensusCore and executes its actions through the given ports."""

    def __init__(self, core: cs.ConsensusCore, *, journal: Journal, outbox: Outbox,
                 timers: Timers, values: ValueSource, committer: Committer,
                 evidence: EvidenceSink, observer: SignatureObserver, counters: Counters,
                 start_delay_ms: int = 0):
        self.core = core
        self.chain_id = core.chain_id
        self.journal = journal
        self.outbox = outbox
        self.timers = timers
        self.values = values
        self.committer = committer
        self._speculate = getattr(committer, "speculate", None)
        self.evidence = evidence
        self.observer = observer
        self.counters = counters
        self.start_delay_ms = start_delay_ms
        self.running = True
        self.replaying = False
        #: Why the driver stopped itself (a broken invariant), or None while healthy.
        self.halted: str | None = None
        self.on_halt: Callable[[str], None] | None = None
        #: When set, the next height is not started after a decision: the gate is called with
        #: it and starts it later through :meth:`start_height` (no empty blocks). A message
        #: of that height from a peer starts it at once (a peer is already in it).
        self.start_gate: Callable[[int], None] | None = None
        #: Called with (height, moment) as a height passes its moments (engine/node/phases.py:
        #: "start", "proposal", "prevote", "precommit", "decide", "saved"); not while replaying.
        self.on_mark: Callable[[int, str], None] | None = None
        #: Own signed messages of the current height, re-sent on reconnects and stalls.
        self._own_votes: list[cs.Vote] = []
        self._own_proposals: list[tuple[cs.Proposal, bytes]] = []

    # ---- inputs ---------------------------------------------------------------------------
    def input(self, event: Any, wal_height: int) -> None:
        """WAL, then step, then execute the actions. A ``ProtocolError`` (the input is invalid)
        leaves no WAL record and rises to the caller, which blames the peer."""
        if not self.running:
            return
        if wal_height > self.core.height and self.core.validators_for(wal_height) is None:
            # Its validator set is not decided yet (the block two heights back is not
            # committed): judged now it would be dropped, judged at replay (after that block)
            # it would be kept. It stays out of the WAL so replay rebuilds the same state; the
            # sender re-sends on a stall and block sync brings the height anyway.
            self.counters.add("dropped:set_unknown")
            return
        if self.start_gate is not None and wal_height == self.core.height \
                and not self.core.started and not self.replaying:
            self.start_height(wal_height)
        self.journal.append(wal_height, encode_event(event))
        try:
            actions = self.core.step(event)
        except cs.ProtocolError:
            self.journal.discard_last()
            raise
        if self.on_mark is not None and type(event) is cs.ProposalReceived \
                and not self.replaying:
            self.on_mark(event.proposal.height, "proposal")
        self.execute(actions)

    def start_height(self, height: int) -> None:
        """Begin ``height``. The start is a WAL record, in its place among the height's inputs:
        messages that arrived before it were logged (and voted on) without a started height,
        and a replay must see them in that same order to rebuild the same state."""
        if self.running and self.core.height == height:
            event = cs.Start(height)
            if not self.replaying and not self.core.started:
                self.journal.append(height, encode_event(event))
                if self.on_mark is not None:
                    self.on_mark(height, "start")
            self.execute(self.core.step(event))

    def height_kept(self, height: int) -> bool:
        """Whether the core keeps messages of ``height``: only those may enter the WAL (a
        height whose validator set is not known yet is not kept)."""
        core = self.core
        return core.height <= height <= core.height + limits.heights_ahead_max \
            and (height == core.height or core.validators_for(height) is not None)

    def on_timeout(self, event: cs.TimeoutFired) -> None:
        if (event.height, event.round) != (self.core.height, self.core.round):
            return  # stale: the core would ignore it; keep it out of the WAL
        self.input(event, event.height)

    # ---- actions --------------------------------------------------------------------------
    def execute(self, actions: list) -> None:
        self._persist_together(actions)
        votes: list[cs.Vote] = []
        decided = None
        precommitted: cs.Vote | None = None
        mark = None if self.replaying else self.on_mark
        for action in actions:
            if isinstance(action, cs.BroadcastVote):
                v = action.vote
                if self._persist(v.height, v.round, int(v.type) + 1, v.sign_bytes(self.chain_id),
                                 v.signature):
                    votes.append(v)
                    if mark is not None:
                        mark(v.height, "prevote" if v.type == cs.VoteType.PREVOTE
                             else "precommit")
                    if v.type == cs.VoteType.PRECOMMIT and v.block_hash != cs.NIL:
                        precommitted = v
            elif isinstance(action, cs.BroadcastProposal):
                p = action.proposal
                if self._persist(p.height, p.round, int(cs.Step.PROPOSE),
                                 p.sign_bytes(self.chain_id), p.signature):
                    self._send_votes(votes)
                    self._own_proposals.append((p, action.block))
                    if not self.replaying:
                        self.outbox.proposal(p, action.block)
                    if mark is not None:
                        mark(p.height, "proposal")
            elif isinstance(action, cs.ScheduleTimeout):
                event = cs.TimeoutFired(action.height, action.round, action.step)
                self.timers.call_later(action.duration_ms, partial(self._fire, event))
            elif isinstance(action, cs.RequestValue):
                self.values.request(action.height, action.round)
            elif isinstance(action, cs.Decide):
                self._send_votes(votes)
                if mark is not None:
                    mark(action.height, "decide")
                self._commit(action)
                if mark is not None:
                    mark(action.height, "saved")
                decided = action.height
            elif isinstance(action, cs.ReportEvidence):
                self.evidence.report(action.evidence)
            elif isinstance(action, cs.MessageDropped):
                self.counters.add(f"dropped:{action.reason.split(' ')[0]}")
            elif isinstance(action, cs.SignRefused):
                if not self.replaying:
                    log.error("double-sign guard refused to sign at (%d, %d, %s): %s",
                              action.height, action.round, action.step.name, action.reason)
                self.counters.add("sign_refused")
                self.observer.refused(action.height, action.round, int(action.step),
                                      action.reason, self.replaying)
        self._send_votes(votes)
        if precommitted is not None and self._speculate is not None and not self.replaying \
                and precommitted.height == self.core.height:  # not decided in this step
            block = self.core.blocks.get(precommitted.block_hash)
            if block is not None:
                self._speculate(precommitted.height, precommitted.block_hash, block)
        if decided is not None and not self.replaying:
            # The block is stored, so validity at the next height can be judged: start it.
            if self.start_gate is not None:
                self.start_gate(decided + 1)
            elif self.start_delay_ms:
                self.timers.call_later(self.start_delay_ms,
                                       partial(self.start_height, decided + 1))
            else:
                self.start_height(decided + 1)

    def _fire(self, event: cs.TimeoutFired) -> None:
        if self.running:
            self.on_timeout(event)

    def _persist_together(self, actions: list) -> None:
        """Several signatures in one step (a proposer's proposal and its own prevote; a late
        prevote and the precommit it completes) become durable in one synced transaction
        instead of one each. Nothing is sent here: the actions below find them persisted and
        send in order. If the batch is refused, nothing of it was written and each signature
        goes its own way below (refused, counted and logged one by one, as without a batch)."""
        signed = []
        for action in actions:
            if isinstance(action, cs.BroadcastVote):
                v = action.vote
                signed.append((v.height, v.round, int(v.type) + 1, v.sign_bytes(self.chain_id),
                               v.signature))
            elif isinstance(action, cs.BroadcastProposal):
                p = action.proposal
                signed.append((p.height, p.round, int(cs.Step.PROPOSE),
                               p.sign_bytes(self.chain_id), p.signature))
        if len(signed) < 2:
            return
        try:
            self.journal.persist_signatures(signed)
        except Exception as e:  # noqa: BLE001 - decided again below, signature by signature
            log.info("signatures of one step not persisted together (%s); one by one", e)
            return
        self.counters.add("signatures_persisted_together", len(signed))

    def _persist(self, height: int, round: int, step: int, sign_bytes: bytes,
                 signature: bytes) -> bool:
        try:
            self.journal.persist_signature(height, round, step, sign_bytes, signature)
        except Exception as e:  # noqa: BLE001 - DoubleSignRefused or a disk error: never send
            log.error("not sending signature at (%d, %d, %d): %s", height, round, step, e)
            self.counters.add("persist_refused")
            return False
        self.observer.signed(height, round, step, sign_bytes, signature)
        return True

    def _send_votes(self, votes: list[cs.Vote]) -> None:
        if votes:
            self._own_votes.extend(votes)
            if not self.replaying:
                self.outbox.votes(list(votes))
            votes.clear()

    def _commit(self, decide: cs.Decide) -> None:
        try:
            self.committer.commit(decide)
        except Exception as e:
            # The core has moved on but the block is not stored: going on could only produce
            # signatures on a state we do not have. Halt loudly instead.
            self.halt(f"cannot commit block {decide.height}: {e!r}")
            raise
        self.journal.drop_decided(decide.height)
        self._own_votes = []
        self._own_proposals = []

    def halt(self, reason: str) -> None:
        log.critical("halting: %s", reason)
        self.halted = reason
        self.running = False
        if self.on_halt is not None:
            self.on_halt(reason)

    # ---- gossip of own messages -------------------------------------------------------------
    def resend_own(self, to: Any = None) -> None:
        """Send this height's own signed messages again (to one peer, or all)."""
        if self._own_votes:
            self.outbox.votes(list(self._own_votes), to)
        for p, block in self._own_proposals:
            self.outbox.proposal(p, block, to)

    def relay_on_stall(self, votes_max: int) -> None:
        """A height makes no progress: re-send own messages, relay the prevotes that made the
        valid value valid (at most one per validator: a peer that lost them, after a damaged
        WAL or a long partition, needs them to accept the value's re-proposal, l.28, and a
        Byzantine voter among them re-sends nothing), and the proposals of the current round."""
        self.resend_own()
        core = self.core
        if core.valid_value is not None:
            pol = core.votes.votes_for(core.valid_round, cs.VoteType.PREVOTE, core.valid_value)
            if pol:
                self.outbox.votes(pol[:votes_max])
        own = {id(p) for p, _ in self._own_proposals}
        for block_hash, p in core.proposals.get(core.round, {}).items():
            block = core.blocks.get(block_hash)
            if block is not None and id(p) not in own:
                self.outbox.proposal(p, block)

    # ---- recovery ---------------------------------------------------------------------------
    def replay(self) -> None:
        """Start the height, then feed its WAL back through the core (recovery is replay).
        A replayed decision moves to the next height, whose WAL (if any) is replayed next;
        then the records of the heights ahead, which the core had buffered."""
        self.replaying = True
        gated = None
        try:
            while True:
                height = self.core.height
                records = self.journal.replay(height, self._set_size(height))
                if not records and self.start_gate is not None:
                    gated = height  # a fresh height with nothing to do yet: the gate starts it
                    break
                if not any(isinstance(r, cs.Start) for r in records):
                    # The height had not started (its records came ahead of it), lost its
                    # WAL, or the WAL predates start records: its messages first, then the
                    # start, which is logged now so the next replay sees the same order.
                    self.journal.append(height, encode_event(cs.Start(height)))
                    records = [*records, cs.Start(height)]
                self._step_all(records)
                self._replayed(height, records)
                if self.core.height == height:
                    break
            # Messages for the next heights that the core had buffered are in the WAL too.
            for ahead in range(height + 1, height + limits.heights_ahead_max + 1):
                records = self.journal.replay(ahead, self._set_size(ahead))
                self._step_all(records)
                self._replayed(ahead, records)
        finally:
            self.replaying = False
        if gated is not None and self.start_gate is not None:
            self.start_gate(gated)

    def _set_size(self, height: int) -> int:
        """Validators in the set of ``height`` (certificates in the WAL are decoded with it)."""
        vset = self.core.validators_for(height)
        return len(vset if vset is not None else self.core.validators)

    def _step_all(self, records: list) -> None:
        for event in records:
            if isinstance(event, Exception):
                log.warning("skipping WAL record that does not decode: %s", event)
                continue
            try:
                self.execute(self.core.step(event))
            except (cs.ProtocolError, ValueError) as e:
                log.warning("skipping WAL record that no longer applies: %s", e)

    def _replayed(self, height: int, records: list) -> None:
        if records:
            self.counters.add("wal_records_replayed", len(records))
            log.info("replayed %d WAL records at height %d", len(records), height)

    def resume(self) -> None:
        """A WAL that lost its tail leaves the core behind its signer record: it would sign
        nothing until the rounds it had signed in were over, and peers that need its messages
        (for a quorum, or f+1 to skip to a later round) would wait for ever. Resume puts it
        back at its last signed (round, step), with its lock and its votes, which are re-sent
        as they were signed (same bytes, same signatures)."""
        resume = self.core.resume_event()
        if resume is None:
            return
        log.warning("WAL is behind the signer record at height %d: resuming at (round, step) "
                    "%s with %d own signed messages", resume.height,
                    max((r, s) for r, s, _, _ in resume.signed), len(resume.signed))
        self.counters.add("resumed_from_signer")
        # Signatures in a durable record are on disk: re-sending them needs no new write.
        self.journal.mark_persisted(resume.height, resume.signed)
        self.input(resume, resume.height)

    def replay_and_start(self) -> None:
        """Recovery in full: replay, resume if the WAL lost its tail, re-send own messages."""
        self.replay()
        self.resume()
        self.resend_own()
