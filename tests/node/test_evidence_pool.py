"""The evidence pool (engine/node/evidence.py) on its own: evidence from the core is kept and
gossiped, from peers verified against the set of its height and not gossiped again; duplicates,
committed and too-old evidence are not kept again; the pool is bounded; a block takes pending
evidence of lower heights only, at most a block's worth; a commit moves evidence to the
committed set."""
from __future__ import annotations

import pytest

from engine import consensus as cs
from engine import limits
from engine.crypto import SigningKey
from engine.errors import ProtocolError
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.evidence import EvidencePool
from engine.node.ports import Counters
from engine.node.tip import ChainTip
from engine.node.valset import ValidatorHistory
from engine.suite import get_suite
from engine.valset import encode_set

CHAIN = b"evidence-pool"
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(5)]
VSET = cs.ValidatorSet([cs.Validator(k.public_key, 1) for k in KEYS[:4]])
SUITE = get_suite(None)


class _Wire:
    def __init__(self) -> None:
        self.broadcasts: list[codec.Message] = []

    def broadcast(self, raw: bytes) -> None:
        self.broadcasts.append(codec.decode(raw, NetLimits()))


def _vote(i: int, height: int, block_hash: bytes, key: SigningKey | None = None) -> cs.Vote:
    unsigned = cs.Vote(cs.VoteType.PREVOTE, height, 0, block_hash, i, b"")
    signer = key or KEYS[i]
    return cs.Vote(cs.VoteType.PREVOTE, height, 0, block_hash, i,
                   signer.sign(unsigned.sign_bytes(CHAIN)))


def _evidence(height: int, i: int = 1, key: SigningKey | None = None) -> cs.DuplicateVoteEvidence:
    return cs.DuplicateVoteEvidence.from_votes(_vote(i, height, b"\x01" * 32, key),
                                               _vote(i, height, b"\x02" * 32, key))


def _pool(tip_height: int = 10, history: ValidatorHistory | None = None) -> EvidencePool:
    tip = ChainTip()
    tip.height = tip_height
    return EvidencePool(chain_id=CHAIN, validators=VSET, tip=tip, wire=_Wire(),  # type: ignore[arg-type]
                        counters=Counters(), suite=SUITE, history=history)


def _hash(ev: cs.DuplicateVoteEvidence) -> bytes:
    return SUITE.hash_many([ev.encode()])[0]


def test_evidence_from_the_core_is_kept_and_gossiped_from_peers_only_kept():
    pool = _pool()
    own, theirs = _evidence(5), _evidence(6, i=2)
    pool.report(own)
    pool.on_message([theirs.encode()])
    assert [m.fields[0] for m in pool.wire.broadcasts] == [[own.encode()]]  # type: ignore[attr-defined]
    assert sorted(pool.for_block(11)) == sorted([own.encode(), theirs.encode()])
    assert pool.counters.get("evidence") == 2


def test_a_peers_evidence_must_verify_against_its_heights_set():
    pool = _pool()
    forged = _evidence(5, i=1, key=KEYS[4])  # index 1 signed by a key outside the set
    with pytest.raises(ProtocolError):
        pool.on_message([forged.encode()])
    assert pool.for_block(11) == []
    # With a history: the set of the evidence's own height decides.
    later = cs.ValidatorSet([cs.Validator(k.public_key, 1) for k in (KEYS[4], *KEYS[1:4])])
    history = ValidatorHistory(VSET, [(5, encode_set(later))], committed_height=10)
    pool = _pool(history=history)
    pool.on_message([_evidence(5, i=0, key=KEYS[4]).encode()])  # index 0 is key 4 from 5 on
    with pytest.raises(ProtocolError):
        pool.on_message([_evidence(4, i=0, key=KEYS[4]).encode()])  # ... not at 4
    with pytest.raises(ProtocolError, match="evidence of height 20: its set is not known"):
        pool.on_message([_evidence(20).encode()])
    assert len(pool.for_block(11)) == 1


def test_duplicates_committed_and_old_evidence_are_not_kept_again():
    pool = _pool(tip_height=limits.evidence_age_heights_max + 10)
    ev = _evidence(50)
    pool.report(ev)
    pool.report(ev)
    assert pool.for_block(10**6) == [ev.encode()] and len(pool.wire.broadcasts) == 1  # type: ignore[attr-defined]
    pool.on_committed([ev.encode()])
    assert pool.for_block(10**6) == [] and pool.is_committed(_hash(ev))
    pool.report(ev)
    assert pool.for_block(10**6) == []
    # The age window: tip + 1 - age_max is the oldest height kept.
    oldest = pool.tip.height + 1 - limits.evidence_age_heights_max
    pool.report(_evidence(oldest - 1, i=2))
    assert pool.for_block(10**6) == []
    at_edge = _evidence(oldest, i=2)
    pool.report(at_edge)
    assert pool.for_block(10**6) == [at_edge.encode()]
    assert not pool.is_committed(_hash(at_edge))


def test_the_pool_is_bounded(monkeypatch):
    monkeypatch.setattr(limits, "evidence_pending_max", 3)
    pool = _pool()
    for h in range(1, 6):
        pool.report(_evidence(h))
    assert len(pool.for_block(100)) == 3 and pool.counters.get("evidence_dropped") == 2
    assert pool.counters.get("evidence") == 3


def test_a_block_takes_lower_heights_only_and_at_most_its_share(monkeypatch):
    pool = _pool()
    for h in (3, 5, 7):
        pool.report(_evidence(h))
    assert len(pool.for_block(5)) == 1 and len(pool.for_block(6)) == 2
    assert len(pool.for_block(8)) == 3
    monkeypatch.setattr(limits, "evidence_per_block_max", 2)
    assert len(pool.for_block(8)) == 2
