"""The peer router's checks, one at a time (engine/node/router.py): a proposal's proposer index
and signature, a batch of votes with its bad ones counted and named, a proposal whose
transactions are verified ahead, the answer to a peer missing a compact proposal's
transactions, the stage CPU of completing one, and gossiped transactions entering the pool as a
peer's. Written against the survivors of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import asyncio
import os
import time
import types

import pytest

from engine import consensus as cs
from engine.block import Block, block_id
from engine.crypto import SigningKey
from engine.errors import ProtocolError
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.compact import split_block
from engine.node.ports import Counters, NullObserver
from engine.node.router import PeerRouter
from engine.node.signatures import VerifiedSignatures
from engine.suite import get_suite

CHAIN = b"router-unit"
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
VSET = cs.ValidatorSet([cs.Validator(k.public_key, 1) for k in KEYS])
PEER = b"p" * 32
LIMITS = NetLimits()


class _Core:
    def __init__(self, height: int) -> None:
        self.height = height
        self.blocks: dict[bytes, bytes] = {}

    def validators_for(self, height: int):
        return VSET if self.height <= height <= self.height + 1 else None


class _Driver:
    def __init__(self, height: int = 3) -> None:
        self.running = True
        self.core = _Core(height)
        self.counters = Counters()
        self.inputs: list = []
        self.refuse: set[int] = set()  # validator indices whose votes the core refuses

    def height_kept(self, height: int) -> bool:
        return self.core.validators_for(height) is not None

    def input(self, event, height: int) -> None:
        if type(event) is cs.VoteReceived and event.vote.validator_index in self.refuse:
            raise ProtocolError("the core refuses it")
        self.inputs.append(event)

    def resend_own(self, to=None) -> None:
        pass


class _Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, codec.Message]] = []
        self.penalized: list[str] = []

    def send(self, peer: bytes, raw: bytes) -> None:
        self.sent.append((peer, codec.decode(raw, LIMITS)))

    def penalize(self, peer: bytes, reason: str) -> None:
        self.penalized.append(reason)


class _Validator:
    suite = get_suite(None)

    def __init__(self) -> None:
        self.remembered: list[bytes] = []

    def block_hash(self, raw: bytes) -> bytes:
        return block_id(raw)

    def decoded(self, key: bytes, raw: bytes):
        b = Block.decode(raw)
        return b, self.suite.hash_many(list(b.txs)) if b.txs else []

    def remember_block(self, raw, key, block, tx_ids) -> None:
        self.remembered.append(key)


class _Mempool:
    def __init__(self, pool: dict[bytes, bytes] | None = None,
                 verified: set[bytes] | None = None) -> None:
        self.pool = pool or {}
        self.verified = verified if verified is not None else set(self.pool)
        self.submitted: list[tuple[list[bytes], bool]] = []
        self.verified_ahead: list[list[bytes]] = []

    def envelopes(self, ids):
        return [self.pool.get(i) for i in ids]

    def unverified(self, ids):
        return [i for i, t in enumerate(ids) if t not in self.verified]

    async def verify_ahead(self, envelopes, tx_ids) -> None:
        self.verified_ahead.append(list(tx_ids))
        self.verified.update(tx_ids)

    def submit(self, envelopes, *, local: bool = False) -> None:
        self.submitted.append((list(envelopes), local))


def _router(driver=None, mempool=None, spawned=None):
    driver = driver or _Driver()
    wire = _Wire()
    sync = types.SimpleNamespace(on_status=None, on_get_blocks=None, on_blocks=None,
                                 on_pruned=None, status_message=lambda: b"")
    router = PeerRouter(chain_id=CHAIN, validators=VSET, driver=driver,  # type: ignore[arg-type]
                        mempool=mempool or _Mempool(),  # type: ignore[arg-type]
                        validator=_Validator(), evidence=None,  # type: ignore[arg-type]
                        sync=sync, signatures=VerifiedSignatures(NullObserver()),  # type: ignore[arg-type]
                        wire=wire,  # type: ignore[arg-type]
                        spawn=(spawned.append if spawned is not None else lambda c: c.close()))
    return router, driver, wire


def _block(height: int = 3, n_txs: int = 4) -> tuple[bytes, list[bytes]]:
    txs = [os.urandom(120) for _ in range(n_txs)]
    b = Block.make(chain_id=CHAIN, height=height, time_ms=1, parent_hash=bytes(32),
                   app_hash=bytes(32), proposer_index=1, last_commit=b"", evidence=[], txs=txs,
                   validators_hash=bytes(32), next_validators_hash=bytes(32))
    return b.encode(), txs


def _proposal(raw: bytes, height: int = 3, index: int = 1, signer: int | None = None,
              ) -> cs.Proposal:
    unsigned = cs.Proposal(height, 0, -1, block_id(raw), index, b"")
    key = KEYS[index if signer is None else signer]
    return cs.Proposal(height, 0, -1, block_id(raw), index, key.sign(unsigned.sign_bytes(CHAIN)))


def _vote(index: int, height: int = 3, signer: int | None = None) -> cs.Vote:
    unsigned = cs.Vote(cs.VoteType.PREVOTE, height, 0, bytes(32), index, b"")
    key = KEYS[index if signer is None else signer]
    return cs.Vote(cs.VoteType.PREVOTE, height, 0, bytes(32), index,
                   key.sign(unsigned.sign_bytes(CHAIN)))


def _message(kind: int, *fields) -> codec.Message:
    return codec.decode(codec.encode(kind, *fields), LIMITS)


# ---- proposals --------------------------------------------------------------------------------
def test_a_proposal_from_an_index_outside_the_set_is_refused_not_an_index_error():
    raw, _ = _block()
    for index in (len(VSET), len(VSET) + 1, 200):
        router, driver, wire = _router()
        p = cs.Proposal(3, 0, -1, block_id(raw), index, KEYS[0].sign(b"x"))
        router.on_message(PEER, _message(codec.PROPOSAL, p.encode(), raw))
        assert driver.inputs == [] and wire.penalized == ["invalid_proposal"]
        assert driver.counters.get("dropped:not_a_validator") == 1


def test_a_proposal_signed_by_another_key_is_refused_and_a_good_one_goes_in():
    raw, txs = _block()
    ids = _Validator.suite.hash_many(txs)
    router, driver, wire = _router(mempool=_Mempool(dict(zip(ids, txs))))
    forged = _proposal(raw, index=1, signer=2)  # index 1 in range, key 2's signature
    router.on_message(PEER, _message(codec.PROPOSAL, forged.encode(), raw))
    assert driver.inputs == [] and wire.penalized == ["invalid_proposal"]
    good = _proposal(raw, index=1)
    router.on_message(PEER, _message(codec.PROPOSAL, good.encode(), raw))
    assert [type(e) for e in driver.inputs] == [cs.ProposalReceived]
    assert driver.inputs[0].proposal == good and wire.penalized == ["invalid_proposal"]


# ---- votes --------------------------------------------------------------------------------------
def test_votes_of_every_index_go_in_and_each_bad_one_is_counted():
    router, driver, wire = _router()
    good = [_vote(i) for i in range(len(VSET))]  # index 0 included
    router.on_message(PEER, _message(codec.VOTES, [v.encode() for v in good]))
    assert [e.vote for e in driver.inputs] == good and wire.penalized == []
    # One forged signature, one index past the set, one the core refuses: 3 bad (a sum, not
    # any other mix of the two counts), the good vote among them still goes in.
    driver.inputs.clear()
    driver.refuse = {2}
    bad_sig = _vote(1, signer=3)
    past = cs.Vote(cs.VoteType.PREVOTE, 3, 0, bytes(32), 4, bytes(64))
    batch = [bad_sig, past, _vote(2), _vote(0)]
    with pytest.raises(ProtocolError, match="^3 invalid votes"):
        router._on_votes(PEER, [v.encode() for v in batch])
    assert [e.vote for e in driver.inputs] == [_vote(0)]
    assert driver.counters.get("dropped:not_a_validator") == 2
    # Two past the set and two forged: 4.
    driver.inputs.clear()
    driver.refuse = set()
    batch = [_vote(1, signer=3), _vote(2, signer=0), past,
             cs.Vote(cs.VoteType.PREVOTE, 3, 0, bytes(32), 5, bytes(64)), _vote(3)]
    with pytest.raises(ProtocolError, match="^4 invalid votes"):
        router._on_votes(PEER, [v.encode() for v in batch])
    assert [e.vote for e in driver.inputs] == [_vote(3)]


def test_one_vote_the_core_refuses_is_named_and_the_rest_go_in():
    router, driver, _ = _router()
    driver.refuse = {1}
    with pytest.raises(ProtocolError, match="^1 invalid votes"):
        router._on_votes(PEER, [_vote(i).encode() for i in range(4)])
    assert [e.vote.validator_index for e in driver.inputs] == [0, 2, 3]
    assert driver.counters.get("dropped:not_a_validator") == 0


def test_bad_votes_are_counted_whatever_the_mix():
    """Only votes past the set (none verifiable), and three past the set with one good one:
    the count is the number of bad votes (a remainder or a division would give 0 or fail)."""
    router, driver, _ = _router()
    past = [cs.Vote(cs.VoteType.PREVOTE, 3, 0, bytes(32), i, bytes(64)) for i in (4, 5, 6)]
    with pytest.raises(ProtocolError, match="^2 invalid votes"):
        router._on_votes(PEER, [v.encode() for v in past[:2]])
    with pytest.raises(ProtocolError, match="^3 invalid votes"):
        router._on_votes(PEER, [v.encode() for v in [*past, _vote(1)]])
    assert [e.vote for e in driver.inputs] == [_vote(1)]


def test_a_height_whose_set_is_unknown_is_counted_once_asked():
    router, driver, _ = _router()
    assert router._set_of(3) is VSET and driver.counters.get("dropped:set_unknown") == 0
    assert router._set_of(9) is None and driver.counters.get("dropped:set_unknown") == 1


# ---- verified ahead ----------------------------------------------------------------------------
def test_a_block_with_nothing_left_to_verify_goes_in_at_once():
    raw, txs = _block()
    ids = _Validator.suite.hash_many(txs)
    router, driver, _ = _router(mempool=_Mempool(dict(zip(ids, txs))))
    assert router._unverified_txs(raw) is None
    router._accept_proposal(_proposal(raw), raw)
    assert len(driver.inputs) == 1


def test_unverified_transactions_are_verified_first_then_the_proposal_goes_in():
    raw, txs = _block()
    ids = _Validator.suite.hash_many(txs)
    pool = _Mempool(dict(zip(ids, txs)), verified={ids[0], ids[2]})
    spawned: list = []
    router, driver, _ = _router(mempool=pool, spawned=spawned)
    assert router._unverified_txs(raw) == ([txs[1], txs[3]], [ids[1], ids[3]])
    router._accept_proposal(_proposal(raw), raw)
    assert driver.inputs == [] and len(spawned) == 1
    asyncio.run(spawned.pop())
    assert pool.verified_ahead == [[ids[1], ids[3]]] and len(driver.inputs) == 1


@pytest.mark.parametrize("error", [ProtocolError, ValueError])
def test_a_block_that_does_not_decode_is_left_to_the_core(error):
    router, driver, _ = _router()

    def refuse(raw):
        raise error("does not decode")

    router.validator.block_hash = refuse  # type: ignore[method-assign]
    assert router._unverified_txs(b"garbage") is None
    router._accept_proposal(_proposal(_block()[0]), b"garbage")
    assert len(driver.inputs) == 1  # the core judges it (and refuses it)


@pytest.mark.parametrize("why", ["stopped", "height_gone"])
def test_a_proposal_verified_ahead_is_dropped_if_the_node_moved_on(why):
    raw, _ = _block()
    spawned: list = []
    router, driver, _ = _router(mempool=_Mempool(verified=set()), spawned=spawned)
    router._accept_proposal(_proposal(raw), raw)
    if why == "stopped":
        driver.running = False
    else:
        driver.core.height = 5  # decided meanwhile: height 3 is no longer kept
    asyncio.run(spawned.pop())
    assert driver.inputs == []


# ---- a peer asks for a compact proposal's transactions -----------------------------------------------
def test_get_proposal_txs_answers_at_a_high_height_and_refuses_any_index_past_the_end():
    raw, txs = _block(height=1000)
    router, driver, wire = _router(driver=_Driver(height=int("1000")))
    h = block_id(raw)
    driver.core.blocks[h] = raw
    router.on_message(PEER, _message(codec.GET_PROPOSAL_TXS, 1000, h, [3, 0]))
    (_, answer), = wire.sent
    assert answer.kind == codec.PROPOSAL_TXS and list(answer.fields[3]) == [txs[3], txs[0]]
    for past in (len(txs), len(txs) + 1, 99):
        router.on_message(PEER, _message(codec.GET_PROPOSAL_TXS, 1000, h, [0, past]))
    assert len(wire.sent) == 1 and wire.penalized == ["invalid_get_proposal_txs"] * 3
    # Not our height (below or above): nothing to answer, and no fault of the asker.
    for other in (999, 1001):
        router.on_message(PEER, _message(codec.GET_PROPOSAL_TXS, other, h, [0]))
    assert len(wire.sent) == 1 and len(wire.penalized) == 3


# ---- completing a compact proposal: its stage CPU ----------------------------------------------------
def test_completing_a_compact_proposal_reports_a_part_of_the_time_it_took():
    raw, txs = _block(n_txs=300)
    head, _, ids = split_block(raw)
    router, driver, _ = _router(mempool=_Mempool(dict(zip(ids, txs))))
    seconds: list[float] = []
    router.stage_cpu = lambda stage, s: seconds.append(s)
    cpu0 = time.thread_time()
    router.on_message(PEER, _message(codec.COMPACT_PROPOSAL, _proposal(raw).encode(), head, ids))
    spent = time.thread_time() - cpu0
    assert len(driver.inputs) == 1 and len(seconds) == 2
    assert all(0 <= s <= spent + 1e-3 for s in seconds) and sum(seconds) <= spent + 1e-3


# ---- gossip -------------------------------------------------------------------------------------------
def test_gossiped_transactions_enter_the_pool_as_a_peers():
    router, _, _ = _router()
    router.on_message(PEER, _message(codec.TXS, [b"a" * 40, b"b" * 40]))
    assert router.mempool.submitted == [([b"a" * 40, b"b" * 40], False)]  # type: ignore[attr-defined]
