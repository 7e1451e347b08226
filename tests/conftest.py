"""Shared fixtures: every native kernel test runs once per ISA path this CPU supports."""
from __future__ import annotations

import pytest

from engine import _native_hash

ISA_PATHS = list(_native_hash.native_info()["isa_supported"])


@pytest.fixture(params=ISA_PATHS)
def hash_isa(request):
    """Force the BLAKE3 kernels onto one path for the duration of a test."""
    _native_hash._force_isa(request.param)
    try:
        yield request.param
    finally:
        _native_hash._force_isa(None)
