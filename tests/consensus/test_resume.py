"""Recovery from a WAL that lost its tail: ``resume_event()`` / ``Resume`` bring the core back
to what its signer record says it signed, without signing anything, and the height can end.

The stalled-height case is the one found by tests/scenarios/wal-truncate-stalled.toml: two of
four validators go through rounds alone, both lose their WAL, and after a restart of all four
nobody could reach a quorum or f+1 in a later round (issue 8)."""
from __future__ import annotations

import dataclasses
from collections import deque

import pytest

from engine.consensus import (
    NIL,
    BroadcastProposal,
    BroadcastVote,
    ConsensusCore,
    Decide,
    ProposalReceived,
    RequestValue,
    Resume,
    ScheduleTimeout,
    SignerGuard,
    SignerState,
    SignRefused,
    Start,
    Step,
    TimeoutFired,
    ValueReady,
    VoteReceived,
    VoteType,
)
from engine.consensus.signer import DoubleSignRefused
from engine.consensus.types import vote_sign_bytes

from .harness import CHAIN, TIMEOUTS, Net, h, of_type


@pytest.fixture
def net():
    return Net(4)


def feed(core, *events):
    out = []
    for e in events:
        out += core.step(e)
    return out


def rebuilt(net: Net, i: int, state: SignerState, height: int = 1) -> ConsensusCore:
    """A core rebuilt from the persisted signer state (not started yet)."""
    return ConsensusCore(CHAIN, net.vs, SignerGuard(net.keys[i], state), height=height,
                         is_valid=net.is_valid, timeouts=TIMEOUTS)


def restarted(net: Net, i: int, state: SignerState, height: int = 1,
              replay: tuple = ()) -> ConsensusCore:
    """A core rebuilt from the persisted signer state, replaying what is left of its WAL."""
    c = rebuilt(net, i, state, height)
    c.step(Start(height))
    feed(c, *replay)
    return c


def locked_then_round_2(net: Net, c: ConsensusCore) -> list:
    """Core 0 locks A in round 0, then goes to round 2 and prevotes nil there; returns its
    inputs (its WAL)."""
    wal = [net.proposal(1, 0, b"A"), net.prevote(1, 1, 0, b"A"), net.prevote(2, 1, 0, b"A"),
           net.precommit(1, 1, 0, None), net.precommit(2, 1, 0, None),
           TimeoutFired(1, 0, Step.PRECOMMIT), TimeoutFired(1, 1, Step.PROPOSE),
           net.prevote(1, 1, 1, None), net.prevote(2, 1, 1, None),
           net.precommit(1, 1, 1, None), net.precommit(2, 1, 1, None),
           TimeoutFired(1, 1, Step.PRECOMMIT), TimeoutFired(1, 2, Step.PROPOSE)]
    feed(c, *wal)
    assert (c.round, c.step_, c.locked_round) == (2, Step.PREVOTE, 0)
    return wal


def test_whole_wal_needs_no_resume(net):
    c = net.core(0)
    wal = locked_then_round_2(net, c)
    again = restarted(net, 0, c.signer.state, replay=tuple(wal))
    assert again.resume_event() is None
    assert again.snapshot() == c.snapshot()


def test_lost_wal_resumes_at_the_last_signed_step_with_the_lock(net):
    c = net.core(0)
    locked_then_round_2(net, c)
    state = c.signer.state
    again = restarted(net, 0, state)  # the whole WAL of the height is gone
    assert (again.round, again.step_, again.locked_round) == (0, Step.PROPOSE, -1)
    resume = again.resume_event()
    assert resume is not None and resume.height == 1
    out = again.step(resume)
    # Back where it was: round 2 after its nil prevote, locked on A from its round-0 precommit.
    assert (again.round, again.step_) == (2, Step.PREVOTE)
    assert (again.locked_value, again.locked_round) == (h(b"A"), 0)
    assert again.valid_value is None  # block A is unknown here: nothing to re-propose
    assert again.signer.state == state  # nothing new was signed
    assert not of_type(out, SignRefused)
    # Every own vote is counted and re-sent with its original signature.
    sent = {(v.vote.type, v.vote.round): v.vote for v in of_type(out, BroadcastVote)}
    mine = {(v.type, v.round): v for v in c.votes.votes_of(0)}
    assert sent == mine and len(sent) == 5
    assert again.resume_event() is None
    # The lock holds: a proposal of B in a later round gets a nil prevote (l.22).
    feed(again, net.prevote(1, 1, 2, None), net.prevote(2, 1, 2, None),
         TimeoutFired(1, 2, Step.PREVOTE), net.precommit(1, 1, 2, None),
         net.precommit(2, 1, 2, None))
    out = again.step(TimeoutFired(1, 2, Step.PRECOMMIT))
    assert again.round == 3 and of_type(out, RequestValue)  # core 0 proposes in round 3
    out = again.step(ValueReady(1, 3, b"B"))
    assert [(v.vote.type, v.vote.block_hash) for v in of_type(out, BroadcastVote)] == \
        [(VoteType.PREVOTE, NIL)]


def test_partly_lost_wal_keeps_what_was_replayed(net):
    c = net.core(0)
    wal = locked_then_round_2(net, c)
    # The cut falls after the lock: the first 5 inputs survive, so does the block of A.
    history = c.signer.state.history[:2]  # the WAL records of the first two signatures
    state = dataclasses.replace(c.signer.state, history=history)
    again = restarted(net, 0, state, replay=tuple(wal[:5]))
    assert (again.round, again.step_) == (0, Step.PRECOMMIT)
    resume = again.resume_event()
    assert resume is not None
    # Only the last signature is known besides the replayed ones: round 2's nil prevote.
    assert [(r, s) for r, s, _, _ in resume.signed] == [(2, Step.PREVOTE)]
    out = again.step(resume)
    assert (again.round, again.step_) == (2, Step.PREVOTE)
    assert (again.valid_value, again.valid_round) == (h(b"A"), 0)
    assert [(v.vote.round, v.vote.block_hash) for v in of_type(out, BroadcastVote)] == [(2, NIL)]


def test_proposer_that_lost_its_signature_records_resumes_after_its_prevote(net):
    c = net.core(1)  # validator 1 proposes round 0, and prevotes its own proposal (l.22)
    out = c.step(ValueReady(1, 0, b"P"))
    assert of_type(out, BroadcastProposal)
    state = c.signer.state
    assert state.hrs() == (1, 0, Step.PREVOTE)
    # The input survived, both signature records did not: re-proposing is refused (below the
    # last signature), which leaves the replayed core behind its signer record.
    again = rebuilt(net, 1, dataclasses.replace(state, history=()))
    again.step(Start(1))
    out = again.step(ValueReady(1, 0, b"P"))
    assert of_type(out, SignRefused) and not of_type(out, BroadcastProposal)
    out = again.step(again.resume_event())
    assert (again.round, again.step_) == (0, Step.PREVOTE)
    assert [(v.vote.type, v.vote.block_hash, v.vote.signature)
            for v in of_type(out, BroadcastVote)] == \
        [(VoteType.PREVOTE, h(b"P"), state.signature)]
    assert again.signer.state.signature == state.signature
    # Only the last signature is known: the proposal itself cannot be re-sent.
    assert not of_type(out, BroadcastProposal)


def test_resume_re_sends_a_proposal_whose_block_is_known(net):
    c = net.core(1)
    out = c.step(ValueReady(1, 0, b"P"))
    p = of_type(out, BroadcastProposal)[0].proposal
    entry = c.signer.state.history[0]
    assert entry[1] == Step.PROPOSE
    # A peer relayed the own proposal back before the crash; the cut lost the rest.
    again = rebuilt(net, 1, SignerState(1, 0, int(Step.PROPOSE), entry[2], entry[3]))
    again.votes  # noqa: B018 - the core exists; start it with the relayed proposal logged
    again.step(Start(1))
    resume = again.resume_event()
    assert resume is not None and resume.signed == (entry,)
    out = again.step(resume)
    assert [a.proposal for a in of_type(out, BroadcastProposal)] == []  # block unknown
    assert 0 in again._proposed
    # The same with the block known (it came back from a peer first):
    known = rebuilt(net, 1, SignerState(1, 0, int(Step.PROPOSE), entry[2], entry[3]))
    known.blocks[p.block_hash] = b"P"  # as _record_proposal would have kept it
    known.step(Start(1))
    out = known.step(known.resume_event())
    assert [a.proposal for a in of_type(out, BroadcastProposal)] == [p]
    # ... and the core prevotes it (a new, higher step) as l.22 says.
    assert [(v.vote.type, v.vote.block_hash) for v in of_type(out, BroadcastVote)] == \
        [(VoteType.PREVOTE, h(b"P"))]


def test_resume_rejects_entries_that_are_not_own_signatures(net):
    c = net.core(0)
    locked_then_round_2(net, c)
    again = restarted(net, 0, c.signer.state)
    r, s, sb, sig = again.resume_event().signed[0]
    forged = bytes(64)
    with pytest.raises(ValueError, match="not signed by this validator"):
        again.step(Resume(1, ((r, s, sb, forged),)))
    other = vote_sign_bytes(b"other-chain", VoteType.PREVOTE, 1, r, NIL)
    with pytest.raises(ValueError, match="not for this height"):
        again.step(Resume(1, ((r, Step.PREVOTE, other, sig),)))
    with pytest.raises(ValueError, match="malformed"):
        again.step(Resume(1, ((r, 7, sb, sig),)))
    with pytest.raises(TypeError):
        again.step(Resume(1, [(r, s, sb, sig)]))
    with pytest.raises(TypeError):
        again.step(Resume(1, ((r, s),)))
    assert (again.round, again.step_) == (0, Step.PROPOSE)  # nothing changed
    assert again.step(Resume(2, ((r, s, sb, sig),))) == []  # stale height: ignored


def test_guard_refuses_different_bytes_at_the_last_step_without_history(net):
    g = SignerGuard(net.keys[0])
    sb = vote_sign_bytes(CHAIN, VoteType.PREVOTE, 1, 0, h(b"A"))
    sig = g.sign(1, 0, Step.PREVOTE, sb)
    lost = SignerGuard(net.keys[0], dataclasses.replace(g.state, history=()))
    other = vote_sign_bytes(CHAIN, VoteType.PREVOTE, 1, 0, NIL)
    with pytest.raises(DoubleSignRefused):
        lost.sign(1, 0, Step.PREVOTE, other)
    assert lost.sign(1, 0, Step.PREVOTE, sb) == sig


class _Network:
    """Cores exchanging messages in FIFO order; when nothing is in flight the earliest pending
    timeout fires (a virtual clock). ``down`` cores neither send nor receive."""

    def __init__(self, net: Net, cores: list[ConsensusCore]):
        self.net = net
        self.cores = cores
        self.down: set[int] = set()
        self.queue: deque = deque()
        self.timers: list[tuple[int, int, int, TimeoutFired]] = []
        self.now_ms = 0
        self.seq = 0
        self.decided: dict[int, bytes] = {}
        self.signed: dict[tuple, bytes] = {}
        self.epoch = 0  # a rebuilt proposer cuts a different block (time, transactions)

    def feed(self, i: int, event) -> None:
        if i not in self.down:
            self.execute(i, self.cores[i].step(event))

    def execute(self, i: int, actions: list) -> None:
        for a in actions:
            if isinstance(a, BroadcastVote):
                key = (i, a.vote.round, a.vote.type)
                assert self.signed.setdefault(key, a.vote.signature) == a.vote.signature
                self.send(i, VoteReceived(a.vote))
            elif isinstance(a, BroadcastProposal):
                self.send(i, ProposalReceived(a.proposal, a.block))
            elif isinstance(a, ScheduleTimeout):
                self.seq += 1
                self.timers.append((self.now_ms + a.duration_ms, self.seq, i,
                                    TimeoutFired(a.height, a.round, a.step)))
            elif isinstance(a, RequestValue):
                self.queue.append((i, ValueReady(a.height, a.round,
                                                      b"block-r%d-e%d" % (a.round, self.epoch))))
            elif isinstance(a, Decide):
                self.decided[i] = a.block_hash

    def send(self, src: int, event) -> None:
        for j in range(len(self.cores)):
            if j != src and j not in self.down and src not in self.down:
                self.queue.append((j, event))

    def run(self, until_ms: int) -> None:
        while self.now_ms <= until_ms:
            if self.queue:
                self.feed(*self.queue.popleft())
                continue
            live = [t for t in self.timers if t[2] not in self.down]
            if not live:
                return
            t = min(live)
            self.timers.remove(t)
            self.now_ms = t[0]
            self.feed(t[2], t[3])


def test_stalled_height_ends_after_both_live_nodes_lose_their_wal(net):
    """wal-truncate-stalled at the core level: validators 2 and 3 are down, 0 and 1 sign in
    round 0 and stall; 0 and 1 crash and lose their whole WAL; all four restart."""
    cores = [net.core(i, start=False) for i in range(4)]
    world = _Network(net, cores)
    world.down = {2, 3}
    for i in (0, 1):
        world.feed(i, Start(1))
    world.run(until_ms=60_000)
    assert not world.decided
    # The signature records were in the lost WAL: only the last signature is left.
    states = [dataclasses.replace(c.signer.state, history=()) for c in cores]
    world.epoch = 1
    assert states[0].height == states[1].height == 1  # both signed in the stalled height
    assert states[1].step == Step.PREVOTE  # the proposer of round 0 prevoted its block
    world.down = set()
    world.timers = []
    world.queue.clear()
    fresh = [rebuilt(net, i, states[i]) if i < 2 else net.core(i, start=False)
             for i in range(4)]
    world.cores = fresh
    for i in range(4):
        world.feed(i, Start(1))
    for i in (0, 1):
        resume = fresh[i].resume_event()
        assert resume is not None
        world.feed(i, resume)
        assert fresh[i].signer.state == states[i]  # nothing signed by the resume itself
    world.run(until_ms=world.now_ms + 60_000)
    assert len(world.decided) == 4 and len(set(world.decided.values())) == 1


def test_without_resume_the_stalled_height_never_ends(net):
    """The same run without the resume: the bug the scenario found (so the test above can
    fail)."""
    cores = [net.core(i, start=False) for i in range(4)]
    world = _Network(net, cores)
    world.down = {2, 3}
    for i in (0, 1):
        world.feed(i, Start(1))
    world.run(until_ms=60_000)
    # The signature records were in the lost WAL: only the last signature is left.
    states = [dataclasses.replace(c.signer.state, history=()) for c in cores]
    world.epoch = 1
    world.down = set()
    world.timers = []
    world.queue.clear()
    world.cores = [rebuilt(net, i, states[i]) if i < 2 else net.core(i, start=False)
                   for i in range(4)]
    for i in range(4):
        world.feed(i, Start(1))
    world.run(until_ms=world.now_ms + 60_000)
    assert not world.decided


def test_resume_with_a_twin_vote_counted_reports_evidence_instead_of_failing(net):
    """A duplicate key (twins): the other holder's different vote was counted under this
    validator's index before the restart. Resume must not fail on it (found by `engine sim
    --validators 4 --byzantine 1`, which crashed with a ValueError here): both votes count and
    the pair is reported as equivocation."""
    c = net.core(0)
    locked_then_round_2(net, c)
    state = c.signer.state
    again = restarted(net, 0, state)
    # The twin's round-0 precommit for B arrives (signed with validator 0's key).
    twin = net.precommit(0, 1, 0, b"B")
    again.step(twin)
    out = again.step(again.resume_event())
    evidence = [a.evidence for a in out if type(a).__name__ == "ReportEvidence"]
    assert evidence and {evidence[0].vote_a.block_hash, evidence[0].vote_b.block_hash} == \
        {h(b"A"), h(b"B")}
    assert (again.round, again.step_) == (2, Step.PREVOTE)
    assert again.signer.state == state  # nothing new was signed
