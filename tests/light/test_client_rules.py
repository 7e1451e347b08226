"""The light client object at its edges (engine/light/client.py): argument checks, the
documented defaults (a week of trust, 10 s of clock drift, 1,000 trusted blocks, the real
clock), the trusted block checked on arrival, `from_trusted_hash`'s checks on both sides, a
primary answering another height, known heights given again or in conflict, the exact headers
bisection and sequential verification fetch, witnesses checked one after another, and fork
evidence's own checks. Written against the survivors of a mutation run over the module
(docs/mutation.md)."""
from __future__ import annotations

import dataclasses
import time

import pytest

from engine.consensus.types import Validator, ValidatorSet
from engine.light import (
    ForkDetected,
    LightBlock,
    LightClient,
    MemorySource,
    TrustExpired,
    VerificationFailed,
    conflict_evidence,
)
from engine.light.synthetic import SyntheticChain, make_keys

CHAIN = b"client-rules"
KEYS = make_keys(12, b"client-rules")
T0 = 1_700_000_000_000
WEEK_MS = 7 * 24 * 3600 * 1000
LOW, HIGH = bytes(32), b"\xff" * 32


def _members(keys, power=10):
    return [(k, power) for k in keys]


def _chain(length: int = 40, epochs=None, **kw) -> SyntheticChain:
    return SyntheticChain(CHAIN, epochs or [(1, _members(KEYS[:4]))], length,
                          start_time_ms=kw.pop("start_time_ms", T0), **kw)


class Counting(MemorySource):
    """A memory source that records the heights asked."""

    def __init__(self, chain: SyntheticChain, name: str = "counting") -> None:
        super().__init__(chain.light_block, name)
        self.asked: list[int] = []

    def light_block(self, height: int) -> LightBlock:
        self.asked.append(height)
        return super().light_block(height)


def _client(chain, trusted_height=1, source=None, **kw) -> LightClient:
    kw.setdefault("now_ms", lambda: chain.header(chain.length).time_ms + 1000)
    return LightClient(source or MemorySource(chain.light_block),
                       chain.light_block(trusted_height), **kw)


@pytest.mark.parametrize("name", ["trusting_period_ms", "clock_drift_ms", "trusted_blocks_max"])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "5", None])
def test_options_must_be_positive_ints(name, bad):
    chain = _chain(5)
    with pytest.raises(ValueError, match=f"{name} must be a positive int"):
        _client(chain, **{name: bad})
    assert getattr(_client(chain, **{name: 1}), name) == 1


def test_the_defaults_are_a_week_ten_seconds_and_a_thousand_blocks():
    chain = _chain(5)
    src = MemorySource(chain.light_block)
    trusted = chain.light_block(1)
    lc = LightClient(src, trusted, now_ms=lambda: trusted.time_ms + WEEK_MS - 1)
    assert (lc.trusting_period_ms, lc.clock_drift_ms, lc.trusted_blocks_max) == \
        (WEEK_MS, 10_000, 1000)
    assert lc.verify_to(5).height == 5
    expired = LightClient(src, trusted, now_ms=lambda: trusted.time_ms + WEEK_MS)
    with pytest.raises(TrustExpired, match="trusting period 604800 s"):
        expired.verify_to(5)
    t5 = chain.header(5).time_ms
    LightClient(src, trusted, now_ms=lambda: t5 - 10_000).verify_to(5)
    with pytest.raises(VerificationFailed, match="from the future"):
        LightClient(src, trusted, now_ms=lambda: t5 - 10_001).verify_to(5)


def test_the_default_clock_is_the_real_time_in_milliseconds():
    now = int(time.time() * 1000)
    chain = _chain(20, start_time_ms=now - 60_000, block_interval_ms=2_000)  # up to 20 s ago
    lc = LightClient(MemorySource(chain.light_block), chain.light_block(1))
    assert lc.verify_to(20).height == 20
    ahead = _chain(20, start_time_ms=now + 60_000)  # a minute ahead of the real clock
    with pytest.raises(VerificationFailed, match="from the future"):
        LightClient(MemorySource(ahead.light_block), ahead.light_block(1)).verify_to(2)


def test_a_new_client_has_verified_nothing_and_trusts_its_block():
    chain = _chain(5)
    lc = _client(chain, 2)
    assert lc.verified_count == 0 and lc.trusted_heights() == [2]
    assert lc.latest_trusted is chain.light_block(2)
    assert lc.trusted_block(2) is chain.light_block(2) and lc.trusted_block(3) is None


def test_a_trusted_block_whose_parts_do_not_belong_together_is_refused():
    chain = _chain(5)
    lb = chain.light_block(2)
    other = ValidatorSet([Validator(k.public_key, 10) for k in KEYS[4:8]])
    with pytest.raises(VerificationFailed, match="trusted block: the validator set of height 2"):
        LightClient(MemorySource(chain.light_block), dataclasses.replace(lb, validators=other))


def test_from_trusted_hash_checks_height_hash_and_answer():
    chain = _chain(300)
    src = MemorySource(chain.light_block)
    now = {"now_ms": lambda: chain.header(300).time_ms + 1000}
    assert LightClient.from_trusted_hash(src, 1, chain.header(1).hash(), **now).trusted_heights() \
        == [1]
    assert LightClient.from_trusted_hash(src, 298, chain.header(298).hash(), **now) \
        .verify_to(300).height == 300
    with pytest.raises(ValueError, match="trusted_height"):
        LightClient.from_trusted_hash(src, 0, chain.header(1).hash())
    with pytest.raises(ValueError, match="trusted_hash must be 32 bytes"):
        LightClient.from_trusted_hash(src, 1, chain.header(1).hash() + b"\x00")
    for wrong in (LOW, HIGH):
        with pytest.raises(VerificationFailed, match="not the trusted hash"):
            LightClient.from_trusted_hash(src, 1, wrong, **now)
    for served in (297, 299):
        liar = MemorySource(lambda h, s=served: chain.light_block(s))
        with pytest.raises(VerificationFailed, match=f"asked for height 298, got {served}"):
            LightClient.from_trusted_hash(liar, 298, chain.header(298).hash(), **now)


@pytest.mark.parametrize("served_delta", [-1, 1])
def test_a_primary_answering_another_height_is_refused(served_delta):
    chain = _chain(300)
    liar = MemorySource(lambda h: chain.light_block(h + served_delta))
    lc = _client(chain, 290, source=liar)
    with pytest.raises(VerificationFailed,
                       match=f"asked the primary for height 299, got {299 + served_delta}"):
        lc.verify_to(299)
    _client(chain, 290).verify_to(299)  # heights above 256 compared by value


def _forks(chain: SyntheticChain, height: int) -> tuple[LightBlock, LightBlock]:
    """Two validly signed conflicting light blocks of ``height``: one whose hash is below the
    chain's, one above."""
    mine = chain.header(height).hash()
    low = high = None
    for i in range(64):
        other = _chain(chain.length, app_hash=lambda h, i=i: bytes([i + 1]) * 32)
        lb = other.light_block(height)
        if lb.hash() < mine and low is None:
            low = lb
        if lb.hash() > mine and high is None:
            high = lb
        if low is not None and high is not None:
            return low, high
    raise AssertionError("no forks on both sides in 64 tries")


def test_a_known_height_given_again_returns_the_trusted_block_and_a_conflict_is_refused():
    chain = _chain(12)
    lc = _client(chain)
    lc.verify_to(10)
    again = LightBlock.decode(chain.light_block(10).encode())  # equal, other objects
    assert lc.verify(again) is lc.trusted_block(10)
    for conflict in _forks(chain, 10):
        with pytest.raises(VerificationFailed, match="height 10 conflicts with the trusted"):
            lc.verify(conflict)


def test_only_the_last_trusted_blocks_are_kept():
    chain = _chain(8)
    lc = _client(chain, trusted_blocks_max=3)
    lc.verify_sequential(8)
    assert lc.trusted_heights() == [6, 7, 8]
    big = _chain(1002)
    lc2 = _client(big)
    lc2.verify_sequential(1002)
    assert len(lc2.trusted_heights()) == 1000 and lc2.trusted_heights()[0] == 3


def test_sequential_verification_fetches_each_height_after_the_anchor_once():
    chain = _chain(12)
    for anchor, target in ((3, 8), (3, 9), (1, 10)):
        src = Counting(chain)
        lc = _client(chain, anchor, source=src)
        assert lc.verify_sequential(target).height == target
        assert src.asked == list(range(anchor + 1, target + 1))
        assert lc.verified_count == target - anchor


def test_bisection_fetches_the_middles_in_order():
    # Every 4 heights the whole set is replaced: no skip over a change has any trusted overlap.
    sets = [(1 + 4 * i, _members(KEYS[(4 * i) % 12:(4 * i) % 12 + 4])) for i in range(5)]
    chain = _chain(20, epochs=sets)
    src = Counting(chain)
    lc = _client(chain, source=src)
    assert lc.verify_to(20).height == 20
    # 20 from 1: no overlap, try 10, then 5, then 3 (set 0: verified); 5 from 3 needs 4
    # (adjacent); 10 from 5 needs 7 (set 1), then 8 and 9 (adjacent); 20 from 10 needs 15, 12
    # (set 2), 13 (adjacent), then 15; 20 from 15 needs 17, 16 (adjacent), then 17 and 20.
    assert src.asked == [20, 10, 5, 3, 4, 7, 8, 9, 15, 12, 13, 17, 16]
    assert lc.verified_count == len(src.asked)
    with pytest.raises(ValueError, match="height must be a positive int"):
        lc.verify_to(0)
    with pytest.raises(ValueError, match="height must be a positive int"):
        lc.verify_to("5")  # type: ignore[arg-type]
    assert _client(chain).verify_to(1) is chain.light_block(1)  # trusted already


def test_bisection_above_256_stops_at_adjacent_heights():
    sets = [(1, _members(KEYS[:4])), (290, _members(KEYS[4:8])), (299, _members(KEYS[8:12]))]
    chain = _chain(300, epochs=sets)
    src = Counting(chain)
    lc = _client(chain, 296, source=src)
    assert lc.verify_to(300).height == 300
    # 300 from 296: no overlap; 298 (296's set) verifies by skipping; 300 from 298: no overlap,
    # 299 is adjacent to 298, and 300 to 299.
    assert src.asked == [300, 298, 299]


def test_witnesses_are_all_checked_in_turn():
    chain = _chain(12)
    forked = _chain(12, app_hash=lambda h: bytes(32) if h > 1 else chain.header(1).app_hash)
    liar = _chain(12, epochs=[(1, _members(KEYS[:4])), (2, _members(KEYS[4:8]))])

    class Down:
        name = "down"

        def light_block(self, height):
            from engine.light.sources import SourceUnavailable

            raise SourceUnavailable("down")

    for witnesses in ([MemorySource(chain.light_block, "honest"), MemorySource(
            forked.light_block, "forked")], [Down(), MemorySource(forked.light_block, "forked")],
            [MemorySource(liar.light_block, "liar"), MemorySource(forked.light_block, "forked")]):
        lc = _client(chain, witnesses=witnesses)
        lc.verify_to(12)
        with pytest.raises(ForkDetected):
            lc.detect_fork(12)


def test_fork_evidence_checks_its_own_inputs():
    chain = _chain(12)
    low, high = _forks(chain, 9)
    mine = chain.light_block(9)
    for other in (low, high):
        ev = conflict_evidence(CHAIN, mine, other)
        assert ev is not None and ev.height == 9
    with pytest.raises(ValueError, match="heights 9 and 10"):
        conflict_evidence(CHAIN, mine, chain.light_block(10))
    with pytest.raises(ValueError, match="heights 10 and 9"):
        conflict_evidence(CHAIN, chain.light_block(10), mine)
    for chain_id in (b"client-rulea", b"client-rulez"):
        with pytest.raises(VerificationFailed, match="light block is for chain"):
            conflict_evidence(chain_id, mine, low)
    assert conflict_evidence(bytes(bytearray(CHAIN)), mine, low) is not None  # by value
    big = _chain(300)
    ev = conflict_evidence(CHAIN, big.light_block(299), _forks(big, 299)[0])
    assert ev is not None and ev.height == 299  # heights above 256 compared by value
    wrong_set = dataclasses.replace(low, validators=ValidatorSet(
        [Validator(k.public_key, 10) for k in KEYS[4:8]]))
    with pytest.raises(VerificationFailed, match="not the one its header names"):
        conflict_evidence(CHAIN, mine, wrong_set)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.height = 3  # type: ignore[misc]
