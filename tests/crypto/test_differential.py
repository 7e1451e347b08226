"""The native verifier against the pure-Python ZIP-215 reference on corrupted and crafted input,
and batch verdicts against single verdicts (the property consensus depends on)."""
from __future__ import annotations

import functools
import hashlib
import os
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import crypto
from engine._reference import ed25519 as ref
from tests.crypto import vectors
from tests.crypto.conftest import honest

# The eight small-order points, taken from the ZIP-215 vectors' public keys (canonical ones).
SMALL_ORDER = sorted({bytes(c.public_key) for c in vectors.load("zip215/zip215.json")})[:8]


def _flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _mixed_order_signature(rng: random.Random, msg: bytes):
    """A key A + T (T of small order) with a signature valid only under the cofactored rule."""
    a = rng.randrange(1, ref.L)
    r = rng.randrange(1, ref.L)
    torsion = ref.decode_point(rng.choice(SMALL_ORDER))
    a_point = ref.point_add(ref.scalar_mult(a, ref.BASE), torsion)
    pk = ref.encode_point(a_point)
    r_bytes = ref.encode_point(ref.scalar_mult(r, ref.BASE))
    k = ref.challenge(r_bytes, pk, msg)
    s = (r + k * a) % ref.L
    return pk, r_bytes + s.to_bytes(32, "little")


def _corrupt(rng: random.Random, pk: bytes, msg: bytes, sig: bytes):
    kind = rng.randrange(7)
    if kind == 0:
        return pk, msg, _flip(sig, rng.randrange(256))                 # R
    if kind == 1:
        return pk, msg, _flip(sig, 256 + rng.randrange(253))           # S
    if kind == 2:
        return _flip(pk, rng.randrange(256)), msg, sig                 # A
    if kind == 3:
        return pk, _flip(msg, rng.randrange(8 * len(msg))), sig        # message
    if kind == 4:                                                      # S + L
        s = int.from_bytes(sig[32:], "little") + ref.L
        return pk, msg, sig[:32] + s.to_bytes(32, "little")
    if kind == 5:
        return rng.choice(SMALL_ORDER), msg, sig                       # small-order key
    return pk, msg, rng.choice(SMALL_ORDER) + sig[32:]                 # small-order R


def _mixed_batch(rng: random.Random, n: int, bad_positions):
    pks, msgs, sigs = honest(n, seed=rng.randrange(256))
    for i in bad_positions:
        pks[i], msgs[i], sigs[i] = _corrupt(rng, pks[i], msgs[i], sigs[i])
    return pks, msgs, sigs


@functools.cache
def _case(n: int, layout: int):
    """A batch of n signatures with corrupted entries and its reference verdicts (built once,
    shared by every ISA path: the reference is slow)."""
    rng = random.Random(f"{n}-{layout}")
    bad = [[0], [n - 1], [n // 2], list(range(n)), rng.sample(range(n), max(1, n // 10))][layout]
    pks, msgs, sigs = _mixed_batch(rng, n, bad)
    expected = [ref.verify(p, m, s) for p, m, s in zip(pks, msgs, sigs)]
    return pks, msgs, sigs, expected


@pytest.mark.parametrize("n", [1, 2, 3, 17, 64, 130, 300])
def test_batches_with_invalid_entries_match_reference(isa, n):
    for layout in range(5):
        pks, msgs, sigs, expected = _case(n, layout)
        assert crypto.verify_batch(pks, msgs, sigs, threads=1) == expected
        assert crypto.verify_batch(pks, msgs, sigs, threads=2) == expected
        assert [crypto.verify(p, m, s) for p, m, s in zip(pks, msgs, sigs)] == expected


def test_empty_batch(isa):
    assert crypto.verify_batch([], [], []) == []


def test_mixed_order_keys_follow_the_cofactored_rule(isa):
    rng = random.Random(3)
    entries = [_mixed_order_signature(rng, b"mixed %d" % i) + (b"mixed %d" % i,) for i in range(6)]
    pks = [e[0] for e in entries]
    sigs = [e[1] for e in entries]
    msgs = [e[2] for e in entries]
    assert all(ref.verify(p, m, s) for p, m, s in zip(pks, msgs, sigs))
    assert crypto.verify_batch(pks, msgs, sigs) == [True] * 6
    assert all(crypto.verify(p, m, s) for p, m, s in zip(pks, msgs, sigs))
    # and cryptography's cofactorless check does not accept them all: the cases are not trivial
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    openssl = []
    for p, m, s in zip(pks, msgs, sigs):
        try:
            Ed25519PublicKey.from_public_bytes(p).verify(s, m)
            openssl.append(True)
        except InvalidSignature:
            openssl.append(False)
    assert not all(openssl)


def test_large_pippenger_batch_with_one_forgery(isa):
    """700 entries: one equation, threads=2 spreads its phases over the pool."""
    pks, msgs, sigs = honest(700, seed=9)
    sigs[333] = _flip(sigs[333], 300)
    pks[650] = SMALL_ORDER[3]
    expected = [i not in (333, 650) for i in range(700)]
    assert crypto.verify_batch(pks, msgs, sigs, threads=1) == expected
    assert crypto.verify_batch(pks, msgs, sigs, threads=2) == expected
    assert crypto.verify_batch(pks[:600], msgs[:600], sigs[:600], threads=2) == expected[:600]


def test_openssl_signatures_verify_and_random_messages_differ(isa):
    for i in range(40):
        key = Ed25519PrivateKey.generate()
        pk = key.public_key().public_bytes_raw()
        msg = os.urandom(i * 7)
        sig = key.sign(msg)
        assert crypto.verify(pk, msg, sig)
        assert not crypto.verify(pk, msg + b"x", sig)
        assert crypto.verify(memoryview(pk), bytearray(msg), bytearray(sig))


def test_non_canonical_s_is_rejected_but_r_is_not_reencoded(isa):
    # A valid signature whose R is re-encoded non-canonically must fail: k hashes the bytes as
    # received, so the equation changes. (Speccheck case 8 in vector form; here generated.)
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"k").digest())
    pk = key.public_key().public_bytes_raw()
    sig = key.sign(b"m")
    s = int.from_bytes(sig[32:], "little")
    assert not crypto.verify(pk, b"m", sig[:32] + (s + ref.L).to_bytes(32, "little"))
    assert not crypto.verify(pk, b"m", sig[:32] + (2**256 - 1).to_bytes(32, "little"))


_entry = st.one_of(
    st.tuples(st.binary(min_size=32, max_size=32), st.binary(max_size=64),
              st.binary(min_size=64, max_size=64)),
    st.tuples(st.sampled_from(SMALL_ORDER), st.binary(max_size=8),
              st.tuples(st.sampled_from(SMALL_ORDER), st.integers(0, 2**253))
              .map(lambda t: t[0] + t[1].to_bytes(32, "little"))),
    st.integers(0, 2**32).map(lambda seed: _honest_entry(seed)),
)


def _honest_entry(seed: int):
    pks, msgs, sigs = honest(1, seed=seed % 251)
    return pks[0], msgs[0], sigs[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(_entry, max_size=12))
def test_batch_equals_singles_property(entries):
    pks = [e[0] for e in entries]
    msgs = [e[1] for e in entries]
    sigs = [e[2] for e in entries]
    singles = [crypto.verify(p, m, s) for p, m, s in entries]
    assert crypto.verify_batch(pks, msgs, sigs) == singles
    assert singles == [ref.verify(p, m, s) for p, m, s in entries]


@pytest.mark.parametrize("name", ["cctv/ed25519vectors.json", "zip215/zip215.json",
                                  "speccheck/cases.json"])
def test_repeated_single_checks_through_every_key_form(isa, name):
    """A key's first single check builds its table, the second its [2^128]A table (split
    scalars), later ones use both: the verdicts must not change along the way."""
    from engine import _native_ed25519

    cases = [c for c in vectors.load(name) if len(c.public_key) == 32 and len(c.signature) == 64]
    _native_ed25519.cache_clear()
    for round_ in range(3):
        got = [crypto.verify(c.public_key, c.message, c.signature) for c in cases]
        assert got == [c.expected for c in cases], round_
