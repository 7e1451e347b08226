"""The AVX-512 IFMA field arithmetic against the radix-2^51 one on edge-case limbs.

The vectors rarely drive limbs to 2^52 - 1 or make a sum ripple through every limb, which is
where the IFMA normalisation takes its rare second carry pass; the native self-test does, and
fails by the tens of thousands when that pass is removed.
"""
from __future__ import annotations

import pytest

from engine import _native_ed25519


@pytest.mark.parametrize("seed", [1, 12345, 2**63 + 7])
def test_ifma_field_matches_radix_51_on_edge_limbs(seed):
    bad = _native_ed25519._selftest_ifma(seed, 5000)
    if bad == -1:
        pytest.skip("no AVX-512 IFMA on this CPU")
    assert bad == 0
