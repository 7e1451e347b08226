"""engine.native_info() names the SM3 and SM2 paths chosen, as it does for BLAKE3 and Ed25519."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import engine
from engine import crypto, hashing
from tests.conftest import ISA_PATHS

# SM2's AVX-512 path needs IFMA on top of what "avx512" means for the other kernels; without
# it an AVX-512 machine runs SM2's AVX2 (mulx/adx) build.
_HAS_IFMA = "avx512ifma" in engine.native_info().get("cpu_features", [])
_SM2_WIDEST = {"portable": "portable", "avx2": "avx2",
               "avx512": "avx512" if _HAS_IFMA else "avx2"}


def test_native_info_lists_sm3_and_sm2():
    kernels = engine.native_info()["kernels"]
    assert kernels["sm3"] == hashing._native_sm.kernel_info()["sm3"]
    assert kernels["sm2"] == crypto.sm2_native_path()
    assert kernels["sm3"] in engine.native_info()["isa_supported"]


@pytest.mark.parametrize("isa", ISA_PATHS)
def test_forced_isa_shows_in_the_sm_paths(isa):
    code = ("import json, engine, engine.hashing as h; "
            "print(json.dumps([engine.native_info()['kernels'], h.sm3(b'abc').hex()]))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ENGINE_FORCE_ISA=isa),
                         capture_output=True, text=True, check=True)
    kernels, digest = json.loads(out.stdout)
    assert kernels["sm3"] == isa
    assert kernels["sm2"] == _SM2_WIDEST[isa]
    # GB/T 32905 example 1: SM3("abc")
    assert digest == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
