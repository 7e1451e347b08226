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
