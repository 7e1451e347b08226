"""Fixtures for the Ed25519 tests: every ISA path this CPU has, and honest test signatures."""
from __future__ import annotations

import os

import pytest

from engine import _native_ed25519, _native_hash
from engine.crypto import SigningKey

ISA_PATHS = list(_native_hash.native_info()["isa_supported"])


@pytest.fixture(params=ISA_PATHS)
def isa(request):
    """Runs the test once per ISA path the CPU supports, forcing the Ed25519 kernel to it."""
    _native_ed25519._force_isa(request.param)
    try:
        yield request.param
    finally:
        _native_ed25519._force_isa(None)


def honest(count: int, seed: int = 0, msg_bytes: int = 100):
    """(public_keys, messages, signatures) of count honest signatures under distinct keys."""
    keys = [SigningKey.from_seed(bytes([seed % 256, i % 256, i // 256]) + bytes(29))
            for i in range(count)]
    msgs = [os.urandom(msg_bytes) for _ in range(count)]
    return [k.public_key for k in keys], msgs, [k.sign(m) for k, m in zip(keys, msgs)]
