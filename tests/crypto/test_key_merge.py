"""Batches whose entries share keys: one point per distinct key in the batch equation.

The kernel sums the scalars z_i k_i of every entry signed by one key (told apart by their
32-byte encodings) into one term. What would make these tests fail:

- a scalar added to another key's term, one left out, or a term given the wrong key's point:
  the equation of an honest batch fails (the verdicts would still be right after bisection,
  so the test hook that counts failed equations is what shows it), under Straus and Pippenger,
  one thread and the pool;
- keys merged without comparing their encodings (two keys meeting on one slot of the probe
  table, which is common at its half load): honest batches fail the equation; and an entry
  under a key that shares its first bytes with another key (a probe on a prefix would put them
  together), signed with the other key's secret over its own challenge, would pass as the
  other key's; single verification (and the pure-Python reference) refuses it;
- bad entries among repeated keys (flipped S, a signature of the same key over another message,
  two entries' signatures swapped) must come out False exactly where the reference says so.
"""
from __future__ import annotations

import hashlib
import random

import pytest

from engine import _native_ed25519, crypto
from engine._reference import ed25519 as ref
from engine.crypto import SigningKey
from tests.crypto.test_differential import _flip


def _repeated(n: int, keys: int, seed: int):
    """n honest signatures by ``keys`` signers, in a shuffled order (so one key's entries are
    spread over the batch and over the pool's ranges)."""
    rng = random.Random(seed)
    signers = [SigningKey.from_seed(hashlib.sha256(b"merge %d %d" % (seed, i)).digest())
               for i in range(keys)]
    owners = [i % keys for i in range(n)]
    rng.shuffle(owners)
    msgs = [rng.randbytes(60 + i % 50) for i in range(n)]
    sigs = [signers[o].sign(m) for o, m in zip(owners, msgs)]
    return [signers[o].public_key for o in owners], msgs, sigs, owners


@pytest.fixture(params=[0, 10**9, 1], ids=["default", "straus", "pippenger"])
def method(request):
    _native_ed25519._set_pippenger_min(request.param)
    try:
        yield request.param
    finally:
        _native_ed25519._set_pippenger_min(0)


@pytest.mark.parametrize("n,keys,threads", [(3, 1, 1), (40, 1, 1), (40, 7, 1), (200, 13, 1),
                                            (600, 50, 2), (600, 600, 2), (1200, 3, 2)])
def test_honest_equation_holds_with_shared_keys(isa, method, n, keys, threads):
    pks, msgs, sigs, _ = _repeated(n, keys, seed=n * 1000 + keys)
    failures = _native_ed25519._batch_equation_failures()
    assert crypto.verify_batch(pks, msgs, sigs, threads=threads) == [True] * n
    assert _native_ed25519._batch_equation_failures() == failures


@pytest.mark.parametrize("n,keys,threads", [(12, 2, 1), (150, 10, 1), (700, 20, 2)])
def test_bad_entries_among_shared_keys(isa, method, n, keys, threads):
    rng = random.Random(n + keys)
    pks, msgs, sigs, owners = _repeated(n, keys, seed=n + keys)
    i, j, k = rng.sample(range(n), 3)
    sigs[i] = _flip(sigs[i], 300)  # S of an entry of a shared key
    msgs[j] = msgs[j] + b"!"  # the key's signature over another message
    same = [x for x in range(n) if owners[x] == owners[k] and x not in (i, j, k)]
    sigs[k], sigs[same[0]] = sigs[same[0]], sigs[k]  # two entries of one key swapped
    expected = [True] * n  # honest but for these four
    for x in (i, j, k, same[0]):
        expected[x] = ref.verify(pks[x], msgs[x], sigs[x])
    assert expected.count(False) == 4
    failures = _native_ed25519._batch_equation_failures()
    assert crypto.verify_batch(pks, msgs, sigs, threads=threads) == expected
    assert _native_ed25519._batch_equation_failures() > failures


def _key_sharing_prefix(pk: bytes, rng: random.Random) -> bytes:
    """Another curve point whose encoding has the same first 8 bytes as ``pk``."""
    while True:
        other = pk[:8] + rng.randbytes(23) + bytes([pk[31] & 0x7F])
        if other != pk and ref.decode_point(other) is not None:
            return other


def test_keys_sharing_a_prefix_stay_apart(isa, method):
    """An entry under key A' (same first 8 bytes as A, another point), signed with A's secret
    over A''s challenge: valid for A, not for A'. Merged into A's term it would pass."""
    rng = random.Random(7)
    a = rng.randrange(1, ref.L)
    pk_a = ref.encode_point(ref.scalar_mult(a, ref.BASE))
    pk_other = _key_sharing_prefix(pk_a, rng)
    entries = []
    for i in range(30):
        msg = b"entry %d" % i
        r = rng.randrange(1, ref.L)
        r_bytes = ref.encode_point(ref.scalar_mult(r, ref.BASE))
        pk = pk_other if i in (4, 17) else pk_a
        s = (r + ref.challenge(r_bytes, pk, msg) * a) % ref.L
        entries.append((pk, msg, r_bytes + s.to_bytes(32, "little")))
    pks, msgs, sigs = map(list, zip(*entries))
    expected = [ref.verify(p, m, s) for p, m, s in entries]
    assert expected == [i not in (4, 17) for i in range(30)]
    assert crypto.verify_batch(pks, msgs, sigs, threads=1) == expected
