"""The vector field arithmetic of the SIMD paths against the radix-2^51 one on edge-case limbs.

AVX-512 IFMA: the vectors rarely drive limbs to 2^52 - 1 or make a sum ripple through every
limb, which is where the IFMA normalisation takes its rare second carry pass; the native
self-test does, and fails by the tens of thousands when that pass is removed.
AVX2 (radix 2^25.5, four lanes): all-ones and p - 1 limbs, sums and differences as
multiplication inputs (the largest the kernel feeds it), squares of differences, and the
parallel point-addition formulas on arbitrary coordinates.
"""
from __future__ import annotations

import pytest

from engine import _native_ed25519


@pytest.mark.parametrize("hook, needs", [("_selftest_ifma", "AVX-512 IFMA"),
                                         ("_selftest_avx2", "AVX2")])
@pytest.mark.parametrize("seed", [1, 12345, 2**63 + 7])
def test_vector_field_matches_radix_51_on_edge_limbs(hook, needs, seed):
    bad = getattr(_native_ed25519, hook)(seed, 5000)
    if bad == -1:
        pytest.skip(f"no {needs} on this CPU")
    assert bad == 0
