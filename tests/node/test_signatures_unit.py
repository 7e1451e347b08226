"""The verified-signature cache (engine/node/signatures.py), which lets the core's own signature
check be a set lookup: only signatures a batch found valid are remembered, each answers one
lookup, anything else is verified natively in the chain's suite, the observer hears every
batch's verdicts, and the cache is bounded and emptied on demand."""
from __future__ import annotations

from engine import limits
from engine.crypto import SigningKey
from engine.node.signatures import VerifiedSignatures
from engine.suite import get_suite

KEY = SigningKey(b"\x05" * 32)
MSGS = [b"message %d" % i for i in range(4)]
SIGS = [KEY.sign(m) for m in MSGS]
PK = KEY.public_key


class Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[list, list, list]] = []

    def received(self, public_keys, messages, verdicts) -> None:
        self.calls.append((list(public_keys), list(messages), list(verdicts)))


class CountingSuite:
    """The default suite, counting its single and batch verifications."""

    def __init__(self, suite=None) -> None:
        self.inner = get_suite(suite)
        self.single = 0
        self.batches = 0

    def verify(self, pk, msg, sig) -> bool:
        self.single += 1
        return self.inner.verify(pk, msg, sig)

    def verify_batch(self, pks, msgs, sigs) -> list[bool]:
        self.batches += 1
        return self.inner.verify_batch(pks, msgs, sigs)


def _cache(suite=None):
    observer, counting = Observer(), CountingSuite(suite)
    return VerifiedSignatures(observer, counting), observer, counting  # type: ignore[arg-type]


def test_a_batch_remembers_only_the_valid_signatures_each_for_one_lookup():
    cache, observer, suite = _cache()
    forged = bytes(64)
    verdicts = cache.verify_batch([PK, PK, PK], [MSGS[0], MSGS[1], MSGS[2]],
                                  [SIGS[0], forged, SIGS[2]])
    assert verdicts == [True, False, True] and suite.batches == 1
    assert observer.calls == [([PK] * 3, MSGS[:3], [True, False, True])]
    assert cache.verify(PK, MSGS[0], SIGS[0]) is True and suite.single == 0  # a lookup
    assert cache.verify(PK, MSGS[0], SIGS[0]) is True and suite.single == 1  # used: native
    assert cache.verify(PK, MSGS[1], forged) is False and suite.single == 2  # never cached
    assert cache.verify(PK, MSGS[3], SIGS[3]) is True and suite.single == 3  # never batched
    assert cache.verify(PK, MSGS[2], SIGS[2]) is True and suite.single == 3


def test_a_lookup_needs_the_same_key_message_and_signature():
    cache, _, suite = _cache()
    cache.verify_batch([PK], [MSGS[0]], [SIGS[0]])
    other = SigningKey(b"\x06" * 32).public_key
    assert cache.verify(other, MSGS[0], SIGS[0]) is False  # native, and refused
    assert cache.verify(PK, MSGS[1], SIGS[0]) is False
    assert cache.verify(PK, MSGS[0], SIGS[1]) is False
    assert suite.single == 3
    assert cache.verify(PK, MSGS[0], SIGS[0]) is True and suite.single == 3


def test_clear_forgets_every_verified_signature():
    cache, _, suite = _cache()
    cache.verify_batch([PK, PK], MSGS[:2], SIGS[:2])
    cache.clear()
    assert cache.verify(PK, MSGS[0], SIGS[0]) is True and suite.single == 1


def test_the_cache_is_emptied_once_past_its_bound(monkeypatch):
    monkeypatch.setattr(limits, "preverified_signatures_max", 2)
    cache, _, _ = _cache()
    cache.verify_batch([PK] * 3, MSGS[:3], SIGS[:3])  # 3 entries: past the bound of 2
    assert len(cache._verified) == 3
    cache.verify_batch([PK], [MSGS[3]], [SIGS[3]])  # the stale three go first
    assert cache._verified == {(PK, MSGS[3], SIGS[3])}
    cache.verify_batch([PK, PK], MSGS[:2], SIGS[:2])  # 1 entry, not past 2: kept
    assert len(cache._verified) == 3


def test_at_the_bound_exactly_nothing_is_dropped(monkeypatch):
    monkeypatch.setattr(limits, "preverified_signatures_max", 2)
    cache, _, _ = _cache()
    cache.verify_batch([PK] * 2, MSGS[:2], SIGS[:2])
    cache.verify_batch([PK], [MSGS[2]], [SIGS[2]])
    assert len(cache._verified) == 3


def test_signatures_are_verified_in_the_chains_suite():
    suite = "sm2-sm3"
    s = get_suite(suite)
    key = s.key_from_seed(b"\x07" * 32)
    sig = key.sign(MSGS[0])
    cache, _, counting = _cache(suite)
    assert cache.verify_batch([key.public_key], [MSGS[0]], [sig]) == [True]
    assert cache.verify(key.public_key, MSGS[0], sig) is True and counting.single == 0
    assert cache.verify(key.public_key, MSGS[0], sig) is True and counting.single == 1
    # The default suite's signature of the same message is not the chain's.
    assert cache.verify(PK, MSGS[0], SIGS[0]) is False
    assert VerifiedSignatures(Observer(), s).verify(key.public_key, MSGS[0], sig) is True
