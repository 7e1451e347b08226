"""Recovery is replay: the inputs of a height rebuild the exact state. And random event
sequences (valid, stale, malformed, forged) only ever raise ProtocolError."""
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import hashing, limits
from engine.consensus import (
    BroadcastProposal,
    BroadcastVote,
    CommitCertificate,
    CommitReceived,
    Decide,
    ProtocolError,
    RequestValue,
    SignerGuard,
    Start,
    Step,
    TimeoutFired,
    ValueReady,
    Vote,
    VoteReceived,
    VoteType,
)
from engine.consensus.core import _event_height
from engine.consensus.types import NIL, vote_sign_bytes

from .harness import CHAIN, Net


def _run_network(net: Net, rng: random.Random, steps: int):
    """4 cores, messages delivered in a random order with random timeouts; returns the cores
    and each core's input log."""
    cores = [net.core(i, start=False) for i in range(4)]
    logs: list[list] = [[] for _ in cores]
    pending: list[tuple[int, object]] = [(i, Start(1)) for i in range(4)]
    for _ in range(steps):
        if not pending:
            break
        i, event = pending.pop(rng.randrange(len(pending)))
        logs[i].append((cores[i].height, event))
        for a in cores[i].step(event):
            if isinstance(a, BroadcastVote):
                pending += [(j, VoteReceived(a.vote)) for j in range(4) if j != i]
            elif isinstance(a, BroadcastProposal):
                from engine.consensus import ProposalReceived
                pending += [(j, ProposalReceived(a.proposal, a.block)) for j in range(4) if j != i]
            elif isinstance(a, RequestValue):
                pending.append((i, ValueReady(a.height, a.round, b"v%d-%d" % (a.height, a.round))))
            elif isinstance(a, Decide):
                pending.append((i, Start(a.height + 1)))
            elif hasattr(a, "duration_ms"):
                pending.append((i, TimeoutFired(a.height, a.round, a.step)))
    return cores, logs


def _height(event) -> int:
    for name in ("height",):
        if hasattr(event, name):
            return event.height
    return _event_height(event)


def _wal_of_current_height(log, height):
    """What a driver's WAL holds after deciding height - 1: the inputs of later heights that
    the core kept (a message more than heights_ahead_max ahead when it arrived was dropped)."""
    return [e for fh, e in log if height <= _height(e) <= fh + limits.heights_ahead_max]


def test_replaying_the_inputs_rebuilds_the_exact_state():
    net = Net(4)
    for seed in range(6):
        rng = random.Random(seed)
        cores, logs = _run_network(net, rng, 400)
        assert max(c.height for c in cores) > 1
        for i, core in enumerate(cores):
            persisted = core.signer.state  # what the driver persisted with its last send
            rebuilt = net.core(i, height=core.height, start=False)
            rebuilt.signer = SignerGuard(net.keys[i], persisted)
            replay_actions = []
            for e in _wal_of_current_height(logs[i], core.height):
                replay_actions += rebuilt.step(e)
            assert rebuilt.snapshot() == core.snapshot()
            assert not [a for a in replay_actions if type(a).__name__ == "SignRefused"]


def _commit(net: Net, h: int, r: int, block: bytes, signers: set[int], forge: bool):
    """A CommitReceived for ``block`` signed by ``signers`` (one signature zeroed if forge)."""
    bh = hashing.blake3(block)
    msg = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, h, r, bh)
    sigs = {i: (bytes(64) if forge and i == min(signers) else net.keys[i].sign(msg))
            for i in signers}
    return CommitReceived(block, CommitCertificate.build(h, r, bh, sigs, 4))


def _event_strategy(net: Net):
    blocks = st.sampled_from([b"A", b"B", b""])
    heights = st.integers(0, 4)
    rounds = st.integers(0, 4)
    vtype = st.sampled_from([VoteType.PREVOTE, VoteType.PRECOMMIT])
    who = st.integers(0, 3)
    vote = st.builds(lambda i, t, h, r, b: VoteReceived(net.vote(i, t, h, r, b)),
                     who, vtype, heights, rounds, st.one_of(st.none(), blocks))
    forged = st.builds(lambda t, h, r, i, sig, bh: VoteReceived(Vote(t, h, r, bh, i, sig)),
                       st.integers(-1, 3), heights, rounds, st.integers(-2, 9),
                       st.binary(min_size=0, max_size=65),
                       st.one_of(st.just(NIL), st.binary(min_size=31, max_size=33)))
    proposal = st.builds(lambda h, r, b, pr, p: net.proposal(h, r, b, pol_round=min(pr, r - 1),
                                                           proposer=p),
                         heights, rounds, blocks, st.integers(-1, 3),
                         st.one_of(st.none(), who))
    commit = st.builds(lambda h, r, b, signers, forge: _commit(net, h, r, b, signers, forge),
                       heights, rounds, blocks, st.sets(who, max_size=4), st.booleans())
    timeout = st.builds(TimeoutFired, heights, rounds, st.sampled_from(list(Step)))
    value = st.builds(ValueReady, heights, rounds, blocks)
    start = st.builds(Start, heights)
    return st.one_of(vote, forged, proposal, commit, timeout, value, start)


NET = Net(4)


@settings(max_examples=60, deadline=None)
@given(events=st.lists(_event_strategy(NET), max_size=40), me=st.integers(0, 3))
def test_random_events_only_raise_protocol_error(events, me):
    c = NET.core(me, start=False)
    for e in events:
        before = c.snapshot()
        try:
            c.step(e)
        except ProtocolError:
            assert c.snapshot() == before  # a rejected message changes nothing
        assert -1 <= c.locked_round <= c.round and -1 <= c.valid_round <= c.round
        assert (c.locked_value is None) == (c.locked_round == -1)
