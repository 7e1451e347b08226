"""Slow, readable pure-Python Ed25519 verification under ZIP-215: the test oracle.

The rules (docs/formats.md, tests/vectors/ed25519/README.md):

1. S = int_le(signature[32:64]) must be < L.
2. A = public key and R = signature[0:32] must decode to curve points. Decoding is lenient:
   the y coordinate is taken mod p (so y >= p is accepted) and a sign bit of 1 with x = 0 is
   accepted (x stays 0). No small-order or canonicality checks.
3. k = SHA-512(R bytes || A bytes || message) mod L, over the bytes exactly as received.
4. Accept iff [8]([S]B - R - [k]A) is the identity (the cofactored equation).

Points are kept in extended coordinates (X:Y:Z:T) with x = X/Z, y = Y/Z, xy = T/Z, using the
complete addition law of the twisted Edwards curve -x^2 + y^2 = 1 + d x^2 y^2, so every input,
including small-order points, is handled by the same formulas. Nothing here is constant time or
fast; it exists to be obviously right.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]
IDENTITY: Point = (0, 1, 1, 0)


def _recover_x(y: int, sign: int) -> int | None:
    """x with x^2 = (y^2 - 1) / (d y^2 + 1) and the requested parity, or None if none exists."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    if x2 == 0:
        return 0  # ZIP-215: a set sign bit with x = 0 is accepted, x stays 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def decode_point(encoded: bytes) -> Point | None:
    """ZIP-215 decoding of a 32-byte point: y may be >= p; None when y is not on the curve."""
    if len(encoded) != 32:
        return None
    value = int.from_bytes(encoded, "little")
    sign = value >> 255
    y = (value & ((1 << 255) - 1)) % P
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def encode_point(point: Point) -> bytes:
    """Canonical encoding (used to build test inputs, never by verification)."""
    x, y, z, _ = point
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def point_add(p: Point, q: Point) -> Point:
    """Complete extended-coordinates addition (Hisil-Wong-Carter-Dawson, a = -1)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_neg(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def scalar_mult(scalar: int, point: Point) -> Point:
    """[scalar]point by double-and-add from the top bit."""
    result = IDENTITY
    for bit in reversed(range(scalar.bit_length())):
        result = point_add(result, result)
        if (scalar >> bit) & 1:
            result = point_add(result, point)
    return result


def is_identity(p: Point) -> bool:
    x, y, z, _ = p
    return x % P == 0 and (y - z) % P == 0


_BY = 4 * pow(5, P - 2, P) % P
BASE: Point = decode_point(_BY.to_bytes(32, "little"))  # type: ignore[assignment]


def challenge(r_bytes: bytes, a_bytes: bytes, message: bytes) -> int:
    """k = SHA-512(R || A || M) mod L over the bytes as received."""
    return int.from_bytes(hashlib.sha512(r_bytes + a_bytes + message).digest(), "little") % L


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """ZIP-215 verdict for one signature; any wrong length is simply invalid here."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    a = decode_point(public_key)
    r = decode_point(signature[:32])
    if a is None or r is None:
        return False
    k = challenge(signature[:32], public_key, message)
    defect = point_add(scalar_mult(s, BASE),
                       point_neg(point_add(r, scalar_mult(k, a))))
    return is_identity(scalar_mult(8, defect))


def verify_batch(public_keys: Sequence[bytes], messages: Sequence[bytes],
                 signatures: Sequence[bytes]) -> bool:
    """One randomized cofactored batch equation over all entries (True iff the batch passes).

    Entries failing the range or decoding rules make the batch fail, as they would singly.
    """
    total_b = 0
    acc = IDENTITY
    for pk, msg, sig in zip(public_keys, messages, signatures):
        if len(pk) != 32 or len(sig) != 64:
            return False
        s = int.from_bytes(sig[32:], "little")
        a, r = decode_point(pk), decode_point(sig[:32])
        if s >= L or a is None or r is None:
            return False
        z = int.from_bytes(os.urandom(16), "little")
        k = challenge(sig[:32], pk, msg)
        total_b = (total_b + z * s) % L
        acc = point_add(acc, scalar_mult(z, r))
        acc = point_add(acc, scalar_mult(z * k % L, a))
    defect = point_add(scalar_mult(total_b, BASE), point_neg(acc))
    return is_identity(scalar_mult(8, defect))
