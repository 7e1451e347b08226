"""Reference SM2 signatures (GB/T 32918.2-2016) in plain Python: the oracle for the native code.

Affine points as (x, y) tuples and None for the point at infinity, the double-and-add of the
textbook, and the steps of the standard's signing (A1-A7) and verification (B1-B7) in order.
Slow on purpose: every operation is one readable line.
"""
from __future__ import annotations

from engine._reference.sm3 import sm3

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = (0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
     0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0)
DEFAULT_UID = b"1234567812345678"

Point = tuple[int, int] | None


def on_curve(q: Point) -> bool:
    if q is None:
        return False
    x, y = q
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def mul(k: int, q: Point) -> Point:
    result: Point = None
    for bit in bin(k)[2:] if k > 0 else "":
        result = add(result, result)
        if bit == "1":
            result = add(result, q)
    return result


def i2b(v: int) -> bytes:
    return v.to_bytes(32, "big")


def public_key(d: int) -> bytes:
    q = mul(d, G)
    assert q is not None
    return i2b(q[0]) + i2b(q[1])


def z(pk: bytes, uid: bytes = DEFAULT_UID) -> bytes:
    entl = (len(uid) * 8).to_bytes(2, "big")
    return sm3(entl + uid + i2b(A) + i2b(B) + i2b(G[0]) + i2b(G[1]) + pk)


def sign(d: int, message: bytes, k: int, uid: bytes = DEFAULT_UID) -> bytes | None:
    """A1-A7 with a given k; None when this k is unusable (r = 0, r + k = n or s = 0)."""
    e = int.from_bytes(sm3(z(public_key(d), uid) + message), "big")
    kg = mul(k, G)
    assert kg is not None
    r = (e + kg[0]) % N
    if r == 0 or r + k == N:
        return None
    s = pow(1 + d, -1, N) * (k - r * d) % N
    return None if s == 0 else i2b(r) + i2b(s)


def verify(pk: bytes, message: bytes, signature: bytes, uid: bytes = DEFAULT_UID) -> bool:
    """B1-B7. pk is x || y (64 bytes), signature r || s (64 bytes)."""
    q = (int.from_bytes(pk[:32], "big"), int.from_bytes(pk[32:], "big"))
    if len(pk) != 64 or len(signature) != 64 or not on_curve(q):
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (1 <= r < N and 1 <= s < N):
        return False
    e = int.from_bytes(sm3(z(pk, uid) + message), "big")
    t = (r + s) % N
    if t == 0:
        return False
    point = add(mul(s, G), mul(t, q))
    if point is None:
        return False
    return (e + point[0]) % N == r
