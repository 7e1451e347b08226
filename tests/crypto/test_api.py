"""engine.crypto argument handling, key handling, native path reporting and the key cache."""
from __future__ import annotations

import pytest

import engine
from engine import _native_ed25519, crypto
from tests.crypto.conftest import ISA_PATHS, honest


def test_signing_key_round_trip():
    k = crypto.SigningKey.generate()
    k2 = crypto.SigningKey.from_seed(k.seed)
    assert k2.public_key == k.public_key and len(k.public_key) == 32
    assert k.sign(b"x") == k2.sign(b"x") and len(k.sign(b"x")) == 64
    assert crypto.verify(k.public_key, b"x", k.sign(b"x")) is True
    with pytest.raises(ValueError, match="seed"):
        crypto.SigningKey.from_seed(b"short")
    with pytest.raises(TypeError, match="seed"):
        crypto.SigningKey.from_seed("a" * 32)


def test_verify_argument_errors():
    pks, msgs, sigs = honest(1)
    with pytest.raises(ValueError, match="public_key"):
        crypto.verify(pks[0][:31], msgs[0], sigs[0])
    with pytest.raises(ValueError, match="signature"):
        crypto.verify(pks[0], msgs[0], sigs[0] + b"\0")
    with pytest.raises(TypeError, match="message"):
        crypto.verify(pks[0], "text", sigs[0])


def test_verify_batch_argument_errors():
    pks, msgs, sigs = honest(3)
    with pytest.raises(ValueError, match="same length"):
        crypto.verify_batch(pks, msgs[:2], sigs)
    with pytest.raises(ValueError, match=r"public_keys\[1\]"):
        crypto.verify_batch([pks[0], pks[1][:5], pks[2]], msgs, sigs)
    with pytest.raises(ValueError, match=r"signatures\[2\]"):
        crypto.verify_batch(pks, msgs, [sigs[0], sigs[1], sigs[2][:63]])
    with pytest.raises(TypeError, match=r"messages\[0\]"):
        crypto.verify_batch(pks, ["a", msgs[1], msgs[2]], sigs)
    with pytest.raises(TypeError, match="public_keys"):
        crypto.verify_batch(b"not a list", msgs, sigs)
    with pytest.raises(ValueError, match="threads"):
        crypto.verify_batch(pks, msgs, sigs, threads=0)
    with pytest.raises(TypeError, match="threads"):
        crypto.verify_batch(pks, msgs, sigs, threads=1.5)
    assert crypto.verify_batch(tuple(pks), tuple(msgs), tuple(sigs)) == [True] * 3


def test_native_info_reports_the_path():
    for isa in ISA_PATHS:
        _native_ed25519._force_isa(isa)
        try:
            path = engine.native_info()["kernels"]["ed25519"]
            # the avx512 kernel needs IFMA; without it that selection runs (and reports) avx2
            features = engine.native_info()["cpu_features"]
            expected = isa if isa != "avx512" or {"avx512ifma", "avx512dq"} <= set(features) \
                else "avx2"
            assert path == expected
            assert crypto.native_path() == path
        finally:
            _native_ed25519._force_isa(None)
    with pytest.raises(ValueError):
        _native_ed25519._force_isa("sse9")


def test_key_cache_is_bounded_counts_hits_and_keeps_verdicts():
    try:
        crypto.configure_key_cache(64)
        assert crypto.key_cache_info()["capacity"] == 64
        pks, msgs, sigs = honest(200, seed=11)
        assert crypto.verify_batch(pks, msgs, sigs) == [True] * 200
        info = crypto.key_cache_info()
        assert info["entries"] <= 64 and info["misses"] >= 200
        # The first call caches these 8 keys (8 ways per set, so they all fit whatever sets they
        # hash to); the second must find every one of them there.
        assert crypto.verify_batch(pks[:8], msgs[:8], sigs[:8]) == [True] * 8
        before = crypto.key_cache_info()
        assert crypto.verify_batch(pks[:8], msgs[:8], sigs[:8]) == [True] * 8
        after = crypto.key_cache_info()
        assert after["hits"] - before["hits"] == 8 and after["misses"] == before["misses"]
        # a cached key must not make a different message verify
        assert crypto.verify(pks[0], msgs[1], sigs[0]) is False
        crypto.configure_key_cache(0)
        assert crypto.key_cache_info()["capacity"] == 0
        assert crypto.verify_batch(pks[:70], msgs[:70], sigs[:70]) == [True] * 70
        with pytest.raises(ValueError, match="capacity"):
            crypto.configure_key_cache(-1)
    finally:
        crypto.configure_key_cache(crypto.KEY_CACHE_KEYS_DEFAULT)
    assert crypto.key_cache_info()["capacity"] >= 10_000


def test_repeated_keys_hit_the_cache():
    crypto.configure_key_cache(crypto.KEY_CACHE_KEYS_DEFAULT)
    pks, msgs, sigs = honest(4, seed=12)
    crypto.verify_batch(pks, msgs, sigs)
    hits = crypto.key_cache_info()["hits"]
    crypto.verify_batch(pks, msgs, sigs)
    assert crypto.key_cache_info()["hits"] >= hits + 4


@pytest.mark.parametrize("n", [3, 7, 80])
def test_pippenger_and_straus_agree(isa, n):
    pks, msgs, sigs = honest(n, seed=13)
    sigs[1] = sigs[2]
    expected = [i != 1 for i in range(n)]
    try:
        for points in (1, 10**9):  # all Pippenger, then all Straus
            _native_ed25519._set_pippenger_min(points)
            assert crypto.verify_batch(pks, msgs, sigs, threads=1) == expected
    finally:
        _native_ed25519._set_pippenger_min(0)
    default = _native_ed25519._pippenger_min()
    assert default == {"avx512": 13, "avx2": 193, "portable": 129}[crypto.native_path()]
