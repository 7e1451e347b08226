"""Ed25519 keys, signing and ZIP-215 verification.

Verification runs in the native kernel (csrc/ed25519, ``engine._native_ed25519``) under the
ZIP-215 rules of docs/formats.md: S < L; A and R must decode but non-canonical encodings are
accepted; k = SHA-512(R || A || M) over the bytes as received; the cofactored equation
[8][S]B = [8]R + [8][k]A. ``verify_batch`` checks one random linear combination per batch (fresh
128-bit coefficients from the OS CSPRNG) and, when it fails, bisects down to single checks, so
every verdict equals what ``verify`` says for that signature: nodes batching differently never
disagree. An invalid point, S >= L or a failing equation is False, never an exception.

Signing and key generation use `cryptography` (Ed25519 signatures are deterministic, so any
correct signer gives identical bytes). Decompressed public keys are kept in a bounded native
cache (``configure_key_cache``), since validators and busy senders sign again and again.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from engine import _native_ed25519
from engine._args import bytes_arg, threads_arg

BytesLike = bytes | bytearray | memoryview

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
#: Default capacity of the decompressed public-key cache (keys).
KEY_CACHE_KEYS_DEFAULT = 12288

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "SigningKey",
    "configure_key_cache",
    "key_cache_info",
    "native_path",
    "verify",
    "verify_batch",
]


class SigningKey:
    """An Ed25519 signing key made from a 32-byte seed."""

    __slots__ = ("_key", "_public", "_seed")

    def __init__(self, seed: BytesLike):
        self._seed = bytes_arg(seed, "seed", SEED_BYTES)
        self._key = Ed25519PrivateKey.from_private_bytes(self._seed)
        self._public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key from the OS CSPRNG."""
        return cls(os.urandom(SEED_BYTES))

    @classmethod
    def from_seed(cls, seed: BytesLike) -> SigningKey:
        return cls(seed)

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, message: BytesLike) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(bytes_arg(message, "message"))

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self._public.hex()})"


def verify(public_key: BytesLike, message: BytesLike, signature: BytesLike) -> bool:
    """ZIP-215 verdict for one signature.

    Raises TypeError for non-bytes arguments and ValueError when ``public_key`` is not 32 bytes
    or ``signature`` not 64; every other defect is simply False.
    """
    for value, name in ((public_key, "public_key"), (message, "message"),
                        (signature, "signature")):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{name} must be bytes, bytearray or memoryview, "
                            f"not {type(value).__name__}")
    return _native_ed25519.verify(public_key, message, signature)


def verify_batch(public_keys: Sequence[BytesLike], messages: Sequence[BytesLike],
                 signatures: Sequence[BytesLike], *, threads: int | None = None) -> list[bool]:
    """Verdicts for many signatures at once, each identical to ``verify`` on that entry.

    ``threads=None`` uses every core (the GIL is released). Mismatched sequence lengths and an
    item of the wrong length raise ValueError naming the argument and index; a non-bytes item
    raises TypeError.
    """
    return _native_ed25519.verify_batch(public_keys, messages, signatures, threads_arg(threads))


def configure_key_cache(capacity: int) -> None:
    """Resize (and empty) the decompressed public-key cache; 0 disables it."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if capacity < 0:
        raise ValueError(f"capacity must be at least 0, not {capacity}")
    _native_ed25519.cache_configure(capacity)


def key_cache_info() -> dict:
    """``{"capacity", "entries", "hits", "misses"}`` of the public-key cache."""
    return dict(_native_ed25519.cache_info())


def native_path() -> str:
    """The ISA path the verifier runs now (``portable``, ``avx2``, ...)."""
    return str(_native_ed25519.kernel_info()["ed25519"])


# ---- SM2 signatures (GB/T 32918.2-2016) ---------------------------------------------------------
#
# The national-cryptography suite's signature, verified natively by csrc/sm2 (Montgomery field in
# 4 x 64-bit limbs, a fixed-base comb for [s]G, width-5 NAF for [t]P, a decoded-key cache, and
# batches split across the native pool with the GIL released). Encodings follow GM/T 0009: a
# public key is x || y (64 bytes; 65 with a leading 0x04 is accepted), a signature r || s
# (64 bytes, big-endian); DER signatures convert with sm2_signature_from_der. Every verdict is
# the standard's: r, s in [1, n-1]; e = SM3(Z_A || M) with Z_A over the user ID; t = (r + s) mod
# n != 0; R = [s]G + [t]P not at infinity; (e + x(R)) mod n == r. A key off the curve, a bad
# signature or a 65-byte key without 0x04 is False, never an exception.
#
# Signing: `cryptography` has no SM2, so Sm2SigningKey signs with the native code: a fixed-base
# [k]G with masked table reads and no branches on k, arithmetic mod n in constant-time
# Montgomery code, and k derived deterministically as RFC 6979 does (HMAC-DRBG over HMAC-SM3
# keyed with the private key and the digest), so signing needs no randomness at all. The
# private scalar itself lives in a Python bytes object (not locked or wiped): keys that must
# resist a local attacker belong in an HSM.

from engine import _native_sm

SM2_DEFAULT_UID = b"1234567812345678"
SM2_PUBLIC_KEY_BYTES = 64
SM2_SIGNATURE_BYTES = 64
SM2_PRIVATE_KEY_BYTES = 32
#: The order n of the SM2 base point.
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
#: Default capacity of the SM2 decoded-key cache (keys, about 2.3 KiB each).
SM2_KEY_CACHE_KEYS_DEFAULT = 4096

__all__ += [
    "SM2_DEFAULT_UID",
    "SM2_PRIVATE_KEY_BYTES",
    "SM2_PUBLIC_KEY_BYTES",
    "SM2_SIGNATURE_BYTES",
    "Sm2SigningKey",
    "sm2_configure_key_cache",
    "sm2_key_cache_info",
    "sm2_native_path",
    "sm2_signature_from_der",
    "sm2_signature_to_der",
    "sm2_verify",
    "sm2_verify_batch",
]


def _bytes_like(value: object, name: str) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, bytearray or memoryview, not {type(value).__name__}")


def sm2_verify(public_key: BytesLike, message: BytesLike, signature: BytesLike,
               uid: BytesLike = SM2_DEFAULT_UID) -> bool:
    """The SM2 verdict for one signature.

    Raises TypeError for non-bytes arguments and ValueError when ``public_key`` is not 64 bytes
    (or 65, the 0x04 form), ``signature`` not 64 or
    ``uid`` longer than 8191 bytes; every other defect is simply False.
    """
    for value, name in ((public_key, "public_key"), (message, "message"),
                        (signature, "signature"), (uid, "uid")):
        _bytes_like(value, name)
    return _native_sm.sm2_verify(public_key, message, signature, uid)


def sm2_verify_batch(public_keys: Sequence[BytesLike], messages: Sequence[BytesLike],
                     signatures: Sequence[BytesLike], uid: BytesLike = SM2_DEFAULT_UID,
                     threads: int | None = None) -> list[bool]:
    """Verdicts for many signatures under one user ID, each identical to ``sm2_verify``.

    ``threads=None`` uses every core (the GIL is released). Mismatched sequence lengths and an
    item of the wrong length raise ValueError naming the argument and index; a non-bytes item
    raises TypeError.
    """
    _bytes_like(uid, "uid")
    return _native_sm.sm2_verify_batch(public_keys, messages, signatures, uid,
                                       threads_arg(threads))


def _der_integer(der: bytes, pos: int) -> tuple[int, int]:
    if pos + 2 > len(der) or der[pos] != 0x02:
        raise ValueError("der must hold two DER INTEGERs")
    length = der[pos + 1]
    if length == 0 or length > 33 or pos + 2 + length > len(der):
        raise ValueError("der holds an INTEGER of bad length")
    body = der[pos + 2:pos + 2 + length]
    if body[0] & 0x80:
        raise ValueError("der holds a negative INTEGER")
    if length > 1 and body[0] == 0 and not body[1] & 0x80:
        raise ValueError("der holds a non-minimal INTEGER")
    value = int.from_bytes(body, "big")
    if value >> 256:
        raise ValueError("der holds an INTEGER of more than 256 bits")
    return value, pos + 2 + length


def sm2_signature_from_der(der: BytesLike) -> bytes:
    """The 64-byte r || s of a DER ``SEQUENCE { INTEGER r, INTEGER s }`` (GM/T 0009, what
    OpenSSL and most tools emit). Strict DER: ValueError on any other encoding. Whether r and s
    are in range is left to verification."""
    b = bytes_arg(der, "der")
    if len(b) < 2 or b[0] != 0x30 or b[1] != len(b) - 2 or b[1] >= 0x80:
        raise ValueError("der must be a DER SEQUENCE of two INTEGERs")
    r, pos = _der_integer(b, 2)
    s, pos = _der_integer(b, pos)
    if pos != len(b):
        raise ValueError("der has bytes after the second INTEGER")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sm2_signature_to_der(signature: BytesLike) -> bytes:
    """DER ``SEQUENCE { INTEGER r, INTEGER s }`` of a 64-byte r || s signature."""
    sig = bytes_arg(signature, "signature", SM2_SIGNATURE_BYTES)

    def integer(v: bytes) -> bytes:
        v = v.lstrip(b"\x00") or b"\x00"
        if v[0] & 0x80:
            v = b"\x00" + v
        return b"\x02" + bytes([len(v)]) + v

    body = integer(sig[:32]) + integer(sig[32:])
    return b"\x30" + bytes([len(body)]) + body


def _hmac_sm3(key: bytes, data: bytes) -> bytes:
    block = key.ljust(64, b"\x00")  # keys here are 32 bytes, below SM3's 64-byte block
    inner = _native_sm.sm3(bytes(x ^ 0x36 for x in block) + data)
    return _native_sm.sm3(bytes(x ^ 0x5C for x in block) + inner)


def _rfc6979_nonces(private_key: bytes, digest: bytes):
    """Candidate nonces k in [1, n-1] (RFC 6979 section 3.2 with HMAC-SM3; qlen = hlen = 256)."""
    h1 = (int.from_bytes(digest, "big") % SM2_N).to_bytes(32, "big")
    v, k = b"\x01" * 32, b"\x00" * 32
    k = _hmac_sm3(k, v + b"\x00" + private_key + h1)
    v = _hmac_sm3(k, v)
    k = _hmac_sm3(k, v + b"\x01" + private_key + h1)
    v = _hmac_sm3(k, v)
    while True:
        v = _hmac_sm3(k, v)
        candidate = int.from_bytes(v, "big")
        if 1 <= candidate < SM2_N:
            yield v
        k = _hmac_sm3(k, v + b"\x00")
        v = _hmac_sm3(k, v)


class Sm2SigningKey:
    """An SM2 private key: a 32-byte big-endian scalar d in [1, n-2]."""

    __slots__ = ("_d", "_public")

    def __init__(self, private_key: BytesLike):
        d = bytes_arg(private_key, "private_key", SM2_PRIVATE_KEY_BYTES)
        if not 1 <= int.from_bytes(d, "big") <= SM2_N - 2:
            raise ValueError("private_key must be in [1, n-2]")
        public = _native_sm.sm2_public_key(d)
        if public is None:  # an exceptional addition, probability about 2^-220
            raise ValueError("private_key could not be used; generate another")
        self._d = d
        self._public = public

    @classmethod
    def generate(cls) -> Sm2SigningKey:
        """A new key from the OS CSPRNG (rejection sampling: uniform in [1, n-2])."""
        while True:
            d = os.urandom(SM2_PRIVATE_KEY_BYTES)
            if 1 <= int.from_bytes(d, "big") <= SM2_N - 2:
                return cls(d)

    @classmethod
    def from_private_bytes(cls, private_key: BytesLike) -> Sm2SigningKey:
        return cls(private_key)

    @property
    def private_bytes(self) -> bytes:
        return self._d

    @property
    def public_key(self) -> bytes:
        """x || y, 64 bytes (prefix 0x04 for the 65-byte uncompressed form)."""
        return self._public

    def sign(self, message: BytesLike, uid: BytesLike = SM2_DEFAULT_UID) -> bytes:
        """The 64-byte r || s signature of ``message`` for user ID ``uid`` (deterministic)."""
        msg = bytes_arg(message, "message")
        z = _native_sm.sm2_z(self._public, bytes_arg(uid, "uid"))
        digest = _native_sm.sm2_digest(z, msg)
        for nonce in _rfc6979_nonces(self._d, digest):
            signature = _native_sm.sm2_sign_digest(self._d, digest, nonce)
            if signature is not None:
                return signature
        raise AssertionError("unreachable")  # the nonce generator never ends

    def __repr__(self) -> str:
        return f"Sm2SigningKey(public_key={self._public.hex()})"


def sm2_configure_key_cache(capacity: int) -> None:
    """Resize (and empty) the SM2 decoded-key cache; 0 disables it."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if capacity < 0:
        raise ValueError(f"capacity must be at least 0, not {capacity}")
    _native_sm.sm2_cache_configure(capacity)


def sm2_key_cache_info() -> dict:
    """``{"capacity", "entries", "hits", "misses"}`` of the SM2 key cache."""
    return dict(_native_sm.sm2_cache_info())


def sm2_native_path() -> str:
    """The ISA path the SM2 verifier runs now: ``avx512`` (eight signatures side by side with
    AVX-512 IFMA), ``avx2`` (the BMI2/ADX scalar build) or ``portable``."""
    return str(_native_sm.kernel_info()["sm2"])
