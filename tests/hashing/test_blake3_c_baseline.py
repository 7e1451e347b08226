"""The BLAKE3 team's C library with AVX-512 compiled out (engine/benchmarks/blake3_c_avx2.py),
the AVX2 bulk baseline of bench/test_bench_hashing.py and `engine bench kernels`: its figures mean
something only if it hashes what the `blake3` package hashes and runs the AVX2 kernel. Skipped,
with the reason, where the library cannot be fetched or built (no apt-get, dpkg-deb or compiler,
no network, not x86-64 Linux); the refusal paths run everywhere.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import blake3 as blake3_pkg
import pytest

from engine.benchmarks import blake3_c_avx2

#: Block and chunk boundaries, trees of 2..17 chunks, and one over a MiB.
SIZES = (0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 8192, 8193, 16 * 1024 + 1,
         17 * 1024, 65536, (1 << 20) + 3)


@pytest.fixture(scope="module")
def lib():
    handle = blake3_c_avx2.load()
    if handle is None:
        pytest.skip(blake3_c_avx2.why_unavailable())
    return handle


def test_digests_equal_the_package_at_boundaries_and_random_sizes(lib):
    rng = random.Random(18)
    sizes = [*SIZES, *(rng.randrange(0, 200_000) for _ in range(40))]
    for size in sizes:
        data = rng.randbytes(size)
        assert lib.hash(data) == blake3_pkg.blake3(data).digest(), size


def test_bytes_like_inputs(lib):
    data = random.Random(7).randbytes(5000)
    want = blake3_pkg.blake3(data).digest()
    assert lib.hash(bytearray(data)) == lib.hash(memoryview(data)) == want


def test_it_is_the_avx2_kernel_built_outside_the_source_tree(lib):
    assert lib.simd_degree == blake3_c_avx2.AVX2_SIMD_DEGREE
    assert lib.label == f"BLAKE3 C {lib.version} asm, AVX-512 disabled"
    repo = Path(__file__).resolve().parents[2]
    built = Path(lib.path).resolve()
    for tracked in ("engine", "csrc", "tests", "bench", "tools", "docs"):
        assert not built.is_relative_to(repo / tracked)


def test_a_library_on_another_kernel_is_refused(lib):
    for degree in (4, 16):
        with pytest.raises(blake3_c_avx2.Unavailable, match=f"{degree}-lane"):
            blake3_c_avx2._check(dataclasses.replace(lib, simd_degree=degree))


def test_missing_tools_give_a_reason(monkeypatch, tmp_path):
    """No apt-cache on the PATH and an empty cache: None, and the reason names the tool."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("ENGINE_BLAKE3_C_CACHE", str(tmp_path / "cache"))
    blake3_c_avx2._load.cache_clear()
    try:
        assert blake3_c_avx2.load() is None
        assert "apt-cache not found" in blake3_c_avx2.why_unavailable()
    finally:
        blake3_c_avx2._load.cache_clear()
