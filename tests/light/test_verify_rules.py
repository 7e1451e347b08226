"""The light client's rules at their exact edges (engine/light/verify.py): the trusting period's
end, the clock drift's bound (and its default), equal times, heights at and below the trusted
one and above 256, wrong values on both sides of the right one (a chain id, an adjacent
header's parent and set), the 1/3 trust overlap one unit of power above its bound with the
powers returned, and the messages' figures. Written against the survivors of a mutation run
over the module (docs/mutation.md)."""
from __future__ import annotations

import dataclasses

import pytest

from engine.light import (
    LightBlock,
    NotEnoughTrust,
    TrustExpired,
    VerificationFailed,
    verify_certificate,
    verify_light_block,
)
from engine.light.synthetic import SyntheticChain, make_keys

CHAIN = b"light-rules"
KEYS = make_keys(6, b"rules")
T0 = 1_700_000_000_000
LOW, HIGH = bytes(32), b"\xff" * 32
PERIOD = 3_600_000


def _chain(length: int = 12, epochs=None) -> SyntheticChain:
    return SyntheticChain(CHAIN, epochs or [(1, [(k, 10) for k in KEYS[:4]])], length,
                          start_time_ms=T0)


def _verify(trusted: LightBlock, untrusted: LightBlock, now_ms: int, **kw) -> None:
    verify_light_block(CHAIN, trusted, untrusted, now_ms=now_ms,
                       trusting_period_ms=kw.pop("trusting_period_ms", PERIOD), **kw)


def _signed(chain: SyntheticChain, height: int, **header_changes) -> LightBlock:
    """The light block of ``height`` with header fields changed, validly signed by its set."""
    header = dataclasses.replace(chain.header(height), **header_changes)
    vals = chain.set_at(height)
    return LightBlock(header, chain.sign(header, vals), vals)


def test_trust_ends_exactly_at_the_end_of_the_period():
    chain = _chain()
    trusted, target = chain.light_block(1), chain.light_block(2)
    end = trusted.time_ms + PERIOD
    _verify(trusted, target, end - 1)
    with pytest.raises(TrustExpired) as e:
        _verify(trusted, target, end)
    assert str(e.value) == ("the trusted header of height 1 expired 0 s ago (trusting period "
                            "3600 s): get a fresh trusted header")
    with pytest.raises(TrustExpired) as e:
        _verify(trusted, target, end + 125_600)
    assert "expired 126 s ago (trusting period 3600 s)" in str(e.value)  # rounded, not floored
    with pytest.raises(TrustExpired, match="expired 1000000 s ago"):
        _verify(trusted, target, end + 1_000_000_000)
    odd_period = 3_600_600
    with pytest.raises(TrustExpired, match=r"\(trusting period 3601 s\)"):
        _verify(trusted, target, trusted.time_ms + odd_period, trusting_period_ms=odd_period)


def test_the_clock_drift_bound_is_inclusive_and_ten_seconds_by_default():
    chain = _chain()
    trusted, target = chain.light_block(1), chain.light_block(5)
    t = target.time_ms
    _verify(trusted, target, t - 10_000)  # exactly the default drift ahead: accepted
    with pytest.raises(VerificationFailed) as e:
        _verify(trusted, target, t - 10_001)
    assert str(e.value) == "header of height 5 is from the future (10.0 s ahead)"
    with pytest.raises(VerificationFailed, match=r"\(100\.0 s ahead\)"):
        _verify(trusted, target, t - 100_000)
    _verify(trusted, target, t - 2_500, clock_drift_ms=2_500)
    with pytest.raises(VerificationFailed, match=r"from the future \(2\.5 s ahead\)"):
        _verify(trusted, target, t - 2_501, clock_drift_ms=2_500)
    # At the bound with a drift whose bits overlap now's (`now | drift` and `now ^ drift` are
    # then below the sum): still accepted.
    drift = next(d for d in range(5_000, 6_000) if (t - d) & d)
    _verify(trusted, target, t - drift, clock_drift_ms=drift)


def test_a_header_as_old_as_the_trusted_one_is_accepted_an_older_one_not():
    chain = _chain()
    trusted = chain.light_block(3)
    now = chain.header(12).time_ms
    same_time = _signed(chain, 4, time_ms=trusted.time_ms)
    _verify(trusted, same_time, now)
    older = _signed(chain, 4, time_ms=trusted.time_ms - 1)
    with pytest.raises(VerificationFailed, match="older than the trusted one"):
        _verify(trusted, older, now)


def test_heights_at_or_below_the_trusted_one_are_refused():
    chain = _chain()
    now = chain.header(12).time_ms
    for height in (5, 4):
        with pytest.raises(VerificationFailed,
                           match=f"height {height} is not after the trusted height 5"):
            _verify(chain.light_block(5), chain.light_block(height), now)


def test_the_chain_id_is_compared_by_value():
    chain = _chain()
    same = bytes(bytearray(CHAIN))  # equal, another object (as decoded from the wire)
    assert same == CHAIN and same is not CHAIN
    verify_light_block(same, chain.light_block(1), chain.light_block(2),
                       now_ms=chain.header(12).time_ms, trusting_period_ms=PERIOD)


@pytest.mark.parametrize("chain_id", [b"light-rulem", b"light-rulet"])  # below, above
def test_a_header_of_another_chain_id_on_either_side(chain_id):
    chain = _chain()
    with pytest.raises(VerificationFailed, match="is for chain"):
        _verify(chain.light_block(1), _signed(chain, 2, chain_id=chain_id),
                chain.header(12).time_ms)


@pytest.mark.parametrize("value", [LOW, HIGH])
def test_an_adjacent_header_with_another_parent_or_set_on_either_side(value):
    chain = _chain()
    trusted, now = chain.light_block(6), chain.header(12).time_ms
    with pytest.raises(VerificationFailed, match="parent hash differs"):
        _verify(trusted, _signed(chain, 7, parent_hash=value), now)
    # The trusted header named another next set than the one that signs (and that the header
    # of) height 7 names.
    named_other = dataclasses.replace(trusted, header=dataclasses.replace(
        trusted.header, next_validators_hash=value))
    with pytest.raises(VerificationFailed, match="is not the next set the trusted header 6"):
        _verify(named_other, chain.light_block(7), now)
    _verify(trusted, chain.light_block(7), now)


def test_adjacency_above_256_is_by_value():
    chain = _chain(length=300)
    trusted, now = chain.light_block(298), chain.header(300).time_ms
    _verify(trusted, chain.light_block(299), now)  # adjacent: parent and next set checked
    with pytest.raises(VerificationFailed, match="parent hash differs"):
        _verify(trusted, _signed(chain, 299, parent_hash=LOW), now)


def test_a_skip_one_unit_of_power_above_a_third_goes_through_and_reports_the_powers():
    # Trusted set: powers 10, 10, 10 and 1 (total 31); the target's set keeps the first one
    # and a fourth of power 1 from the trusted set: 11 of 31, just above a third (10.33).
    a = [(KEYS[0], 10), (KEYS[1], 10), (KEYS[2], 10), (KEYS[3], 1)]
    b = [(KEYS[0], 10), (KEYS[3], 1), (KEYS[4], 10), (KEYS[5], 10)]
    chain = _chain(epochs=[(1, a), (5, b)])
    trusted, target = chain.light_block(1), chain.light_block(9)
    assert verify_certificate(CHAIN, target, trusted.validators) == (31, 11)
    assert verify_certificate(CHAIN, target) == (31, 0)
    _verify(trusted, target, chain.header(12).time_ms)
    # Without the power-1 validator among the signers: 10 of 31, not more than a third.
    partial = LightBlock(target.header, chain.sign(target.header, target.validators,
                                                   signers=[0, 2, 3]), target.validators)
    with pytest.raises(NotEnoughTrust, match="hold 10 of the trusted set's 31"):
        _verify(trusted, partial, chain.header(12).time_ms)
