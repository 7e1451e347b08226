"""Checks shared by the two lane-kernel test files (test_sm2_lanes.py: AVX-512 IFMA, eight lanes,
hook ops 0..6; test_sm2_avx2_lanes.py: AVX2, four lanes run twice, hook ops 16 and up): the
``_sm2_lane_field`` hook against Python integers on given pairs, eight lanes a call, and lane
independence."""
from __future__ import annotations

import random
from collections.abc import Callable

from engine import _native_sm
from engine._reference import sm2 as ref

P = ref.P

# The operations both hooks number alike (a, b plain integers in, the result canonical out).
COMMON_OPS: dict[int, Callable[[int, int], int]] = {
    0: lambda a, b: a * b % P,
    1: lambda a, b: a * a % P,
    2: lambda a, b: (a + b) % P,
    3: lambda a, b: (a - b) % P,
    4: lambda a, b: pow(a, P - 2, P),
    5: lambda a, b: -a % P,
}


def lane_op(hook_op: int, a: list[int], b: list[int]) -> list[int]:
    """The hook's op on eight lanes of 256-bit integers (little-endian in and out)."""
    out = _native_sm._sm2_lane_field(hook_op, b"".join(x.to_bytes(32, "little") for x in a),
                                     b"".join(x.to_bytes(32, "little") for x in b))
    assert out is not None
    return [int.from_bytes(out[32 * i:32 * i + 32], "little") for i in range(8)]


def field_pairs(edges: list[int], seed: int, inverse: bool, edge_pairs_kept: int,
                top_near_2_256: bool = False) -> list[tuple[int, int]]:
    """Every pair of edge values in random order (the first ``edge_pairs_kept`` only for the
    inversion, which is slow), random pairs, pairs just below p, optionally pairs just below
    2^256, padded to a multiple of eight lanes."""
    rng = random.Random(seed)
    pairs = [(a, b) for a in edges for b in edges]
    rng.shuffle(pairs)
    if inverse:
        pairs = pairs[:edge_pairs_kept]
    pairs += [(rng.getrandbits(256), rng.getrandbits(256)) for _ in range(40 if inverse else 400)]
    pairs += [(rng.randrange(P - 2**40, P), rng.randrange(P - 2**40, 2**256)) for _ in range(40)]
    if top_near_2_256:
        pairs += [(2**256 - 1 - rng.getrandbits(20), 2**256 - 1 - rng.getrandbits(20))
                  for _ in range(16)]
    while len(pairs) % 8:
        pairs.append((1, 1))
    return pairs


def check_against_python(hook_op: int, want_of: Callable[[int, int], int],
                         pairs: list[tuple[int, int]]) -> None:
    """The hook's op on every pair, eight lanes a call, equal to Python's exact integers."""
    for g in range(0, len(pairs), 8):
        a = [x for x, _ in pairs[g:g + 8]]
        b = [y for _, y in pairs[g:g + 8]]
        got = lane_op(hook_op, a, b)
        want = [want_of(x, y) for x, y in zip(a, b)]
        assert got == want, (hook_op, [(hex(x), hex(y)) for x, y, u, v in zip(a, b, got, want)
                                       if u != v])


def check_lanes_independent(mul_op: int) -> None:
    """Lane l's product depends on lane l's inputs only (a shuffle bug or a shared carry shows
    as a result that changes when another lane's input does)."""
    rng = random.Random(7)
    a = [rng.getrandbits(256) for _ in range(8)]
    b = [rng.getrandbits(256) for _ in range(8)]
    base = lane_op(mul_op, a, b)
    for lane in range(8):
        a2 = list(a)
        a2[lane] = P - 1
        got = lane_op(mul_op, a2, b)
        assert [g for i, g in enumerate(got) if i != lane] == [g for i, g in enumerate(base)
                                                               if i != lane]
        assert got[lane] == (P - 1) * b[lane] % P


def check_raw_against_reference(seed: int, rounds: int) -> None:
    """The curve check alone in one lane (the rest padding), both table sizes, against
    x([s]G + [t]P) from the reference, s and t at their edges (2, n - 1; n - 2, 1) and random."""
    rng = random.Random(seed)
    for i in range(rounds):
        d = rng.randrange(1, ref.N - 1)
        pk = ref.public_key(d)
        q = (int.from_bytes(pk[:32], "big"), int.from_bytes(pk[32:], "big"))
        s = rng.randrange(1, ref.N) if i > 1 else (2 if i == 0 else ref.N - 1)
        t = rng.randrange(1, ref.N) if i > 3 else (ref.N - 2 if i == 2 else 1)
        x = ref.add(ref.mul(s, ref.G), ref.mul(t, q))[0]
        for chunks in (1, 4):
            for c, want in ((x % ref.N, 1), ((x + 1) % ref.N, 0)):
                assert _native_sm._sm2_check_raw(pk, s.to_bytes(32, "big"), t.to_bytes(32, "big"),
                                                 c.to_bytes(32, "big"), chunks) == want
