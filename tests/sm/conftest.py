"""Fixtures for the SM2 / SM3 tests: every ISA path this CPU has, and the vector files."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from engine import _native_sm, crypto
from tests.conftest import ISA_PATHS, forced_isa

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


@pytest.fixture(params=ISA_PATHS)
def sm_isa(request):
    """Runs the test once per ISA path the CPU supports, forcing the SM kernels onto it."""
    with forced_isa(_native_sm, request.param) as path:
        yield path


def sm3_vectors() -> list[dict]:
    return json.loads((VECTORS / "sm3" / "standard.json").read_text())["cases"]


def sm2_vectors() -> dict:
    return json.loads((VECTORS / "sm2" / "standard.json").read_text())


@contextlib.contextmanager
def sm2_key_cache(keys: int):
    """The decoded-key cache resized (emptied) to ``keys`` entries, the default size restored
    afterwards (0 disables it)."""
    crypto.sm2_configure_key_cache(keys)
    try:
        yield keys
    finally:
        crypto.sm2_configure_key_cache(crypto.SM2_KEY_CACHE_KEYS_DEFAULT)
