"""Reference SM3 (GB/T 32905-2016) in plain Python: the oracle for the native kernels.

Written from the standard's text, step by step (padding, message expansion W / W', the 64
rounds with FF/GG, P0/P1), with no attempt at speed.
"""
from __future__ import annotations

IV = (0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600,
      0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E)
_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    n %= 32
    return ((x << n) | (x >> (32 - n))) & _MASK


def _p0(x: int) -> int:
    return x ^ _rotl(x, 9) ^ _rotl(x, 17)


def _p1(x: int) -> int:
    return x ^ _rotl(x, 15) ^ _rotl(x, 23)


def _ff(j: int, x: int, y: int, z: int) -> int:
    return x ^ y ^ z if j < 16 else (x & y) | (x & z) | (y & z)


def _gg(j: int, x: int, y: int, z: int) -> int:
    return x ^ y ^ z if j < 16 else (x & y) | (~x & _MASK & z)


def pad(message: bytes) -> bytes:
    """Append 1, zeros to 448 mod 512 bits, and the 64-bit big-endian bit length."""
    bits = len(message) * 8
    k = (448 - (bits + 1)) % 512
    return message + b"\x80" + bytes((k - 7) // 8) + bits.to_bytes(8, "big")


def compress(v: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    w = [int.from_bytes(block[4 * i:4 * i + 4], "big") for i in range(16)]
    for j in range(16, 68):
        w.append(_p1(w[j - 16] ^ w[j - 9] ^ _rotl(w[j - 3], 15)) ^ _rotl(w[j - 13], 7) ^ w[j - 6])
    w1 = [w[j] ^ w[j + 4] for j in range(64)]
    a, b, c, d, e, f, g, h = v
    for j in range(64):
        t = 0x79CC4519 if j < 16 else 0x7A879D8A
        ss1 = _rotl((_rotl(a, 12) + e + _rotl(t, j)) & _MASK, 7)
        ss2 = ss1 ^ _rotl(a, 12)
        tt1 = (_ff(j, a, b, c) + d + ss2 + w1[j]) & _MASK
        tt2 = (_gg(j, e, f, g) + h + ss1 + w[j]) & _MASK
        d, c, b, a = c, _rotl(b, 9), a, tt1
        h, g, f, e = g, _rotl(f, 19), e, _p0(tt2)
    return tuple(x ^ y for x, y in zip((a, b, c, d, e, f, g, h), v))


def sm3(message: bytes) -> bytes:
    padded = pad(bytes(message))
    v: tuple[int, ...] = IV
    for i in range(0, len(padded), 64):
        v = compress(v, padded[i:i + 64])
    return b"".join(x.to_bytes(4, "big") for x in v)


def merkle_leaf(x: bytes) -> bytes:
    """Leaf hash of the SM3 tree (docs/formats.md): SM3(0x00 || x)."""
    return sm3(b"\x00" + bytes(x))


def merkle_node(left: bytes, right: bytes) -> bytes:
    """Inner node of the SM3 tree: SM3(0x01 || left || right)."""
    return sm3(b"\x01" + bytes(left) + bytes(right))
