"""Fixtures for the Ed25519 tests: every ISA path this CPU has, and honest test signatures."""
from __future__ import annotations

import os

import pytest

from engine import _native_ed25519
from engine.crypto import SigningKey
from tests.conftest import ISA_PATHS, forced_isa


@pytest.fixture(params=ISA_PATHS)
def isa(request):
    """Runs the test once per ISA path the CPU supports, forcing the Ed25519 kernel to it."""
    with forced_isa(_native_ed25519, request.param) as path:
        yield path


def honest(count: int, seed: int = 0, msg_bytes: int = 100):
    """(public_keys, messages, signatures) of count honest signatures under distinct keys."""
    keys = [SigningKey.from_seed(bytes([seed % 256, i % 256, i // 256]) + bytes(29))
            for i in range(count)]
    msgs = [os.urandom(msg_bytes) for _ in range(count)]
    return [k.public_key for k in keys], msgs, [k.sign(m) for k, m in zip(keys, msgs)]
