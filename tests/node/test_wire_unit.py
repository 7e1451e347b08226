"""The node's real ports, one at a time (engine/node/wire.py): the peer wire before and after
its peer set is attached, the outbox's encoding of own votes and proposals (full and compact,
to all peers or one), and the asyncio timers (delays in milliseconds, first-in-first-out soon
callbacks, errors reported, cancellation one at a time and at stop). Written against a mutation
run over the module (docs/mutation.md)."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from engine import consensus as cs
from engine.block import Block, block_id
from engine.crypto import SigningKey
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.compact import assemble, split_block
from engine.node.wire import LoopTimers, PeerOutbox, PeerWire
from engine.suite import get_suite
from tests.node.helpers import run

CHAIN = b"wire-unit"
KEY = SigningKey(b"\x07" * 32)
LIMITS = NetLimits()
A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


class _Peers:
    """What PeerWire reaches of a PeerSet: it records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def broadcast(self, message: bytes) -> None:
        self.calls.append(("broadcast", message))

    def send(self, peer: bytes, message: bytes) -> None:
        self.calls.append(("send", peer, message))

    def penalize(self, peer: bytes, reason: str) -> None:
        self.calls.append(("penalize", peer, reason))

    def connected(self) -> set[bytes]:
        return {C, A, B}


def _wire() -> tuple[PeerWire, _Peers]:
    wire, peers = PeerWire(), _Peers()
    wire.peers = peers  # type: ignore[assignment]
    return wire, peers


def _vote(height: int, index: int, vote_type: int = 1) -> cs.Vote:
    bh = bytes([index]) * 32
    sig = KEY.sign(cs.vote_sign_bytes(CHAIN, vote_type, height, 0, bh))
    return cs.Vote(cs.VoteType(vote_type), height, 0, bh, index, sig)


def _block(n_txs: int) -> tuple[bytes, cs.Proposal]:
    txs = [os.urandom(90 + i) for i in range(n_txs)]
    raw = Block.make(chain_id=CHAIN, height=5, time_ms=1, parent_hash=bytes(32),
                     app_hash=bytes(32), proposer_index=2, last_commit=b"", evidence=[],
                     txs=txs, validators_hash=bytes(32), next_validators_hash=bytes(32)).encode()
    unsigned = cs.Proposal(5, 1, -1, block_id(raw), 2, b"")
    return raw, cs.Proposal(5, 1, -1, block_id(raw), 2, KEY.sign(unsigned.sign_bytes(CHAIN)))


def test_a_wire_without_peers_sends_nothing_and_knows_no_peer():
    wire = PeerWire()
    wire.broadcast(b"x")
    wire.send(A, b"x")
    wire.penalize(A, "why")
    assert wire.connected() == []
    peers = _Peers()
    wire.peers = peers  # type: ignore[assignment]
    assert peers.calls == []  # nothing was queued for later either


def test_a_wire_with_peers_forwards_each_call_and_lists_peers_sorted():
    wire, peers = _wire()
    wire.broadcast(b"all")
    wire.send(B, b"one")
    wire.penalize(C, "bad frame")
    assert peers.calls == [("broadcast", b"all"), ("send", B, b"one"),
                           ("penalize", C, "bad frame")]
    assert wire.connected() == [A, B, C]


def test_the_outbox_sends_no_message_for_no_votes():
    wire, peers = _wire()
    PeerOutbox(wire).votes([])
    PeerOutbox(wire).votes([], to=A)
    assert peers.calls == []


@pytest.mark.parametrize("to", [None, B])
def test_the_outbox_encodes_votes_in_one_message_to_all_or_one(to):
    wire, peers = _wire()
    votes = [_vote(300, 0), _vote(300, 3, vote_type=2)]
    PeerOutbox(wire).votes(votes, to=to)
    assert len(peers.calls) == 1
    call = peers.calls[0]
    assert call[:-1] == (("broadcast",) if to is None else ("send", to))
    msg = codec.decode(call[-1], LIMITS)
    assert msg.kind == codec.VOTES
    assert [cs.Vote.decode(v) for v in msg.fields[0]] == votes


@pytest.mark.parametrize("to", [None, A])
def test_the_outbox_sends_a_full_proposal_with_its_block(to):
    wire, peers = _wire()
    raw, proposal = _block(3)
    PeerOutbox(wire).proposal(proposal, raw, to=to)  # full proposals by default
    (call,) = peers.calls
    assert call[:-1] == (("broadcast",) if to is None else ("send", to))
    msg = codec.decode(call[-1], LIMITS)
    assert msg.kind == codec.PROPOSAL
    assert cs.Proposal.decode(msg.fields[0]) == proposal
    assert msg.fields[1] == raw


@pytest.mark.parametrize("suite", ["ed25519-blake3", "sm2-sm3"])
@pytest.mark.parametrize("to", [None, C])
def test_the_compact_outbox_sends_the_head_and_the_ids_in_the_chains_suite(to, suite):
    s = get_suite(suite)
    wire, peers = _wire()
    raw, proposal = _block(4)
    PeerOutbox(wire, compact=True, suite=s).proposal(proposal, raw, to=to)
    (call,) = peers.calls
    assert call[:-1] == (("broadcast",) if to is None else ("send", to))
    msg = codec.decode(call[-1], LIMITS)
    assert msg.kind == codec.COMPACT_PROPOSAL
    assert cs.Proposal.decode(msg.fields[0]) == proposal
    head, ids = msg.fields[1], msg.fields[2]
    txs = list(Block.decode(raw).txs)
    assert ids == s.hash_many(txs) and len(ids) == 4
    assert len(head) < len(raw) and assemble(head, txs) == raw
    assert (head, ids) == (split_block(raw, s)[0], split_block(raw, s)[2])




def _timers() -> tuple[LoopTimers, list[BaseException]]:
    """Timers reporting callback errors to the returned list."""
    errors: list[BaseException] = []
    return LoopTimers(errors.append), errors


def test_call_later_takes_milliseconds():
    async def main():
        timers, errors = _timers()
        fired: list[float] = []
        start = time.monotonic()
        timers.call_later(250, lambda: fired.append(time.monotonic() - start))
        await asyncio.sleep(0.08)
        assert fired == []  # not yet: 250 ms, not 250 // 1000 = 0 s
        for _ in range(100):
            if fired:
                break
            await asyncio.sleep(0.02)
        assert fired and 0.2 <= fired[0] < 2.0, fired  # and not 250 s either
        assert timers._handles == set()  # a fired timer is no longer pending
        assert errors == []

    run(main())


def test_call_soon_runs_first_in_first_out_and_reports_errors_without_stopping_others():
    async def main():
        timers, errors = _timers()
        order: list[int] = []
        boom = ValueError("boom")

        def fail():
            raise boom

        timers.call_soon(lambda: order.append(1))
        timers.call_soon(fail)
        timers.call_soon(lambda: order.append(2))
        timers.call_later(0, lambda: order.append(3))
        assert len(timers._handles) == 4
        await asyncio.sleep(0.02)
        assert order == [1, 2, 3]
        assert errors == [boom]
        assert timers._handles == set()

    run(main())


def test_a_cancelled_timer_never_fires_and_is_no_longer_pending():
    async def main():
        timers, errors = _timers()
        fired: list[str] = []
        first = timers.call_later(20, lambda: fired.append("first"))
        timers.call_later(20, lambda: fired.append("second"))
        soon = timers.call_soon(lambda: fired.append("soon"))
        first.cancel()
        soon.cancel()
        assert len(timers._handles) == 1
        await asyncio.sleep(0.1)
        assert fired == ["second"]
        assert timers._handles == set()
        assert errors == []

    run(main())


def test_cancel_all_stops_every_pending_timer():
    async def main():
        timers, errors = _timers()
        fired: list[int] = []
        for i in range(5):
            timers.call_later(10 * i, lambda i=i: fired.append(i))
        timers.call_soon(lambda: fired.append(99))
        timers.cancel_all()
        assert timers._handles == set()
        await asyncio.sleep(0.1)
        assert fired == [] and errors == []

    run(main())


def test_a_handle_cancelled_before_it_was_scheduled_is_harmless():
    """The handle exists before the loop has scheduled it (the wrapper is built first)."""
    from engine.node.wire import _Handle

    timers = LoopTimers(lambda e: None)
    h = _Handle(timers)
    h.cancel()  # no asyncio handle yet: nothing to cancel, nothing raised
    assert h.handle is None
