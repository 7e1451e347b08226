"""The AVX-512 IFMA eight-lane SM2 kernels (csrc/sm2/sm2_avx512.c, sm2_field_ifma.h).

Every verdict test runs on every ISA path this CPU has (the ``sm_isa`` fixture) and compares
with the portable path, the pure-Python reference and, where reachable, OpenSSL 3; the lane path
itself is only reached with ``sm_isa == "avx512"`` on a CPU with IFMA, and the tests that are
about lanes say so. What each test would catch is in its docstring.
"""
from __future__ import annotations

import random

import pytest

from engine import _native_sm, crypto
from engine._reference import sm2 as ref
from engine.benchmarks import openssl_sm2
from tests.conftest import forced_isa
from tests.sm.conftest import sm2_key_cache
from tests.sm.lane_field import (
    COMMON_OPS,
    check_against_python,
    check_lanes_independent,
    check_raw_against_reference,
    field_pairs,
)

N = ref.N
P = ref.P
UID = crypto.SM2_DEFAULT_UID
R = 2**260
HAVE_LANES = _native_sm._sm2_lane_field(0, bytes(256), bytes(256)) is not None
needs_lanes = pytest.mark.skipif(not HAVE_LANES, reason="this CPU has no AVX-512 IFMA")
HAVE_OPENSSL = openssl_sm2.available()


def i2b(v: int) -> bytes:
    return v.to_bytes(32, "big")


def keys(count: int, seed: int) -> list[crypto.Sm2SigningKey]:
    rng = random.Random(seed)
    return [crypto.Sm2SigningKey(i2b(rng.randrange(1, N - 1))) for _ in range(count)]


@pytest.fixture(params=[0, 4096], ids=["no-cache", "cache"])
def key_cache(request):
    with sm2_key_cache(request.param) as keys:
        yield keys


# ---- the lane field against Python integers -----------------------------------------------------

def edge_values() -> list[int]:
    """Values at the edges of what the lane code sees: near 0, p and 2^256, and radix-2^52
    limbs all ones or all zeros (each limb at its bound in turn)."""
    m52 = 2**52 - 1
    vals = [0, 1, 2, P - 2, P - 1, P, P + 1, 2**256 - 1, 2**256 - 2**224, 2**255, 2**224,
            2**96, 2**64 - 1, 2**64, m52, 2**52, (2**256 - 1) - (P - 1)]
    for i in range(5):
        limb = m52 << (52 * i)
        if limb < 2**256:
            vals += [limb, (2**256 - 1) ^ limb]
    vals += [(2**256 - 1) & (m52 << 48 * 4)]
    return [v for v in vals if v < 2**256]


FIELD_OPS = {
    **COMMON_OPS,
    6: lambda a, b: a * b * pow(R, -1, P) % P,
}


@needs_lanes
@pytest.mark.parametrize("op", sorted(FIELD_OPS))
def test_lane_field_edges_against_python(op):
    """A wrong constant (p's limbs, R^2, 2^264), a carry dropped at a limb bound, a missing
    final subtraction (results in [p, 2p)), a reduction round that forgets p's all-ones limbs,
    or lanes mixed up: each makes some lane disagree with Python's exact integers."""
    check_against_python(op, FIELD_OPS[op], field_pairs(edge_values(), op, op == 4, 160))


@needs_lanes
def test_lane_field_lanes_are_independent():
    """Lane l's result depends on lane l's inputs only (a shuffle bug or a shared carry shows
    as a result that changes when another lane's input does)."""
    check_lanes_independent(0)


# ---- verdicts -----------------------------------------------------------------------------------

class Corpus:
    def __init__(self, count: int, seed: int):
        rng = random.Random(seed)
        self.keys = keys(count, seed)
        self.pks = [k.public_key for k in self.keys]
        self.msgs = [rng.randbytes(rng.randrange(0, 150)) for _ in range(count)]
        self.sigs = [k.sign(m) for k, m in zip(self.keys, self.msgs)]


def corrupt(kind: str, pk: bytes, msg: bytes, sig: bytes, rng: random.Random
            ) -> tuple[bytes, bytes, bytes]:
    """One invalid input of the given kind from a valid (pk, msg, sig)."""
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if kind == "flip_r":
        return pk, msg, i2b(r ^ (1 << rng.randrange(256))) + sig[32:]
    if kind == "flip_s":
        return pk, msg, sig[:32] + i2b(s ^ (1 << rng.randrange(256)))
    if kind == "flip_msg":
        m = bytearray(msg or b"\0")
        m[rng.randrange(len(m))] ^= 1 << rng.randrange(8)
        return pk, bytes(m), sig
    if kind == "flip_key":
        k = bytearray(pk)
        k[rng.randrange(64)] ^= 1 << rng.randrange(8)
        return bytes(k), msg, sig
    if kind == "r0":
        return pk, msg, i2b(0) + sig[32:]
    if kind == "s0":
        return pk, msg, sig[:32] + i2b(0)
    if kind == "r_n":
        return pk, msg, i2b(N + rng.randrange(16)) + sig[32:]
    if kind == "s_n":
        return pk, msg, sig[:32] + i2b(N)
    if kind == "t0":  # r + s = n: t = 0
        return pk, msg, sig[:32] + i2b(N - r)
    if kind == "x_ge_p":
        return i2b(P + 1) + pk[32:], msg, sig
    if kind == "y_ge_p":
        return pk[:32] + i2b(P + 2), msg, sig
    if kind == "zero_key":
        return bytes(64), msg, sig
    if kind == "swap_xy":
        return pk[32:] + pk[:32], msg, sig
    if kind == "infinity":
        # s + (r + s) d = 0 mod n makes [s]G + [t]P the point at infinity
        d = rng.randrange(2, N - 2)
        rr = rng.randrange(1, N)
        ss = (-rr * d) * pow(1 + d, -1, N) % N
        return ref.public_key(d), msg, i2b(rr) + i2b(ss)
    raise AssertionError(kind)


KINDS = ["flip_r", "flip_s", "flip_msg", "flip_key", "r0", "s0", "r_n", "s_n", "t0", "x_ge_p",
         "y_ge_p", "zero_key", "swap_xy", "infinity"]


def one_invalid_in_every_position(kind: str, size: int, seed: int, cache_keys: int) -> None:
    """A batch of ``size`` valid signatures with one made invalid (``kind``) in each position in
    turn, the key cache emptied first (new keys), verified three times (cold, seen once: the
    upgrade to four quarters, warm): only that item is False."""
    c = Corpus(size, seed)
    rng = random.Random(hash(kind) & 0xffff)
    for pos in range(size):
        crypto.sm2_configure_key_cache(cache_keys)  # empty: new keys
        pks, msgs, sigs = list(c.pks), list(c.msgs), list(c.sigs)
        pks[pos], msgs[pos], sigs[pos] = corrupt(kind, pks[pos], msgs[pos], sigs[pos], rng)
        want = [i != pos for i in range(size)]
        if kind == "flip_key" and ref.verify(pks[pos], msgs[pos], sigs[pos]):
            want[pos] = True  # a flipped key bit that stays valid: never in practice
        for _ in range(3):
            assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=1) == want, (kind, pos)


def verdicts_on(isa: str, pks, msgs, sigs, uid=UID) -> list[bool]:
    with forced_isa(_native_sm, isa):
        return crypto.sm2_verify_batch(pks, msgs, sigs, uid=uid, threads=1)


def lanes_path_or_skip(sm_isa: str) -> None:
    if sm_isa == "avx512" and crypto.sm2_native_path() != "avx512":
        pytest.skip("AVX-512 without IFMA: SM2 runs its AVX2 build")


@pytest.mark.parametrize("size", list(range(1, 21)) + [63, 64, 65])
def test_random_batches_match_portable_and_reference(sm_isa, key_cache, size):
    """Mixed valid and invalid signatures (one in three corrupted, kinds and positions drawn
    from the size): a verdict written to the wrong item, a leftover lane (size not a multiple
    of 8) read from padding, a corrupted lane that spoils another, or a key decoded wrong in
    lanes each gives a verdict that differs from the portable path or the reference."""
    lanes_path_or_skip(sm_isa)
    rng = random.Random(1000 + size)
    c = Corpus(size, size)
    pks, msgs, sigs, want = [], [], [], []
    for pk, m, s in zip(c.pks, c.msgs, c.sigs):
        if rng.random() < 0.33:
            pk, m, s = corrupt(rng.choice(KINDS), pk, m, s, rng)
        pks.append(pk)
        msgs.append(m)
        sigs.append(s)
    for _ in range(2):  # cold, then (with the cache) every key seen again
        got = crypto.sm2_verify_batch(pks, msgs, sigs, threads=1)
        if not want:
            if size <= 20:
                want = [ref.verify(pk, m, s) for pk, m, s in zip(pks, msgs, sigs)]
            else:
                want = verdicts_on("portable", pks, msgs, sigs)
        assert got == want
    assert got == [crypto.sm2_verify(pk, m, s) for pk, m, s in zip(pks, msgs, sigs)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [8, 13])
def test_one_invalid_lane_in_every_position(sm_isa, key_cache, kind, size):
    """Each kind of invalid input in each lane position among valid signatures, with keys new
    to the cache (lane key decoding) and again once seen: only that lane is False. Catches
    a lane whose failure (off-curve key, R at infinity handed back to the scalar code, r or s
    out of range) leaks into the others, and position-dependent lane bugs."""
    lanes_path_or_skip(sm_isa)
    one_invalid_in_every_position(kind, size, 50 + size, key_cache)


def test_wrong_uid_in_lanes(sm_isa, key_cache):
    """Signatures made for another user ID are False, the others True (Z_A computed per key
    with the batch's uid, also for keys decoded in lanes)."""
    lanes_path_or_skip(sm_isa)
    c = Corpus(16, 77)
    sigs = list(c.sigs)
    for i in (0, 5, 9, 15):
        sigs[i] = c.keys[i].sign(c.msgs[i], uid=b"another user")
    want = [i not in (0, 5, 9, 15) for i in range(16)]
    for _ in range(3):
        assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, threads=1) == want
    assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, uid=b"another user", threads=1) == [
        not w for w in want]


def test_duplicate_keys_in_one_batch(sm_isa, key_cache):
    """The same new key in several lanes of one batch (decoded in several lanes at once, then
    cached): every verdict right."""
    lanes_path_or_skip(sm_isa)
    key = keys(1, 3)[0]
    msgs = [bytes([i]) * i for i in range(20)]
    sigs = [key.sign(m) for m in msgs]
    sigs[7] = sigs[8]
    want = [i != 7 for i in range(20)]
    for _ in range(3):
        assert crypto.sm2_verify_batch([key.public_key] * 20, msgs, sigs, threads=1) == want


@pytest.mark.slow
def test_batch_1024_cold_and_warm_match_portable(sm_isa):
    """A large batch (many eight-lane groups in several 64-item tasks, two threads) cold and
    warm, against the portable path."""
    lanes_path_or_skip(sm_isa)
    rng = random.Random(9)
    c = Corpus(1024, 9)
    pks, msgs, sigs = list(c.pks), list(c.msgs), list(c.sigs)
    for i in rng.sample(range(1024), 100):
        pks[i], msgs[i], sigs[i] = corrupt(rng.choice(KINDS), pks[i], msgs[i], sigs[i], rng)
    want = verdicts_on("portable", pks, msgs, sigs)
    assert want.count(False) >= 90
    with sm2_key_cache(4096):
        for _ in range(3):
            assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=2) == want


@pytest.mark.skipif(not HAVE_OPENSSL, reason="libcrypto is not OpenSSL 3 with SM2")
def test_openssl_signatures_in_lanes(sm_isa, key_cache):
    """OpenSSL signs 20 messages with its own keys and DER encoding; the lanes verify them all,
    and every flipped one fails (our signer and verifier cannot share a mistake here)."""
    lanes_path_or_skip(sm_isa)
    rng = random.Random(11)
    ks = [openssl_sm2.Key.generate() for _ in range(20)]
    msgs = [rng.randbytes(rng.randrange(1, 90)) for _ in range(20)]
    sigs = [crypto.sm2_signature_from_der(k.sign(m)) for k, m in zip(ks, msgs)]
    pks = [k.public_xy() for k in ks]
    assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=1) == [True] * 20
    bad = [bytes(s[:10]) + bytes([s[10] ^ 4]) + bytes(s[11:]) for s in sigs]
    assert crypto.sm2_verify_batch(pks, msgs, bad, threads=1) == [False] * 20


@needs_lanes
def test_check_raw_one_lane_matches_reference():
    """The curve check alone in one lane (the rest padding), both table sizes, against
    x([s]G + [t]P) from the reference: catches wrong digit signs (t or s even: n - t), a wrong
    top term (2^256 P) or comb entry, and a wrong c + n comparison."""
    with forced_isa(_native_sm, "avx512"):
        check_raw_against_reference(5, 12)


@pytest.mark.parametrize("uid_len", [0, 1, 64, 65, 1000])
def test_user_id_lengths_with_new_keys(sm_isa, key_cache, uid_len):
    """New keys get Z_A from the SM3 lanes when the user ID is short enough to be cached
    (<= 64 bytes) and from the one-message path when longer: a wrong ENTL, a user ID copied
    short, or a Z left from another user ID makes signatures for that ID fail (or pass for
    another)."""
    lanes_path_or_skip(sm_isa)
    uid = bytes((7 * i + 1) % 256 for i in range(uid_len))
    c = Corpus(11, 200 + uid_len)
    sigs = [k.sign(m, uid=uid) for k, m in zip(c.keys, c.msgs)]
    for _ in range(3):
        assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, uid=uid, threads=1) == [True] * 11
    assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, uid=uid + b"!", threads=1) == [False] * 11
    crypto.sm2_configure_key_cache(key_cache)
    assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, uid=uid + b"!", threads=1) == [False] * 11
    assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, uid=uid, threads=1) == [True] * 11
