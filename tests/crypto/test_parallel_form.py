"""The AVX2 parallel-form point arithmetic (csrc/ed25519/ge25_avx2.h) and the checks built on it.

The four lanes of one radix-2^25.5 vector hold X, Y, Z, T of one point, so an addition,
subtraction or doubling is two four-way products. The avx2 kernel runs its single checks (and a
bisection's lone entries) and its Straus batches (below 96 signatures) this way, and the avx512
kernel its single checks. What would make these tests fail:

- a wrong lane in a shuffle, a missing carry, a bias too small for a subtraction, a wrong sign of
  F/G in the subtraction or of the doubling's outputs: the native self-tests compare every
  operation with radix 2^51 on edge-case limbs and on every pair of special points (identity,
  the eight small-order points, non-canonical encodings, mixed-order and honest keys), exactly
  where the formulas give the same coordinates (dropping the doubling's carry makes them report
  thousands of wrong results);
- a wrong table entry or index (B's packed width-8 tables, a key's converted width-5 ones), a
  recoding that loses a carry, a scalar half taken from the wrong limbs, the last addition of -R
  or the cofactor doublings left out: single verdicts per corruption kind, through both forms of
  a cached key (whole scalars on its first check, split ones later), against the pure-Python
  reference and against cryptography where the two rules agree;
- Straus in parallel form: batches across its range and the Pippenger crossover, with corrupted
  entries first, in the middle and last, against the reference (a batch that wrongly passes
  shows as a True where the reference says False); and honest batches, under both methods,
  whose equation must hold the first time: a wrong multi-scalar multiplication is otherwise
  hidden by bisection down to single checks, so a test hook counts failed equations (a wrong
  Straus table entry passed every verdict test and fails this one).
"""
from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine import _native_ed25519, crypto
from engine._reference import ed25519 as ref
from tests.crypto.conftest import honest
from tests.crypto.test_differential import SMALL_ORDER, _flip, _mixed_order_signature

KINDS = ("honest", "flip R", "flip S", "flip A", "flip message", "S + L", "small-order key",
         "small-order R", "mixed-order key")
# cryptography (OpenSSL) checks without the cofactor: it agrees with ZIP-215 on these kinds only.
OPENSSL_COMPARABLE = {"honest", "flip R", "flip S", "flip A", "flip message", "S + L"}


def _need_avx2(result: int) -> int:
    if result == -1:
        pytest.skip("no AVX2 on this CPU")
    return result


@pytest.mark.parametrize("seed", [3, 2**40 + 1, 2**64 - 59])
def test_parallel_ops_match_radix_51_on_edge_limbs(seed):
    assert _need_avx2(_native_ed25519._selftest_avx2(seed, 4000)) == 0


def _special_points() -> list[bytes]:
    rng = random.Random(18)
    identity = (1).to_bytes(32, "little")
    minus_zero = (1 | 1 << 255).to_bytes(32, "little")          # x = -0, accepted by ZIP-215
    y_above_p = (ref.P + 1).to_bytes(32, "little")               # y >= p, the identity again
    base = ref.encode_point(ref.BASE)
    keys = [ref.encode_point(ref.scalar_mult(rng.randrange(1, ref.L), ref.BASE))
            for _ in range(3)]
    mixed = [ref.encode_point(ref.point_add(ref.decode_point(k), ref.decode_point(t)))
             for k, t in zip(keys, SMALL_ORDER[1::3])]
    return [identity, minus_zero, y_above_p, base, *SMALL_ORDER, *keys, *mixed]


def test_parallel_ops_match_radix_51_on_special_points():
    points = _special_points()
    assert all(ref.decode_point(p) is not None for p in points)
    assert _need_avx2(_native_ed25519._selftest_avx2_points(b"".join(points))) == 0


def test_special_points_hook_refuses_what_does_not_decode():
    # y = 2 has no x on the curve: the hook must say so rather than compare garbage.
    not_a_point = (2).to_bytes(32, "little")
    assert ref.decode_point(not_a_point) is None
    assert _native_ed25519._selftest_avx2_points(not_a_point) in (-1, -2)


def _entry(kind: str, rng: random.Random, seed: int):
    pks, msgs, sigs = honest(1, seed=seed)
    pk, msg, sig = pks[0], msgs[0], sigs[0]
    if kind == "flip R":
        sig = _flip(sig, rng.randrange(256))
    elif kind == "flip S":
        sig = _flip(sig, 256 + rng.randrange(253))
    elif kind == "flip A":
        pk = _flip(pk, rng.randrange(256))
    elif kind == "flip message":
        msg = _flip(msg, rng.randrange(8 * len(msg)))
    elif kind == "S + L":
        s = int.from_bytes(sig[32:], "little") + ref.L
        sig = sig[:32] + s.to_bytes(32, "little")
    elif kind == "small-order key":
        pk = rng.choice(SMALL_ORDER)
    elif kind == "small-order R":
        sig = rng.choice(SMALL_ORDER) + sig[32:]
    elif kind == "mixed-order key":
        pk, sig = _mixed_order_signature(rng, msg)
    return pk, msg, sig


def _openssl(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


@pytest.mark.parametrize("kind", KINDS)
def test_single_verdicts_through_both_key_forms(isa, kind):
    rng = random.Random(kind)
    entries = [_entry(kind, rng, seed) for seed in range(6)]
    expected = [ref.verify(*e) for e in entries]
    if kind == "honest" or kind == "mixed-order key":
        assert all(expected)
    if kind in OPENSSL_COMPARABLE:
        assert expected == [_openssl(*e) for e in entries]
    _native_ed25519.cache_clear()
    # first check: whole scalars against the key's table; then the [2^128]A table is built and
    # the scalars are split in halves
    for round_ in range(3):
        assert [crypto.verify(*e) for e in entries] == expected, round_


@pytest.mark.parametrize("n", [2, 3, 4, 17, 95, 96])
def test_batches_across_straus_range(isa, n):
    rng = random.Random(n)
    pks, msgs, sigs = honest(n, seed=n)
    bad = sorted({0, n // 2, n - 1})
    for i in bad:
        kind = rng.choice(KINDS[1:])
        pks[i], msgs[i], sigs[i] = _entry(kind, rng, 100 + i)
    expected = [True] * n
    for i in bad:
        expected[i] = ref.verify(pks[i], msgs[i], sigs[i])
    assert crypto.verify_batch(pks, msgs, sigs, threads=1) == expected
    # The valid entries alone: the batch equation itself must hold (were it wrong, bisection
    # down to single checks would still give these verdicts, so the hook is what shows it).
    keep = [i for i in range(n) if expected[i]]
    failures = _native_ed25519._batch_equation_failures()
    assert crypto.verify_batch([pks[i] for i in keep], [msgs[i] for i in keep],
                               [sigs[i] for i in keep], threads=1) == [True] * len(keep)
    assert _native_ed25519._batch_equation_failures() == failures


@pytest.mark.parametrize("n", [3, 8, 40, 95, 96, 200])
def test_honest_batch_equations_hold_without_bisection(isa, n):
    """Straus (parallel form on avx2) and Pippenger on honest batches, with the methods swapped
    by the test hook too: a wrong table entry, a lost recoding carry or a wrong bucket leaves the
    verdicts right (bisection) but makes the equation fail, which the counter shows; a batch
    with one bad entry must make it fail once at least."""
    pks, msgs, sigs = honest(n, seed=n + 1)
    try:
        for points in (0, 10**9, 1):  # the default, all Straus, all Pippenger
            _native_ed25519._set_pippenger_min(points)
            failures = _native_ed25519._batch_equation_failures()
            assert crypto.verify_batch(pks, msgs, sigs, threads=1) == [True] * n
            assert _native_ed25519._batch_equation_failures() == failures, points
            bad = list(sigs)
            bad[n // 3] = _flip(bad[n // 3], 260)
            assert crypto.verify_batch(pks, msgs, bad, threads=1) == [i != n // 3
                                                                      for i in range(n)]
            assert _native_ed25519._batch_equation_failures() > failures, points
    finally:
        _native_ed25519._set_pippenger_min(0)

