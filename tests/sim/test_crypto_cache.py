"""The simulator's cached verification gives engine.crypto's answers, also across a cache reset."""
from __future__ import annotations

import pytest

from engine import crypto
from engine.sim import crypto_cache


@pytest.fixture
def small_cache(monkeypatch):
    monkeypatch.setattr(crypto_cache, "CACHE_ENTRIES_MAX", 5)
    monkeypatch.setattr(crypto_cache, "_cache", {})


def signed(count: int, seed: int):
    keys = [crypto.SigningKey.from_seed(bytes([seed, i]) + bytes(30)) for i in range(count)]
    msgs = [bytes([seed, i]) * 10 for i in range(count)]
    return [k.public_key for k in keys], msgs, [k.sign(m) for k, m in zip(keys, msgs)]


def test_batch_across_a_cache_reset(small_cache):
    pks, msgs, sigs = signed(4, 1)
    assert crypto_cache.cached_verify_batch(pks, msgs, sigs) == [True] * 4
    # Two cached entries plus two new ones overflow the bound: the cache is emptied first, and
    # every answer (cached before or not) still comes back.
    pks2, msgs2, sigs2 = signed(2, 2)
    bad = bytes(64)
    out = crypto_cache.cached_verify_batch(pks[:2] + pks2, msgs[:2] + msgs2, sigs[:2] + [sigs2[0], bad])
    assert out == [True, True, True, False]


def test_single_and_batch_agree(small_cache):
    pks, msgs, sigs = signed(3, 3)
    sigs[1] = bytes(64)
    assert crypto_cache.cached_verify_batch(pks, msgs, sigs) == [
        crypto_cache.cached_verify(p, m, s) for p, m, s in zip(pks, msgs, sigs)]
