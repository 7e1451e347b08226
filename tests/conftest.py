"""Shared fixtures: every native kernel test runs once per ISA path this CPU supports."""
from __future__ import annotations

import contextlib

import pytest

from engine import _native_hash

ISA_PATHS = list(_native_hash.native_info()["isa_supported"])


@contextlib.contextmanager
def forced_isa(module, isa: str):
    """Force a native module's kernels onto one path (its ``_force_isa`` test hook)."""
    module._force_isa(isa)
    try:
        yield isa
    finally:
        module._force_isa(None)


@pytest.fixture(params=ISA_PATHS)
def hash_isa(request):
    """Force the BLAKE3 kernels onto one path for the duration of a test."""
    with forced_isa(_native_hash, request.param) as isa:
        yield isa
