"""The consensus driver's own decisions, one at a time (engine/node/driver.py), on a real core of
four validators (this node is validator 0) over fake ports: which inputs reach the WAL (a
height whose set is unknown, stale timeouts, heights kept), the start gate, the steps a batch of
signatures is persisted under, early execution after an own precommit, what happens after a
decision (gate, delay), replay of the heights ahead, and what a stall relays. Written against
the survivors of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import pytest

from engine import consensus as cs
from engine import hashing, limits
from engine.crypto import SigningKey
from engine.node.driver import ConsensusDriver
from engine.node.ports import Counters, NullObserver
from engine.node.wal import Journal, decode_record
from engine.sim.storage import MemoryWalStore

CHAIN = b"driver-unit"
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
VSET = cs.ValidatorSet([cs.Validator(k.public_key, 1) for k in KEYS])


class _Timers:
    def __init__(self) -> None:
        self.pending: list[tuple[int, object]] = []

    def call_later(self, delay_ms, callback):
        self.pending.append((delay_ms, callback))
        return self

    def cancel(self) -> None:
        pass

    def cancel_all(self) -> None:
        self.pending.clear()


class _Outbox:
    def __init__(self) -> None:
        self.votes_sent: list[cs.Vote] = []
        self.proposals_sent: list[cs.Proposal] = []

    def votes(self, votes, to=None) -> None:
        self.votes_sent.extend(votes)

    def proposal(self, proposal, block, to=None) -> None:
        self.proposals_sent.append(proposal)


class _Parts:
    """Ports of one driver; the committer records decisions and early executions."""

    def __init__(self, *, height: int = 1, known_up_to: int | None = None,
                 store: MemoryWalStore | None = None, speculate: bool = True,
                 start_delay_ms: int = 0) -> None:
        self.store = store or MemoryWalStore()
        self.timers = _Timers()
        self.outbox = _Outbox()
        self.requests: list[tuple[int, int]] = []
        self.decided: list[int] = []
        self.speculated: list[tuple[int, bytes, bytes]] = []
        self.evidence: list = []
        self.journal = Journal(self.store, self.timers, pending_bytes_max=0)
        top = known_up_to

        def validators_at(h: int):
            return VSET if top is None or h <= top else None

        core = cs.ConsensusCore(CHAIN, VSET, cs.SignerGuard(KEYS[0],
                                                            self.journal.restore_signer_state()),
                                height=height, validators_at=validators_at)
        committer = self if speculate else _PlainCommitter(self)
        self.driver = ConsensusDriver(core, journal=self.journal, outbox=self.outbox,
                                      timers=self.timers, values=self, committer=committer,
                                      evidence=self, observer=NullObserver(),
                                      counters=Counters(), start_delay_ms=start_delay_ms)
        self.core = core

    def request(self, height, round) -> None:
        self.requests.append((height, round))

    def commit(self, decide) -> None:
        self.decided.append(decide.height)

    def speculate(self, height, block_hash, block) -> None:
        self.speculated.append((height, block_hash, block))

    def report(self, evidence) -> None:
        self.evidence.append(evidence)

    def wal(self, height: int) -> list:
        return [decode_record(r, len(VSET)) for r in self.store.wal_replay(height)]


class _PlainCommitter:
    def __init__(self, parts: _Parts) -> None:
        self.parts = parts

    def commit(self, decide) -> None:
        self.parts.decided.append(decide.height)


def _vote(i: int, kind: cs.VoteType, height: int, block_hash: bytes, round: int = 0) -> cs.Vote:
    unsigned = cs.Vote(kind, height, round, block_hash, i, b"")
    return cs.Vote(kind, height, round, block_hash, i, KEYS[i].sign(unsigned.sign_bytes(CHAIN)))


def _proposal(height: int, block: bytes, round: int = 0) -> cs.Proposal:
    proposer = cs.ConsensusCore(CHAIN, VSET, None, height=height).proposer(height, round)
    unsigned = cs.Proposal(height, round, -1, hashing.blake3(block), proposer, b"")
    return cs.Proposal(height, round, -1, unsigned.block_hash, proposer,
                       KEYS[proposer].sign(unsigned.sign_bytes(CHAIN)))


def _started(p: _Parts, height: int = 1) -> None:
    p.driver.start_height(height)


def _to_precommit(p: _Parts, block: bytes, height: int = 1) -> bytes:
    """A proposal and two other validators' prevotes for ``block``: this node precommits."""
    prop = _proposal(height, block)
    assert prop.proposer_index != 0, "choose a height where another validator proposes"
    p.driver.input(cs.ProposalReceived(prop, block), height)
    for i in (1, 2):
        p.driver.input(cs.VoteReceived(_vote(i, cs.VoteType.PREVOTE, height, prop.block_hash)),
                       height)
    return prop.block_hash


def _height_where(proposer_is_own: bool, start: int = 5) -> int:
    """A height (from ``start``: low heights hide `h << 1` for `h + 1` and the like) where this
    node proposes round 0, or does not."""
    for h in range(start, start + 50):
        own = cs.ConsensusCore(CHAIN, VSET, None, height=h).proposer(h, 0) == 0
        if own == proposer_is_own:
            return h
    raise AssertionError


def _running(proposer_is_own: bool) -> tuple[_Parts, int]:
    """A driver started at a height where this node proposes round 0, or does not."""
    h = _height_where(proposer_is_own)
    p = _Parts(height=h)
    _started(p, h)
    return p, h


# ---- which inputs reach the WAL -----------------------------------------------------------------
def test_an_input_for_a_height_whose_set_is_unknown_is_dropped_before_the_wal():
    p = _Parts(known_up_to=2)
    _started(p)
    vote = _vote(1, cs.VoteType.PREVOTE, 3, b"\x01" * 32)
    p.driver.input(cs.VoteReceived(vote), 3)
    assert p.wal(3) == [] and p.driver.counters.get("dropped:set_unknown") == 1
    # One height ahead with a known set: logged (the core buffers it).
    ahead = _vote(1, cs.VoteType.PREVOTE, 2, b"\x01" * 32)
    p.driver.input(cs.VoteReceived(ahead), 2)
    assert p.wal(2) == [cs.VoteReceived(ahead)]
    # The current height is never dropped for its set.
    now = _vote(1, cs.VoteType.PREVOTE, 1, b"\x01" * 32)
    p.driver.input(cs.VoteReceived(now), 1)
    assert cs.VoteReceived(now) in p.wal(1) and p.driver.counters.get("dropped:set_unknown") == 1


def test_heights_kept_are_the_current_one_and_those_ahead_with_a_known_set():
    p = _Parts(height=5, known_up_to=5 + limits.heights_ahead_max)
    d = p.driver
    assert not d.height_kept(4) and d.height_kept(5)
    assert d.height_kept(6) and d.height_kept(5 + limits.heights_ahead_max)
    assert not d.height_kept(6 + limits.heights_ahead_max)
    for base in (5, 6):  # every set known: the bound alone decides (at 6, `6 | 2` is 6)
        r = _Parts(height=base)
        assert r.driver.height_kept(base + limits.heights_ahead_max)
        assert not r.driver.height_kept(base + 1 + limits.heights_ahead_max)
    q = _Parts(height=5, known_up_to=5)  # the next set not decided yet
    assert q.driver.height_kept(5) and not q.driver.height_kept(6)


def test_only_a_timeout_of_the_current_height_and_round_is_logged():
    p = _Parts()
    _started(p)
    before = len(p.wal(1))
    for stale in (cs.TimeoutFired(1, 1, cs.Step.PROPOSE), cs.TimeoutFired(2, 0, cs.Step.PROPOSE),
                  cs.TimeoutFired(0, 0, cs.Step.PROPOSE)):
        p.driver.on_timeout(stale)
    assert len(p.wal(1)) == before
    p.driver.on_timeout(cs.TimeoutFired(1, 0, cs.Step.PROPOSE))
    assert cs.TimeoutFired(1, 0, cs.Step.PROPOSE) in p.wal(1)
    # Two validators already in round 1: the core skips there; round 0's timeouts are stale.
    for i in (1, 2):
        p.driver.input(cs.VoteReceived(_vote(i, cs.VoteType.PREVOTE, 1, cs.NIL, round=1)), 1)
    assert p.core.round == 1
    before = len(p.wal(1))
    p.driver.on_timeout(cs.TimeoutFired(1, 0, cs.Step.PREVOTE))
    assert len(p.wal(1)) == before


def test_start_height_starts_only_the_current_height():
    p = _Parts(height=3)
    for other in (2, 4):
        p.driver.start_height(other)
        assert not p.core.started and p.wal(3) == p.wal(other) == []
    p.driver.start_height(3)
    assert p.core.started and p.wal(3) == [cs.Start(3)]


# ---- the start gate --------------------------------------------------------------------------
def test_a_message_of_the_gated_height_starts_it_and_one_ahead_does_not():
    p = _Parts()
    gated: list[int] = []
    p.driver.start_gate = gated.append
    ahead = _vote(1, cs.VoteType.PREVOTE, 2, b"\x01" * 32)
    p.driver.input(cs.VoteReceived(ahead), 2)
    assert not p.core.started and p.wal(1) == []
    vote = _vote(1, cs.VoteType.PREVOTE, 1, b"\x01" * 32)
    p.driver.input(cs.VoteReceived(vote), 1)
    assert p.core.started and p.wal(1)[:2] == [cs.Start(1), cs.VoteReceived(vote)]
    # Started already: a second message does not log a second start.
    p.driver.input(cs.VoteReceived(_vote(2, cs.VoteType.PREVOTE, 1, b"\x01" * 32)), 1)
    assert p.wal(1).count(cs.Start(1)) == 1


def test_without_a_gate_a_message_does_not_start_the_height():
    p = _Parts()
    p.driver.input(cs.VoteReceived(_vote(1, cs.VoteType.PREVOTE, 1, b"\x01" * 32)), 1)
    assert not p.core.started and cs.Start(1) not in p.wal(1)


# ---- signatures: the steps they are persisted under -------------------------------------------------
def test_a_proposers_proposal_and_prevote_are_persisted_together_under_their_steps():
    p, h = _running(proposer_is_own=True)
    assert p.requests == [(h, 0)]
    p.driver.input(cs.ValueReady(h, 0, b"block"), h)
    assert p.driver.counters.get("signatures_persisted_together") == 2
    steps = sorted((r, s) for r, s, _, _ in p.store.signer_history())
    assert steps == [(0, int(cs.Step.PROPOSE)), (0, int(cs.Step.PREVOTE))]
    assert (p.store.signer.round, p.store.signer.step) == (0, int(cs.Step.PREVOTE))
    assert len(p.outbox.proposals_sent) == 1 and len(p.outbox.votes_sent) == 1


def test_a_single_signature_is_persisted_alone_under_its_step():
    p, h = _running(proposer_is_own=False)
    block = b"theirs"
    prop = _proposal(h, block)
    p.driver.input(cs.ProposalReceived(prop, block), h)
    assert p.driver.counters.get("signatures_persisted_together") == 0
    assert [(r, s) for r, s, _, _ in p.store.signer_history()] == [(0, int(cs.Step.PREVOTE))]
    for i in (1, 2):
        p.driver.input(cs.VoteReceived(_vote(i, cs.VoteType.PREVOTE, h, prop.block_hash)), h)
    assert sorted((r, s) for r, s, _, _ in p.store.signer_history()) == \
        [(0, int(cs.Step.PREVOTE)), (0, int(cs.Step.PRECOMMIT))]
    assert [v.type for v in p.outbox.votes_sent] == [cs.VoteType.PREVOTE, cs.VoteType.PRECOMMIT]


# ---- early execution ---------------------------------------------------------------------------------
def test_an_own_precommit_for_a_block_hands_it_to_the_committer_early():
    p, h = _running(proposer_is_own=False)
    marks: list[tuple[int, str]] = []
    p.driver.on_mark = lambda height, moment: marks.append((height, moment))
    block = b"early"
    prop = _proposal(h, block)
    p.driver.input(cs.ProposalReceived(prop, block), h)
    assert (h, "proposal") in marks and (h, "prevote") in marks
    assert p.speculated == []  # an own prevote for the block is not a precommit
    block_hash = _to_precommit(p, block, h)
    assert p.speculated == [(h, block_hash, block)] and p.decided == []
    # The decision (two more precommits) does not hand it over again.
    for i in (1, 2):
        p.driver.input(cs.VoteReceived(_vote(i, cs.VoteType.PRECOMMIT, h, block_hash)), h)
    assert p.decided == [h] and len(p.speculated) == 1


def test_early_execution_at_a_height_above_256():
    """The height of the precommit and the core's are equal ints, not the same object."""
    h = _height_where(proposer_is_own=False, start=300)
    p = _Parts(height=h)
    _started(p, int(str(h)))
    block_hash = _to_precommit(p, b"early", h)
    assert p.speculated == [(h, block_hash, b"early")]


def test_a_nil_precommit_or_a_plain_committer_executes_nothing_early():
    p, h = _running(proposer_is_own=False)
    p.driver.on_timeout(cs.TimeoutFired(h, 0, cs.Step.PROPOSE))  # no proposal: prevote nil
    for i in (1, 2, 3):  # prevotes for nil from three others: this node precommits nil
        p.driver.input(cs.VoteReceived(_vote(i, cs.VoteType.PREVOTE, h, cs.NIL)), h)
    assert any(v.type == cs.VoteType.PRECOMMIT and v.block_hash == cs.NIL
               for v in p.outbox.votes_sent)
    assert p.speculated == []
    q = _Parts(height=h, speculate=False)
    _started(q, h)
    _to_precommit(q, b"early", h)
    assert q.speculated == [] and any(v.type == cs.VoteType.PRECOMMIT
                                      for v in q.outbox.votes_sent)


def test_nothing_is_executed_early_while_replaying():
    p, h = _running(proposer_is_own=False)
    _to_precommit(p, b"early", h)
    assert len(p.speculated) == 1
    again = _Parts(height=h, store=p.store)
    again.driver.replay()
    assert again.speculated == [] and again.core.valid_value == p.core.valid_value is not None


# ---- after a decision ----------------------------------------------------------------------------------
def _decide_one(p: _Parts, h: int) -> None:
    block_hash = _to_precommit(p, b"decided", h)
    for i in (1, 2):
        p.driver.input(cs.VoteReceived(_vote(i, cs.VoteType.PRECOMMIT, h, block_hash)), h)
    assert p.decided == [h]


def test_after_a_decision_the_next_height_starts_now_later_or_through_the_gate():
    p, h = _running(proposer_is_own=False)
    _decide_one(p, h)
    assert p.core.height == h + 1 and p.core.started

    q = _Parts(height=h, start_delay_ms=250)
    _started(q, h)
    q.timers.pending.clear()
    _decide_one(q, h)
    assert q.core.height == h + 1 and not q.core.started
    delays = [d for d, _ in q.timers.pending if d == 250]
    assert delays == [250]
    {d: cb for d, cb in q.timers.pending}[250]()
    assert q.core.started and q.wal(h + 1)[0] == cs.Start(h + 1)

    g = _Parts(height=h)
    gated: list[int] = []
    g.driver.start_gate = gated.append
    _started(g, h)
    _decide_one(g, h)
    assert gated == [h + 1] and not g.core.started


# ---- replay ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("base", [1, 3])
def test_replay_steps_the_heights_ahead_and_counts_their_records(base):
    top = base + limits.heights_ahead_max
    p = _Parts(height=base, known_up_to=top)
    _started(p, base)
    ahead = [_vote(1, cs.VoteType.PREVOTE, base + k, b"\x02" * 32)
             for k in range(1, limits.heights_ahead_max + 1)]
    for v in ahead:
        p.driver.input(cs.VoteReceived(v), v.height)
    written = sum(len(p.wal(base + k)) for k in range(limits.heights_ahead_max + 1))
    again = _Parts(height=base, store=p.store, known_up_to=top)
    again.driver.replay()
    assert written > len(p.wal(base))
    assert again.driver.counters.get("wal_records_replayed") == written


def test_replay_of_an_empty_wal_leaves_the_start_to_the_gate():
    p = _Parts()
    gated: list[int] = []
    p.driver.start_gate = gated.append
    p.driver.replay()
    assert gated == [1] and not p.core.started and p.driver.counters.get(
        "wal_records_replayed") == 0
    q = _Parts()  # no gate: replay starts the height and logs the start
    q.driver.replay()
    assert q.core.started and q.wal(1) == [cs.Start(1)]


# ---- counters and stalls -------------------------------------------------------------------------------
def test_a_dropped_message_is_counted_by_the_first_word_of_its_reason():
    p = _Parts()
    p.driver.execute([cs.MessageDropped("stale vote for an old round")])
    assert p.driver.counters.values == {"dropped:stale": 1}


def test_a_stall_relays_the_proposals_of_the_round_not_our_own():
    p, h = _running(proposer_is_own=False)
    block = b"relay me"
    prop = _proposal(h, block)
    p.driver.input(cs.ProposalReceived(prop, block), h)
    p.outbox.proposals_sent.clear()
    p.outbox.votes_sent.clear()
    p.driver.relay_on_stall(votes_max=10)
    assert p.outbox.proposals_sent == [prop]
    assert [v.type for v in p.outbox.votes_sent] == [cs.VoteType.PREVOTE]  # own, re-sent


def test_a_stall_relays_the_prevotes_behind_the_valid_value():
    p, h = _running(proposer_is_own=False)
    block_hash = _to_precommit(p, b"valid", h)
    assert p.core.valid_value is not None
    p.outbox.votes_sent.clear()
    p.driver.relay_on_stall(votes_max=10)
    pol = [v for v in p.outbox.votes_sent if v.validator_index != 0]
    assert sorted(v.validator_index for v in pol) == [1, 2]
    assert all(v.block_hash == block_hash and v.type == cs.VoteType.PREVOTE for v in pol)


def test_a_stall_does_not_relay_our_own_proposal_twice():
    p, h = _running(proposer_is_own=True)
    p.driver.input(cs.ValueReady(h, 0, b"ours"), h)
    p.outbox.proposals_sent.clear()
    p.driver.relay_on_stall(votes_max=10)
    assert len(p.outbox.proposals_sent) == 1  # re-sent as our own, not relayed as well
