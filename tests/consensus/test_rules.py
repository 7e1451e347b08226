"""One scenario per rule of Algorithm 1 (paper line numbers), driven through step() only.

4 validators of power 1 (quorum 3, f+1 = 2); the core under test is validator 0, which is
the proposer of (height 1, round 3) under the round-robin, and of no earlier round of height 1.
"""
import dataclasses

import pytest

from engine.consensus import (
    NIL,
    BroadcastProposal,
    BroadcastVote,
    CommitCertificate,
    CommitReceived,
    Decide,
    MessageDropped,
    ProtocolError,
    ReportEvidence,
    RequestValue,
    ScheduleTimeout,
    Start,
    Step,
    TimeoutFired,
    ValueReady,
    VoteType,
)
from engine.consensus.types import vote_sign_bytes

from .harness import CHAIN, Net, h, of_type


def votes_out(actions):
    return [(a.vote.type, a.vote.round, a.vote.block_hash) for a in of_type(actions, BroadcastVote)]


def feed(core, *events):
    out = []
    for e in events:
        out += core.step(e)
    return out


@pytest.fixture
def net():
    return Net(4)


def lock_on(net, core, block=b"A", round=0):
    """Proposal + 2f+1 prevotes for ``block`` in ``round``: the core locks it (l.36)."""
    return feed(core, net.proposal(1, round, block), net.prevote(1, 1, round, block),
                net.prevote(2, 1, round, block))


def test_schedule_is_round_robin(net):
    c = net.core(0, start=False)
    assert [c.proposer(1, r) for r in range(5)] == [1, 2, 3, 0, 1]


def test_start_schedules_propose_timeout_and_waits(net):
    c = net.core(0, start=False)
    assert feed(c, net.prevote(1, 1, 0, b"A")) == []  # logged; rules wait for Start
    out = c.step(Start(1))
    assert of_type(out, ScheduleTimeout) == [ScheduleTimeout(1, 0, Step.PROPOSE, 1000)]


def test_l11_proposer_asks_for_a_value_then_proposes(net):
    c = net.core(1, start=False)  # validator 1 proposes (1, 0)
    out = c.step(Start(1))
    assert of_type(out, RequestValue) == [RequestValue(1, 0)]
    out = c.step(ValueReady(1, 0, b"block"))
    (bp,) = of_type(out, BroadcastProposal)
    assert bp.proposal.pol_round == -1 and bp.block == b"block"
    assert votes_out(out) == [(VoteType.PREVOTE, 0, h(b"block"))]  # its own proposal, l.22
    assert c.step(ValueReady(1, 0, b"other")) == []  # stale answer: it proposed already
    assert (c.round, c.step_) == (0, Step.PREVOTE)
    # A value handed to a validator that is not the proposer of (1, 0) is never proposed.
    other = net.core(0)
    assert other.step(ValueReady(1, 0, b"block")) == []
    assert (other.round, other.step_) == (0, Step.PROPOSE)


def test_l22_prevote_valid_proposal(net):
    c = net.core(0)
    out = c.step(net.proposal(1, 0, b"A"))
    assert votes_out(out) == [(VoteType.PREVOTE, 0, h(b"A"))]
    assert c.step_ == Step.PREVOTE


def test_l22_prevote_nil_for_invalid_block(net):
    net.invalid.add(b"bad")
    c = net.core(0)
    assert votes_out(c.step(net.proposal(1, 0, b"bad"))) == [(VoteType.PREVOTE, 0, NIL)]


def test_l36_lock_and_precommit(net):
    c = net.core(0)
    out = lock_on(net, c)
    assert votes_out(out) == [(VoteType.PREVOTE, 0, h(b"A")), (VoteType.PRECOMMIT, 0, h(b"A"))]
    assert (c.locked_value, c.locked_round) == (h(b"A"), 0)
    assert (c.valid_value, c.valid_round) == (h(b"A"), 0)
    assert c.step_ == Step.PRECOMMIT


def test_l22_locked_node_prevotes_nil_for_another_value(net):
    c = net.core(0)
    lock_on(net, c)
    out = feed(c, net.precommit(1, 1, 0, None), net.precommit(2, 1, 0, None))
    assert of_type(out, ScheduleTimeout) == [ScheduleTimeout(1, 0, Step.PRECOMMIT, 500)]  # l.47
    out = c.step(TimeoutFired(1, 0, Step.PRECOMMIT))  # l.65
    assert c.round == 1 and c.step_ == Step.PROPOSE
    assert ScheduleTimeout(1, 1, Step.PROPOSE, 1100) in out
    assert votes_out(c.step(net.proposal(1, 1, b"B"))) == [(VoteType.PREVOTE, 1, NIL)]


def test_l22_locked_node_prevotes_its_locked_value(net):
    c = net.core(0)
    lock_on(net, c)
    feed(c, net.precommit(1, 1, 0, None), net.precommit(2, 1, 0, None),
         TimeoutFired(1, 0, Step.PRECOMMIT))
    assert votes_out(c.step(net.proposal(1, 1, b"A"))) == [(VoteType.PREVOTE, 1, h(b"A"))]


def _skip_to_round_2(net, c):
    # f+1 messages of round 2 (l.55) move the core there.
    return feed(c, net.precommit(1, 1, 2, None), net.precommit(2, 1, 2, None))


def test_l28_newer_proof_of_lock_unlocks(net):
    c = net.core(0)
    lock_on(net, c, b"A", 0)
    _skip_to_round_2(net, c)
    assert c.round == 2 and c.locked_value == h(b"A")
    out = c.step(net.proposal(1, 2, b"B", pol_round=1))
    assert votes_out(out) == []  # no POL for round 1 yet
    out = feed(c, net.prevote(1, 1, 1, b"B"), net.prevote(2, 1, 1, b"B"))
    assert votes_out(out) == []
    out = c.step(net.prevote(3, 1, 1, b"B"))  # 2f+1 prevotes for B in round 1 > lockedRound 0
    assert votes_out(out) == [(VoteType.PREVOTE, 2, h(b"B"))]


def test_l28_older_proof_of_lock_does_not_unlock(net):
    c = net.core(0)
    # Lock on A in round 1 (skip there first).
    feed(c, net.precommit(1, 1, 1, None), net.precommit(2, 1, 1, None))
    assert c.round == 1
    feed(c, net.proposal(1, 1, b"A"), net.prevote(1, 1, 1, b"A"), net.prevote(2, 1, 1, b"A"))
    assert c.locked_round == 1
    _skip_to_round_2(net, c)
    out = feed(c, net.prevote(1, 1, 0, b"B"), net.prevote(2, 1, 0, b"B"),
               net.prevote(3, 1, 0, b"B"), net.proposal(1, 2, b"B", pol_round=0))
    assert votes_out(out) == [(VoteType.PREVOTE, 2, NIL)]  # POL round 0 < lockedRound 1


def test_reproposal_of_the_valid_value(net):
    c = net.core(0)
    lock_on(net, c, b"A", 0)
    # Round 3 is validator 0's: skipping there makes it propose its valid value (l.15-19).
    out = feed(c, net.prevote(1, 1, 3, None), net.prevote(2, 1, 3, None))
    assert c.round == 3
    (bp,) = of_type(out, BroadcastProposal)
    assert bp.block == b"A" and bp.proposal.pol_round == 0 and bp.proposal.round == 3
    assert of_type(out, RequestValue) == []


def test_l36_valid_value_updates_even_in_precommit_step(net):
    c = net.core(0)
    out = feed(c, net.proposal(1, 0, b"A"), net.prevote(1, 1, 0, None),
               net.prevote(2, 1, 0, b"A"))
    assert ScheduleTimeout(1, 0, Step.PREVOTE, 500) in out  # l.34: 2f+1 prevotes of anything
    out = c.step(TimeoutFired(1, 0, Step.PREVOTE))  # l.61
    assert votes_out(out) == [(VoteType.PRECOMMIT, 0, NIL)]
    c.step(net.prevote(3, 1, 0, b"A"))  # now 2f+1 for A, while in precommit
    assert (c.valid_value, c.valid_round) == (h(b"A"), 0)
    assert c.locked_round == -1  # no lock: it did not precommit A


def test_l44_precommit_nil_on_nil_quorum(net):
    c = net.core(0)
    out = feed(c, TimeoutFired(1, 0, Step.PROPOSE), net.prevote(1, 1, 0, None),
               net.prevote(2, 1, 0, None))
    assert votes_out(out) == [(VoteType.PREVOTE, 0, NIL), (VoteType.PRECOMMIT, 0, NIL)]


def test_l57_propose_timeout_prevotes_nil_and_stale_timeouts_do_nothing(net):
    c = net.core(0)
    assert votes_out(c.step(TimeoutFired(1, 0, Step.PROPOSE))) == [(VoteType.PREVOTE, 0, NIL)]
    assert c.step(TimeoutFired(1, 0, Step.PROPOSE)) == []  # already in prevote
    assert c.step(TimeoutFired(1, 5, Step.PRECOMMIT)) == []  # another round
    assert c.step(TimeoutFired(9, 0, Step.PRECOMMIT)) == []  # another height
    assert c.round == 0 and c.step_ == Step.PREVOTE


def test_timeouts_grow_linearly_with_round(net):
    c = net.core(0)
    out = feed(c, net.prevote(1, 1, 4, None), net.prevote(2, 1, 4, None))
    assert ScheduleTimeout(1, 4, Step.PROPOSE, 1000 + 4 * 100) in out


def test_l55_round_skip_needs_f_plus_one(net):
    c = net.core(0)
    c.step(net.prevote(1, 1, 5, None))
    assert c.round == 0  # one validator (1/4) is not f+1
    c.step(net.proposal(1, 5, b"X"))  # a proposal counts as a message of its round (1/4 more)
    assert c.round == 5


def test_l49_decide_on_precommits_of_an_earlier_round(net):
    c = net.core(0)
    _skip_to_round_2(net, c)
    out = feed(c, net.proposal(1, 1, b"A"), net.precommit(1, 1, 1, b"A"),
               net.precommit(2, 1, 1, b"A"))
    assert of_type(out, Decide) == []
    out = c.step(net.precommit(3, 1, 1, b"A"))
    (d,) = of_type(out, Decide)
    assert (d.height, d.round, d.block) == (1, 1, b"A")
    d.certificate.verify(CHAIN, net.vs)
    assert d.certificate.signer_indices() == [1, 2, 3]
    assert c.height == 2 and not c.started
    out = c.step(Start(2))
    assert ScheduleTimeout(2, 0, Step.PROPOSE, 1000) in out


def test_decide_needs_the_block(net):
    c = net.core(0)
    out = feed(c, *(net.precommit(i, 1, 0, b"A") for i in (1, 2, 3)))
    assert of_type(out, Decide) == []  # 2f+1 precommits but the block is unknown
    (d,) = of_type(c.step(net.proposal(1, 0, b"A")), Decide)
    assert d.block == b"A"


def test_future_height_messages_are_buffered_and_replayed(net):
    c = net.core(0)
    feed(c, net.prevote(1, 2, 0, b"N"), net.prevote(2, 2, 0, b"N"))
    assert len(c.future) == 2
    feed(c, net.proposal(1, 0, b"A"), *(net.precommit(i, 1, 0, b"A") for i in (1, 2, 3)))
    assert c.height == 2 and c.future == []
    out = feed(c, Start(2), net.proposal(2, 0, b"N"))  # proposer of (2, 0) is validator 2
    assert (VoteType.PRECOMMIT, 0, h(b"N")) in votes_out(out)  # the buffered prevotes counted


def test_bounds_report_dropped_messages(net):
    c = net.core(0)
    (d,) = c.step(net.prevote(1, 1, 1001, None))
    assert isinstance(d, MessageDropped) and "round" in d.reason
    (d,) = c.step(net.prevote(1, 4, 0, None))
    assert isinstance(d, MessageDropped) and "height" in d.reason


def test_equivocation_becomes_evidence_once(net):
    c = net.core(0)
    c.step(net.prevote(1, 1, 0, b"A"))
    out = c.step(net.prevote(1, 1, 0, b"B"))
    (e,) = of_type(out, ReportEvidence)
    e.evidence.verify(CHAIN, net.vs, lambda pk, m, s: __import__("engine.crypto").crypto
                      .verify(pk, m, s))
    assert {e.evidence.vote_a.block_hash, e.evidence.vote_b.block_hash} == {h(b"A"), h(b"B")}
    assert of_type(c.step(net.prevote(1, 1, 0, b"C")), ReportEvidence) == []
    assert c.step(net.prevote(1, 1, 0, b"A")) == []  # a plain duplicate


def test_protocol_errors_change_nothing(net):
    c = net.core(0)
    before = c.snapshot()
    good = net.prevote(1, 1, 0, b"A")
    forged = dataclasses.replace(good.vote, signature=bytes(64))
    bad_events = [
        type(good)(forged),
        type(good)(dataclasses.replace(good.vote, validator_index=7)),
        type(good)(dataclasses.replace(good.vote, block_hash=b"short")),
        net.proposal(1, 0, b"A", proposer=2),  # not the proposer of (1, 0)
        type(net.proposal(1, 0, b"A"))(net.proposal(1, 0, b"A").proposal, b"other block"),
        type(net.proposal(1, 0, b"A"))(dataclasses.replace(net.proposal(1, 0, b"A").proposal,
                                                           pol_round=0), b"A"),
    ]
    for e in bad_events:
        with pytest.raises(ProtocolError):
            c.step(e)
    assert c.snapshot() == before


def test_commit_received_catches_up(net):
    c = net.core(0)
    msg = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, 1, 4, h(b"A"))
    sigs = {i: net.keys[i].sign(msg) for i in (1, 2, 3)}
    cert = CommitCertificate.build(1, 4, h(b"A"), sigs, 4)
    with pytest.raises(ProtocolError):
        c.step(CommitReceived(b"not A", cert))
    (d,) = of_type(c.step(CommitReceived(b"A", cert)), Decide)
    assert d.height == 1 and d.round == 4 and c.height == 2
    weak = CommitCertificate.build(2, 0, h(b"B"), {1: sigs[1]}, 4)
    with pytest.raises(ProtocolError):
        c.step(CommitReceived(b"B", weak))


def test_observer_without_key_follows_and_decides(net):
    from engine.consensus import ConsensusCore
    c = ConsensusCore(CHAIN, net.vs, None)
    c.step(Start(1))
    out = feed(c, net.proposal(1, 0, b"A"), *(net.precommit(i, 1, 0, b"A") for i in (1, 2, 3)))
    assert of_type(out, BroadcastVote) == [] and len(of_type(out, Decide)) == 1


def test_l49_block_learned_from_another_round_completes_a_waiting_decision(net):
    c = net.core(0)
    _skip_to_round_2(net, c)
    out = feed(c, *(net.precommit(i, 1, 1, b"A") for i in (1, 2, 3)))
    assert of_type(out, Decide) == []  # round 1's block is unknown
    (d,) = of_type(c.step(net.proposal(1, 2, b"A", pol_round=-1)), Decide)  # from round 2
    assert (d.round, d.block) == (1, b"A")
