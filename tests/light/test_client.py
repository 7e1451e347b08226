"""The light client against chains built from test keys: sets that change between heights,
skips by the 1/3 rule, bisection, forged certificates, wrong sets, stale trust, forks."""
from __future__ import annotations

import dataclasses

import pytest

from engine import crypto
from engine.consensus.certificate import CommitCertificate
from engine.consensus.types import Validator, ValidatorSet
from engine.errors import ProtocolError
from engine.light import (
    ForkDetected,
    LightBlock,
    LightClient,
    MemorySource,
    NotEnoughTrust,
    TrustExpired,
    VerificationFailed,
    conflict_evidence,
    verify_light_block,
)
from engine.light.synthetic import SyntheticChain, make_keys

CHAIN = b"light-test"
KEYS = make_keys(12)
T0 = 1_700_000_000_000


def _now_after(chain: SyntheticChain, height: int, extra_ms: int = 0):
    return lambda: chain.header(height).time_ms + 1000 + extra_ms


def _members(keys, power=10):
    return [(k, power) for k in keys]


def _chain(epochs, length=40, **kw) -> SyntheticChain:
    return SyntheticChain(CHAIN, epochs, length, start_time_ms=T0, **kw)


def _client(chain, trusted_height=1, **kw) -> LightClient:
    kw.setdefault("now_ms", _now_after(chain, chain.length))
    return LightClient(MemorySource(chain.light_block), chain.light_block(trusted_height), **kw)


def test_sequential_across_set_changes():
    # 4 validators, then a fifth joins at 10, then one leaves and powers shift at 20.
    chain = _chain([(1, _members(KEYS[:4])), (10, _members(KEYS[:5])),
                    (20, [(KEYS[1], 30), (KEYS[2], 10), (KEYS[3], 10), (KEYS[4], 10)])])
    lc = _client(chain)
    lb = lc.verify_sequential(30)
    assert lb.hash() == chain.header(30).hash() and lc.verified_count == 29
    assert lc.trusted_block(20).validators == chain.set_at(20)


def test_skip_with_a_third_changed_is_one_step():
    # 9 equal validators; at 15, 3 of them (1/3) are replaced: 6/9 of the trusted power still
    # signs height 40, more than 1/3, so one skip suffices.
    chain = _chain([(1, _members(KEYS[:9])), (15, _members(KEYS[3:12]))])
    lc = _client(chain)
    assert lc.verify_to(40).hash() == chain.header(40).hash()
    assert lc.verified_count == 1


def test_skip_with_the_whole_set_replaced_bisects():
    # The set is replaced in three steps of 1/3 each; from height 1, height 40's signers hold
    # nothing of the trusted set: the client must fetch intermediate headers.
    chain = _chain([(1, _members(KEYS[:6])), (10, _members(KEYS[2:8])),
                    (20, _members(KEYS[4:10])), (30, _members(KEYS[6:12]))])
    lc = _client(chain)
    assert lc.verify_to(40).hash() == chain.header(40).hash()
    assert 1 < lc.verified_count < 39
    # Without fetching, the same jump is refused for lack of trust.
    fresh = _client(chain)
    with pytest.raises(NotEnoughTrust, match="not more than 1/3"):
        fresh.verify(chain.light_block(40))


def test_one_third_exactly_is_not_enough():
    # Trusted set of 3 equal validators; the target's signers include just one of them (1/3).
    chain = _chain([(1, _members(KEYS[:3])), (5, _members([KEYS[0]] + KEYS[3:6]))])
    lc = _client(chain)
    with pytest.raises(NotEnoughTrust):
        lc.verify(chain.light_block(20))
    # With two of the three it goes through.
    chain2 = _chain([(1, _members(KEYS[:3])), (5, _members(KEYS[:2] + KEYS[3:5]))])
    assert _client(chain2).verify(chain2.light_block(20)).height == 20


def test_forged_certificate_is_refused():
    chain = _chain([(1, _members(KEYS[:4]))])
    lb = chain.light_block(10)
    sigs = list(lb.certificate.signatures)
    sigs[2] = bytes(64 - 1) + b"\x01"
    forged = dataclasses.replace(lb, certificate=dataclasses.replace(lb.certificate,
                                                                      signatures=tuple(sigs)))
    with pytest.raises(VerificationFailed, match=r"invalid signatures from validators \[2\]"):
        _client(chain).verify(forged)
    # A certificate with too few signers (2 of 4) is refused before any signature work.
    header, vals = chain.header(10), chain.set_at(10)
    thin = LightBlock(header, chain.sign(header, vals, signers=[0, 1]), vals)
    with pytest.raises(VerificationFailed, match="not more than 2/3"):
        _client(chain).verify(thin)
    # A certificate of another header at the same height.
    other = LightBlock(chain.header(11), chain.light_block(11).certificate, vals)
    with pytest.raises(VerificationFailed):
        _client(chain).verify(dataclasses.replace(lb, certificate=other.certificate))


def test_header_changed_after_signing_is_refused():
    chain = _chain([(1, _members(KEYS[:4]))])
    lb = chain.light_block(10)
    tampered = dataclasses.replace(lb, header=dataclasses.replace(lb.header,
                                                                  app_hash=bytes(32)))
    with pytest.raises(VerificationFailed, match="signs another block hash"):
        _client(chain).verify(tampered)


def test_wrong_validator_set_is_refused():
    chain = _chain([(1, _members(KEYS[:4]))])
    lb = chain.light_block(10)
    # A set that is not the one the header names.
    other = ValidatorSet([Validator(k.public_key, 10) for k in KEYS[4:8]])
    with pytest.raises(VerificationFailed, match="not the one its header names"):
        _client(chain).verify(dataclasses.replace(lb, validators=other))
    # An attacker's chain: headers naming the attacker's set, fully signed by it. Skipping
    # from the trusted header fails for trust; bisecting down, the adjacent header's set is
    # not the one the trusted header named next.
    fake = _chain([(1, _members(KEYS[:4])), (2, _members(KEYS[4:8]))])
    lc = LightClient(MemorySource(fake.light_block), chain.light_block(1),
                     now_ms=_now_after(chain, 40))
    with pytest.raises(VerificationFailed, match="not the next set"):
        lc.verify_to(30)


def test_stale_trust_is_refused_with_its_reason():
    chain = _chain([(1, _members(KEYS[:4]))])
    lc = _client(chain, trusting_period_ms=3_600_000,
                 now_ms=lambda: chain.header(1).time_ms + 3_600_001)
    with pytest.raises(TrustExpired, match="expired") as e:
        lc.verify_to(20)
    assert e.value.reason == "trust_expired"
    # Inside the period the same request succeeds.
    ok = _client(chain, trusting_period_ms=3_600_000,
                 now_ms=lambda: chain.header(1).time_ms + 3_599_000)
    assert ok.verify_to(20).height == 20


def test_future_header_wrong_chain_and_old_height():
    chain = _chain([(1, _members(KEYS[:4]))])
    lc = _client(chain, now_ms=lambda: chain.header(5).time_ms)
    with pytest.raises(VerificationFailed, match="from the future"):
        lc.verify(chain.light_block(30))
    other = SyntheticChain(b"other-chain", [(1, _members(KEYS[:4]))], 10, start_time_ms=T0)
    with pytest.raises(VerificationFailed, match="for chain"):
        _client(chain).verify(other.light_block(5))
    lc2 = _client(chain)
    lc2.verify_to(20)
    with pytest.raises(VerificationFailed, match="not after any trusted header"):
        LightClient(MemorySource(chain.light_block), chain.light_block(20),
                    now_ms=_now_after(chain, 40)).verify_to(5)


def test_from_trusted_hash():
    chain = _chain([(1, _members(KEYS[:4]))])
    src = MemorySource(chain.light_block)
    lc = LightClient.from_trusted_hash(src, 3, chain.header(3).hash(),
                                       now_ms=_now_after(chain, 40))
    assert lc.verify_to(25).hash() == chain.header(25).hash()
    with pytest.raises(VerificationFailed, match="not the trusted hash"):
        LightClient.from_trusted_hash(src, 3, chain.header(4).hash(), now_ms=_now_after(chain, 40))
    with pytest.raises(ValueError, match="trusted_hash"):
        LightClient.from_trusted_hash(src, 3, b"short")
    with pytest.raises(ValueError, match="trusted_height"):
        LightClient.from_trusted_hash(src, 0, chain.header(3).hash())
    with pytest.raises(TypeError, match="trusted"):
        LightClient(src, "not a block")  # type: ignore[arg-type]


def test_every_certificate_is_one_batch_call():
    chain = _chain([(1, _members(KEYS[:6])), (10, _members(KEYS[2:8])),
                    (20, _members(KEYS[4:10])), (30, _members(KEYS[6:12]))])
    calls = []

    def counting(keys, msgs, sigs):
        calls.append(len(keys))
        return crypto.verify_batch(keys, msgs, sigs)

    lc = _client(chain, verify_batch=counting)
    lc.verify_to(40)
    assert len(calls) == lc.verified_count and all(n == 6 for n in calls)


def test_fork_detection_reports_both_signed_headers():
    members = [(1, _members(KEYS[:4]))]
    chain = _chain(members)
    # The same validators sign a second history from height 2 on (different app hashes).
    forked = _chain(members, app_hash=lambda h: bytes(32) if h > 1 else chain.header(1).app_hash)
    assert forked.header(1) == chain.header(1) and forked.header(2) != chain.header(2)
    lc = _client(chain, witnesses=[MemorySource(forked.light_block, "witness-a")])
    lc.verify_to(20)
    with pytest.raises(ForkDetected) as e:
        lc.detect_fork(20)
    ev = e.value.evidence
    assert ev.primary.hash() == chain.header(20).hash()
    assert ev.witness.hash() == forked.header(20).hash()
    assert ev.double_signers() == sorted(k.public_key for k in KEYS[:4])
    assert ev.to_json()["witness_source"] == "witness-a"
    # An honest witness agrees: no error.
    lc2 = _client(chain, witnesses=[MemorySource(chain.light_block, "honest")])
    lc2.verify_to(20)
    lc2.detect_fork(20)
    assert lc2.witnesses and not lc2.faulty_witnesses


def test_a_witness_with_an_unsigned_conflict_is_dropped_not_a_fork():
    chain = _chain([(1, _members(KEYS[:4]))])
    liar = _chain([(1, _members(KEYS[:4])), (2, _members(KEYS[4:8]))])
    lc = _client(chain, witnesses=[MemorySource(liar.light_block, "liar")])
    lc.verify_to(20)
    lc.detect_fork(20)  # no ForkDetected: the liar's header does not verify
    assert lc.witnesses == [] and lc.faulty_witnesses[0][0] == "liar"


def test_conflict_evidence_needs_two_valid_certificates():
    chain = _chain([(1, _members(KEYS[:4]))])
    forked = _chain([(1, _members(KEYS[:4]))], app_hash=lambda h: bytes(32))
    ev = conflict_evidence(CHAIN, chain.light_block(5), forked.light_block(5))
    assert ev is not None and ev.height == 5
    assert conflict_evidence(CHAIN, chain.light_block(5), chain.light_block(5)) is None
    bad = dataclasses.replace(forked.light_block(5), certificate=CommitCertificate(
        5, 0, forked.header(5).hash(), b"\x0f", (bytes(64),) * 4))
    with pytest.raises(VerificationFailed):
        conflict_evidence(CHAIN, chain.light_block(5), bad)


def test_light_block_encodings_round_trip_and_refuse_garbage():
    chain = _chain([(1, _members(KEYS[:5]))])
    lb = chain.light_block(7)
    assert LightBlock.decode(lb.encode()) == lb
    assert LightBlock.from_json(lb.to_json()) == lb
    raw = lb.encode()
    for bad in (b"", raw[:-1], raw + b"\x00", b"\x02" + raw[1:], raw[:10]):
        with pytest.raises(ProtocolError):
            LightBlock.decode(bad)
    j = lb.to_json()
    for broken in ({**j, "header": "zz"}, {**j, "validators": 5}, {**j, "hash": "00" * 32},
                   {**j, "height": 8}, "nope"):
        with pytest.raises(ProtocolError):
            LightBlock.from_json(broken)


def test_verify_light_block_checks_the_adjacent_parent():
    chain = _chain([(1, _members(KEYS[:4]))])
    other = _chain([(1, _members(KEYS[:4]))], app_hash=lambda h: bytes(32))
    now = chain.header(40).time_ms
    # other's height 6 has the right set but another parent than chain's height 5.
    with pytest.raises(VerificationFailed, match="parent hash"):
        verify_light_block(CHAIN, chain.light_block(5), other.light_block(6), now_ms=now,
                           trusting_period_ms=10**9)
    verify_light_block(CHAIN, chain.light_block(5), chain.light_block(6), now_ms=now,
                       trusting_period_ms=10**9)
