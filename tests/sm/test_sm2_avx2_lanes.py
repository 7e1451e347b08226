"""The AVX2 four-lane SM2 kernels (csrc/sm2/sm2_avx2x4.c, sm2_field_avx2x4.h).

The field (radix 2^29, nine limbs, Montgomery with R = 2^261) is checked against Python
integers through the ``_sm2_lane_field`` hook's ops 16..33; the verdicts with the SM kernels
forced onto the ``avx2`` path (where batches of two or more run in four lanes) against the
pure-Python reference, single verification (the scalar mulx/adx code) and the portable path.
What each test would catch is in its docstring.
"""
from __future__ import annotations

import random

import pytest

from engine import _native_sm, crypto
from engine._reference import sm2 as ref
from tests.conftest import ISA_PATHS, forced_isa
from tests.sm import lane_field
from tests.sm.conftest import sm2_key_cache
from tests.sm.lane_field import COMMON_OPS, check_against_python, field_pairs
from tests.sm.test_sm2_lanes import KINDS, Corpus, corrupt, i2b, keys, one_invalid_in_every_position

N = ref.N
P = ref.P
R = 2**261
M29 = 2**29 - 1
HAVE_AVX2_LANES = ("avx2" in ISA_PATHS
                   and _native_sm._sm2_lane_field(16, bytes(256), bytes(256)) is not None)
pytestmark = pytest.mark.skipif(not HAVE_AVX2_LANES, reason="this CPU has no AVX2 + BMI2 + ADX")


@pytest.fixture
def avx2():
    """The SM kernels forced onto the AVX2 path (four-lane kernels for batches)."""
    with forced_isa(_native_sm, "avx2"):
        assert crypto.sm2_native_path() == "avx2"
        yield


@pytest.fixture(params=[0, 4096], ids=["no-cache", "cache"])
def key_cache(request):
    with sm2_key_cache(request.param) as k:
        yield k


# ---- the lane field against Python integers -----------------------------------------------------

def lane_op(op: int, a: list[int], b: list[int]) -> list[int]:
    return lane_field.lane_op(16 + op, a, b)


FIELD_OPS = {
    **COMMON_OPS,
    6: lambda a, b: a * b * pow(R, -1, P) % P,      # limbs fed to the product as they are
    7: lambda a, b: 4 * a * b * pow(R, -1, P) % P,  # a + a, b + b unreduced (class L) into it
    8: lambda a, b: 16 * a % P,
    9: lambda a, b: ((a - b) + (3 * b - a)) * 48 * (a - 2 * b) % P,  # chained additions into a product
    10: lambda a, b: 4 * a * b % P,  # 4a uncarried (class S) into a product
    11: lambda a, b: (9 * a * a - 8 * b) % P,  # sub_wide of uncarried 9x and 8y
    12: lambda a, b: a * (4 * b - a) % P,  # a W operand (4b - a + 4p, not carried) into a product
    13: lambda a, b: 2 * a * (a - b) % P,  # L times V (a - b + 4p, not carried)
    14: lambda a, b: 3 * a * (a + b) % P,  # W as 3 (a + b), not carried
    15: lambda a, b: -a * b % P,  # 4p - a (canonical a), not carried, into a product
    16: lambda a, b: a * b % P,  # the C reference of the assembly product
    17: lambda a, b: a * a % P,  # and of the square
}


def edge_values() -> list[int]:
    """Near 0, p and 2^256 (the inputs are reduced on the way in: 2^256 - 1 is 2^256 - 1 - p),
    p's special bits (2^224, 2^96, 2^64), and every radix-2^29 limb all ones or all zeros in
    turn (a carry dropped at a limb boundary shows there)."""
    vals = [0, 1, 2, 3, P - 2, P - 1, P, P + 1, 2 * P - 2**256 + 2**255, 2**256 - 1, 2**256 - 2,
            2**256 - 2**224, 2**255, 2**224, 2**224 - 1, 2**96, 2**96 - 1, 2**64 - 1, 2**64,
            M29, 2**29, 2**58 - 1, (2**256 - 1) - (P - 1), P - 2**232, 2**232 - 1]
    for i in range(9):
        limb = M29 << (29 * i)
        vals += [limb & (2**256 - 1), (2**256 - 1) ^ (limb & (2**256 - 1)), 1 << (29 * i),
                 (1 << (29 * i)) - 1]
    return sorted({v for v in vals if 0 <= v < 2**256})


@pytest.mark.parametrize("op", sorted(FIELD_OPS))
def test_avx2_lane_field_edges_against_python(op):
    """A wrong constant (p's limbs, 4p's redundant limbs, R^2, 2^266, 2^261 - p), a column
    whose bias or reduction term is misplaced, a carry dropped or a limb left above 2^29, a
    missing final subtraction, a fold that forgets a term of 2^256 mod p, or lanes mixed up:
    each makes some lane disagree with Python's exact integers."""
    check_against_python(16 + op, FIELD_OPS[op],
                         field_pairs(edge_values(), 100 + op, op == 4, 120, top_near_2_256=True))


def test_avx2_lane_field_random_chains():
    """Many random products and squares (a slow drift past a bound that edges miss)."""
    rng = random.Random(3)
    for op in (0, 1, 3, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17):
        for _ in range(200):
            a = [rng.getrandbits(256) for _ in range(8)]
            b = [rng.getrandbits(256) for _ in range(8)]
            assert lane_op(op, a, b) == [FIELD_OPS[op](x, y) for x, y in zip(a, b)]


def test_avx2_lane_field_lanes_are_independent():
    """Lane l's result depends on lane l's inputs only."""
    lane_field.check_lanes_independent(16)


def test_avx2_lane_field_unknown_op():
    assert _native_sm._sm2_lane_field(34, bytes(256), bytes(256)) is None


# ---- verdicts in four lanes ---------------------------------------------------------------------

def mixed(size: int, seed: int, share: float = 0.33):
    rng = random.Random(seed)
    c = Corpus(size, seed)
    pks, msgs, sigs = [], [], []
    for pk, m, s in zip(c.pks, c.msgs, c.sigs):
        if rng.random() < share:
            pk, m, s = corrupt(rng.choice(KINDS), pk, m, s, rng)
        pks.append(pk)
        msgs.append(m)
        sigs.append(s)
    return pks, msgs, sigs


@pytest.mark.parametrize("size", list(range(1, 14)) + [17, 31])
def test_avx2_batches_match_reference_and_single(avx2, key_cache, size):
    """Mixed valid and invalid signatures in batches of 1..13, 17 and 31 (most not multiples
    of four: padding lanes), cold, seen once (four-quarter upgrade) and warm: a verdict written
    to the wrong item, a padding lane read, a corrupted lane spoiling another, or a key decoded
    wrong in lanes gives a verdict that differs from the reference or from single verification
    (the scalar code)."""
    pks, msgs, sigs = mixed(size, 4000 + size)
    want = [ref.verify(pk, m, s) for pk, m, s in zip(pks, msgs, sigs)]
    for _ in range(3):
        assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=1) == want
    assert [crypto.sm2_verify(pk, m, s) for pk, m, s in zip(pks, msgs, sigs)] == want


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [4, 7])
def test_avx2_one_invalid_lane_in_every_position(avx2, key_cache, kind, size):
    """Each kind of invalid input (bit flips in r, s, message, key; r or s = 0 or >= n;
    r + s = n; coordinates >= p; keys off the curve; a sum at infinity, which the lanes hand
    back to the scalar code) in each position of a full group of four and of 4 + 3, keys new
    and then cached: only that item is False."""
    one_invalid_in_every_position(kind, size, 600 + size, key_cache)


def test_avx2_off_curve_keys_in_every_lane(avx2, key_cache):
    """Keys off the curve (y + 1) in lanes 0..3 of one key-decoding group: that key is False
    and the other three lanes' keys still decode."""
    c = Corpus(4, 91)
    for pos in range(4):
        crypto.sm2_configure_key_cache(key_cache)
        pks = list(c.pks)
        y = int.from_bytes(pks[pos][32:], "big")
        pks[pos] = pks[pos][:32] + i2b((y + 1) % P)
        assert crypto.sm2_verify_batch(pks, c.msgs, c.sigs, threads=1) == [
            i != pos for i in range(4)]


@pytest.mark.parametrize("y", [0, 1])
def test_avx2_degenerate_key_does_not_spoil_its_lane(avx2, key_cache, y):
    """A key (x, 0) or (x, 1) off the curve (with y = 0 its doubling has Z = 0, so the
    product of its group's Z is zero in that lane) in every position of 13 new keys (four
    groups of four lanes, decoded together with one inversion per lane): only that item is
    False. Catches a shared inversion whose zero lane spoils the same lane of the other
    groups."""
    c = Corpus(13, 808)
    for pos in range(13):
        crypto.sm2_configure_key_cache(key_cache)
        pks = list(c.pks)
        pks[pos] = pks[pos][:32] + i2b(y)
        assert crypto.sm2_verify_batch(pks, c.msgs, c.sigs, threads=1) == [
            i != pos for i in range(13)], pos


def test_avx2_repeated_keys(avx2, key_cache):
    """The same new key in many lanes at once (decoded in several lanes, then cached), and a
    few keys repeated across a batch, one signature copied to the wrong message."""
    key = keys(1, 33)[0]
    msgs = [bytes([i]) * (i + 1) for i in range(11)]
    sigs = [key.sign(m) for m in msgs]
    sigs[6] = sigs[2]
    want = [i != 6 for i in range(11)]
    for _ in range(3):
        assert crypto.sm2_verify_batch([key.public_key] * 11, msgs, sigs, threads=1) == want
    ks = keys(3, 34)
    pks = [ks[i % 3].public_key for i in range(14)]
    msgs = [b"m%d" % i for i in range(14)]
    sigs = [ks[i % 3].sign(m) for i, m in enumerate(msgs)]
    sigs[9] = bytes([sigs[9][0] ^ 0x80]) + sigs[9][1:]
    want = [i != 9 for i in range(14)]
    for _ in range(3):
        assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=1) == want


@pytest.mark.parametrize("size", [63, 64, 65, 130])
def test_avx2_batches_match_portable(avx2, size):
    """Several four-lane groups and 64-item tasks (two threads), one in five invalid, cold and
    warm, against the portable path."""
    pks, msgs, sigs = mixed(size, 7000 + size, 0.2)
    with forced_isa(_native_sm, "portable"):
        want = crypto.sm2_verify_batch(pks, msgs, sigs, threads=1)
    with forced_isa(_native_sm, "avx2"), sm2_key_cache(4096):
        for _ in range(3):
            assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=2) == want


@pytest.mark.slow
def test_avx2_batch_1024_matches_portable(avx2):
    """A large batch, 100 invalid, cold and warm, two threads, against the portable path."""
    pks, msgs, sigs = mixed(1024, 77, 0.1)
    with forced_isa(_native_sm, "portable"):
        want = crypto.sm2_verify_batch(pks, msgs, sigs, threads=1)
    with forced_isa(_native_sm, "avx2"), sm2_key_cache(4096):
        for _ in range(3):
            assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=2) == want


def test_avx2_check_raw_one_lane_matches_reference(avx2):
    """The curve check alone in one lane (three padding lanes), both table sizes, against
    x([s]G + [t]P) from the reference, including x(R) >= n (c + n): catches wrong digit signs
    (t or s even), a wrong top term (2^256 P, 2^256 G) or comb entry, a wrong chunk offset in
    the key table, and a wrong c + n comparison."""
    lane_field.check_raw_against_reference(15, 10)


def test_avx2_user_ids(avx2, key_cache):
    """New keys decoded in lanes get Z_A for the batch's user ID (short: SM3 lanes; long: one
    message at a time)."""
    for uid in (b"", b"1234567812345678", bytes(range(100))):
        c = Corpus(6, 300 + len(uid))
        sigs = [k.sign(m, uid=uid) for k, m in zip(c.keys, c.msgs)]
        crypto.sm2_configure_key_cache(key_cache)
        assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, uid=uid, threads=1) == [True] * 6
        assert crypto.sm2_verify_batch(c.pks, c.msgs, sigs, uid=uid + b"!", threads=1) == [
            False] * 6
