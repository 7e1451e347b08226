"""Ed25519 keys, signing and verification.

Signing uses `cryptography` (Ed25519 signatures are deterministic, so any correct signer gives
identical bytes). Verification follows ZIP-215 (DESIGN.md section 2) once the native kernel of
issue 3 lands; until then it is OpenSSL through `cryptography`, behind the same API.
"""
from __future__ import annotations

import os
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32

__all__ = ["SigningKey", "verify", "verify_batch"]


def _bytes_arg(value, name: str, length: int | None = None) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, bytearray or memoryview, not {type(value).__name__}")
    b = bytes(value)
    if length is not None and len(b) != length:
        raise ValueError(f"{name} must be {length} bytes long, not {len(b)}")
    return b


class SigningKey:
    """An Ed25519 signing key made from a 32-byte seed."""

    __slots__ = ("_seed", "_key", "_public")

    def __init__(self, seed: bytes):
        self._seed = _bytes_arg(seed, "seed", SEED_BYTES)
        self._key = Ed25519PrivateKey.from_private_bytes(self._seed)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(os.urandom(SEED_BYTES))

    @classmethod
    def from_seed(cls, seed: bytes) -> "SigningKey":
        return cls(seed)

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(_bytes_arg(message, "message"))

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self._public.hex()})"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    pk = _bytes_arg(public_key, "public_key", PUBLIC_KEY_BYTES)
    msg = _bytes_arg(message, "message")
    sig = _bytes_arg(signature, "signature", SIGNATURE_BYTES)
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_batch(public_keys: Sequence[bytes], messages: Sequence[bytes],
                 signatures: Sequence[bytes], *, threads: int | None = None) -> list[bool]:
    if not (len(public_keys) == len(messages) == len(signatures)):
        raise ValueError("public_keys, messages and signatures must have the same length")
    for i in range(len(public_keys)):
        _bytes_arg(public_keys[i], f"public_keys[{i}]", PUBLIC_KEY_BYTES)
        _bytes_arg(messages[i], f"messages[{i}]")
        _bytes_arg(signatures[i], f"signatures[{i}]", SIGNATURE_BYTES)
    return [verify(p, m, s) for p, m, s in zip(public_keys, messages, signatures)]
