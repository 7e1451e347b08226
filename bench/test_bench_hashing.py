"""Hashing benchmarks: BLAKE3 many-message kernel and Merkle roots against same-run baselines.

`make bench` runs these with timing on; each prints one line per comparison: what ran, the native
path, baseline and candidate times, the ratio, the target and a checksum of the outputs (so the
work cannot be skipped). Baselines: a Python loop over the `blake3` package, the `blake3`
package hashing one 64 MiB buffer, and the pure-Python reference Merkle tree; for the avx2 path
also the BLAKE3 team's C library with AVX-512 compiled out hashing that buffer (its AVX2 kernel,
which the package runs only on an AVX2-only machine; engine/benchmarks/blake3_c_avx2.py builds
it). The smoke versions (marked bench_smoke) run the same code on small inputs inside `make
test` and check the outputs agree.

Both sides of a ratio start from the same input. From a list of messages (what the node holds:
the mempool hashes the list form): the list forms, and the packed forms *with the packing*
(``b"".join`` + offsets) inside their time. From data that arrives packed (one buffer and its
offsets, as a stored block record holds its transactions): the packed forms against a loop over
slices of that buffer. Each line says which (``[from list]``, ``[from list, packing timed]``,
``[from buffer]``).
"""
from __future__ import annotations

import itertools
import os
import time

import blake3 as blake3_pkg
import numpy as np
import pytest

import engine
from engine import _native_hash, hashing
from engine._reference import merkle as ref

MESSAGES_COUNT = 100_000
MESSAGE_BYTES = 250
BULK_BYTES = 64 << 20
#: Issue 18: blake3_many_packed on avx2 >= 90 % of the BLAKE3 team's AVX2 bulk rate.
TARGET_C_AVX2_FRACTION = 0.9


def interleaved_best_ms(fns, repeat: int = 5) -> list[float]:
    """Best time of each function, the contenders taking turns so that all of them see the same
    load on a shared machine."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return [b * 1e3 for b in best]


def interleaved_best_wall_cpu_ms(fns, repeat: int = 5) -> tuple[list[float], list[float]]:
    """As interleaved_best_ms, keeping each function's best thread CPU time too
    (``time.thread_time``: the time other tenants hold the core is left out of it)."""
    wall, cpu = [float("inf")] * len(fns), [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            cpu[i] = min(cpu[i], time.thread_time() - start_cpu)
            wall[i] = min(wall[i], time.perf_counter() - start)
    return [w * 1e3 for w in wall], [c * 1e3 for c in cpu]


def checksum(parts) -> str:
    return hashing.blake3(b"".join(parts) if isinstance(parts, list) else parts).hex()[:16]


def report(what: str, baseline_name: str, baseline_ms: float, candidate_ms: float,
           target: float | None, check: str) -> float:
    ratio = baseline_ms / candidate_ms
    verdict = "" if target is None else (f"target >= {target:g}x " +
                                         ("met" if ratio >= target else "MISSED"))
    path = engine.native_info()["kernels"]["blake3"]
    print(f"\n{what:<44} path={path:<8} {baseline_name}={baseline_ms:9.2f} ms  "
          f"engine={candidate_ms:8.2f} ms  ratio={ratio:6.2f}x  {verdict}  checksum={check}")
    return ratio


def make_messages(count: int, size: int) -> list[bytes]:
    seed = os.urandom(32)
    return [blake3_pkg.blake3(i.to_bytes(8, "little"), key=seed).digest(length=size)
            for i in range(count)]


def packed(messages: list[bytes]):
    """The packing a caller holding a list does before a packed call: one buffer, offsets."""
    offsets = np.zeros(len(messages) + 1, dtype=np.uint64)
    np.cumsum(np.fromiter(map(len, messages), np.uint64, len(messages)), out=offsets[1:])
    return b"".join(messages), offsets


def python_loop(messages):
    return [blake3_pkg.blake3(m).digest() for m in messages]


def python_loop_buffer(data, bounds):
    """The baseline for data that arrives packed: hash each slice of the one buffer."""
    view = memoryview(data)
    return [blake3_pkg.blake3(view[a:b]).digest() for a, b in bounds]


def bounds_of(offsets) -> list[tuple[int, int]]:
    """The (start, end) pairs of the packed messages, as Python ints, made before the clock (the
    kernel gets its uint64 offsets before the clock too)."""
    o = offsets.tolist()
    return list(itertools.pairwise(o))


def reference_root(messages):
    node_key = hashing.NODE_KEY
    hashes = python_loop(messages)
    return ref.root_from_hashes(
        hashes, lambda l, r: blake3_pkg.blake3(l + r, key=node_key).digest(),
        blake3_pkg.blake3(b"", key=node_key).digest())


# ---- the comparisons (shared by the full benchmarks and the smoke runs) ------------------------

def compare_many(messages, repeat):
    """Ratios (list form, packed form with its packing, packed form on data that arrives
    packed), each against a Python loop starting from the same input."""
    want = python_loop(messages)
    got = hashing.blake3_many(messages, threads=1)
    data, offsets = packed(messages)
    bounds = bounds_of(offsets)
    got_packing = hashing.blake3_many_packed(*packed(messages), threads=1)
    got_packed = hashing.blake3_many_packed(data, offsets, threads=1)
    assert got == want and got_packing == got_packed == b"".join(want)
    assert python_loop_buffer(data, bounds) == want
    base, cand, cand_packing, base_buffer, cand_packed = interleaved_best_ms([
        lambda: python_loop(messages),
        lambda: hashing.blake3_many(messages, threads=1),
        lambda: hashing.blake3_many_packed(*packed(messages), threads=1),
        lambda: python_loop_buffer(data, bounds),
        lambda: hashing.blake3_many_packed(data, offsets, threads=1)], repeat)
    n, size = len(messages), len(messages[0])
    ratio = report(f"blake3_many {n} x {size} B, 1 thr [from list]", "py-loop", base,
                   cand, 10, checksum(got))
    ratio_packing = report(f"blake3_many_packed {n} x {size} B [from list, packing timed]",
                           "py-loop", base, cand_packing, 10, checksum(got_packing))
    ratio_packed = report(f"blake3_many_packed {n} x {size} B [from buffer]", "py-slices",
                          base_buffer, cand_packed, 10, checksum(got_packed))
    return ratio, ratio_packing, ratio_packed


def kernel_bound(messages, repeat):
    """The kernel alone on the same list (read before the clock starts, hashed on one thread into
    one buffer), interleaved with the Python loop: loop time / kernel time bounds the ratio any
    list-in, list-of-bytes-out form can reach, before it reads a single object or makes one."""
    want = b"".join(python_loop(messages))
    loop_ms, kernel_ms = float("inf"), float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        python_loop(messages)
        loop_ms = min(loop_ms, (time.perf_counter() - start) * 1e3)
        got, ns = _native_hash._kernel_only(messages)
        assert got == want
        kernel_ms = min(kernel_ms, ns / 1e6)
    report(f"kernel only {len(messages)} x {len(messages[0])} B (bound)", "py-loop", loop_ms,
           kernel_ms, None, checksum(got))
    return loop_ms / kernel_ms


def compare_bulk_fraction(messages, bulk_bytes, repeat):
    """Throughput as a fraction of the `blake3` package hashing one buffer; returns the
    fractions (list form, packed with packing timed, packed from a buffer)."""
    bulk = os.urandom(bulk_bytes)
    data, offsets = packed(messages)
    bulk_ms, list_ms, packing_ms, packed_ms = interleaved_best_ms([
        lambda: blake3_pkg.blake3(bulk, max_threads=1).digest(),
        lambda: hashing.blake3_many(messages, threads=1),
        lambda: hashing.blake3_many_packed(*packed(messages), threads=1),
        lambda: hashing.blake3_many_packed(data, offsets, threads=1)], repeat)
    bulk_gbs = bulk_bytes / bulk_ms / 1e6
    total = sum(len(m) for m in messages)
    fractions = []
    for label, ms in (("list [from list]", list_ms),
                      ("packed [from list, packing timed]", packing_ms),
                      ("packed [from buffer]", packed_ms)):
        gbs = total / ms / 1e6
        fraction = gbs / bulk_gbs
        fractions.append(fraction)
        print(f"\nblake3_many {label} {gbs:.2f} GB/s vs blake3 package one {bulk_bytes >> 20} "
              f"MiB buffer {bulk_gbs:.2f} GB/s: {fraction:.0%} (target >= 60% "
              f"{'met' if fraction >= 0.6 else 'MISSED'})")
    return fractions


def compare_c_avx2_bulk(messages, bulk_bytes, repeat, lib) -> tuple[float, float]:
    """Issue 18's AVX2 throughput target: `blake3_many_packed` [from buffer] on avx2 (forced in
    this process if the CPU selects a wider path) against the BLAKE3 team's C library with
    AVX-512 compiled out (``lib``, engine/benchmarks/blake3_c_avx2.py: its AVX2 assembly kernel,
    the one the `blake3` package runs on an AVX2-only machine) hashing one buffer, one thread
    each, interleaved; the package's own bulk rate (its widest kernel: AVX-512 on an AVX-512
    CPU) alongside for context. Returns the fractions of the C library's rate (wall time,
    thread CPU time). The caller puts the engine on avx2 (kernels.hashing_on_avx2)."""
    bulk = os.urandom(bulk_bytes)
    data, offsets = packed(messages)
    got = hashing.blake3_many_packed(data, offsets, threads=1)
    assert got == b"".join(python_loop(messages))
    assert lib.hash(bulk) == blake3_pkg.blake3(bulk).digest()
    path = engine.native_info()["kernels"]["blake3"]
    assert path == "avx2"
    wall, cpu = interleaved_best_wall_cpu_ms([
        lambda: hashing.blake3_many_packed(data, offsets, threads=1),
        lambda: lib.hash(bulk),
        lambda: blake3_pkg.blake3(bulk, max_threads=1).digest()], repeat)
    total = sum(len(m) for m in messages)
    fractions = []
    for clock, (ours_ms, c_ms, pkg_ms) in (("wall", wall), ("thread CPU", cpu)):
        ours_gbs, c_gbs = total / ours_ms / 1e6, bulk_bytes / c_ms / 1e6
        pkg_gbs = bulk_bytes / pkg_ms / 1e6
        fraction = ours_gbs / c_gbs
        fractions.append(fraction)
        verdict = "met" if fraction >= TARGET_C_AVX2_FRACTION else "MISSED"
        print(f"\nblake3_many_packed {len(messages)} x {len(messages[0])} B [from buffer] "
              f"path={path} {ours_gbs:.2f} GB/s vs {lib.label} one {bulk_bytes >> 20} MiB "
              f"buffer {c_gbs:.2f} GB/s: {fraction:.1%} ({clock} time, target >= "
              f"{TARGET_C_AVX2_FRACTION:.0%} {verdict}); "
              f"blake3 package, its own kernel, {pkg_gbs:.2f} GB/s: {ours_gbs / pkg_gbs:.0%}  "
              f"checksum={checksum(got)}")
    return fractions[0], fractions[1]


def c_avx2_library():
    """The C library, or a skip saying why it cannot be built here."""
    from engine.benchmarks import blake3_c_avx2

    lib = blake3_c_avx2.load()
    if lib is None:
        pytest.skip(blake3_c_avx2.why_unavailable())
    return lib


def packed_root(data, offsets):
    return hashing.merkle_root_from_hashes(hashing.blake3_many_packed(data, offsets, threads=1),
                                           threads=1)


def compare_merkle(messages, repeat):
    """Ratios (list, 1 thread; packed with packing timed; packed from a buffer)."""
    want = reference_root(messages)
    got = hashing.merkle_root(messages, threads=1)
    assert got == want and hashing.merkle_root(messages, threads=2) == want
    data, offsets = packed(messages)
    bounds = bounds_of(offsets)
    view = memoryview(data)
    assert packed_root(*packed(messages)) == packed_root(data, offsets) == want
    assert reference_root([view[a:b] for a, b in bounds]) == want
    base, one, two, packing_ms, base_buffer, packed_ms = interleaved_best_ms([
        lambda: reference_root(messages),
        lambda: hashing.merkle_root(messages, threads=1),
        lambda: hashing.merkle_root(messages, threads=2),
        lambda: packed_root(*packed(messages)),
        lambda: reference_root([view[a:b] for a, b in bounds]),
        lambda: packed_root(data, offsets)], repeat)
    n, size = len(messages), len(messages[0])
    r1 = report(f"merkle_root {n} x {size} B, 1 thr [from list]", "py-ref", base, one, 20,
                checksum(got))
    report(f"merkle_root {n} x {size} B, 2 thr [from list]", "py-ref", base, two, None,
           checksum(got))
    r_packing = report(f"merkle_root packed {n} x {size} B [from list, packing timed]", "py-ref",
                       base, packing_ms, 20, checksum(got))
    r_packed = report(f"merkle_root packed {n} x {size} B [from buffer]", "py-ref-slices",
                      base_buffer, packed_ms, 20, checksum(got))
    return r1, r_packing, r_packed


# ---- make bench ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def messages():
    return make_messages(MESSAGES_COUNT, MESSAGE_BYTES)


def test_blake3_many_vs_python_loop_and_bulk(benchmark, messages):
    compare_many(messages, repeat=7)
    kernel_bound(messages, repeat=7)
    compare_bulk_fraction(messages, BULK_BYTES, repeat=7)
    benchmark.group = "blake3_many 100k x 250 B"
    benchmark(hashing.blake3_many, messages, threads=1)


def test_merkle_root_vs_reference(benchmark, messages):
    compare_merkle(messages, repeat=7)
    benchmark.group = "merkle_root 100k x 250 B"
    benchmark(hashing.merkle_root, messages, threads=1)


@pytest.mark.parametrize("size", [64, 1024, 4096, 65536])
def test_blake3_many_sizes(benchmark, size):
    msgs = make_messages(max(64, 4_000_000 // size), size)
    assert hashing.blake3_many(msgs) == python_loop(msgs)
    base, cand = interleaved_best_ms([lambda: python_loop(msgs),
                                      lambda: hashing.blake3_many(msgs, threads=1)])
    report(f"blake3_many {len(msgs)} x {size} B, 1 thread", "py-loop", base, cand, None,
           checksum(hashing.blake3_many(msgs)))
    benchmark.group = "blake3_many by size"
    benchmark(hashing.blake3_many, msgs, threads=1)


def test_narrower_path_figures(messages):
    """On a CPU that selects a wider path, the same comparisons on avx2 (each line names its
    path), plus the engine's own one-buffer rate on that path: the blake3 package keeps its
    widest kernel, so its bulk rate here is not an avx2 machine's."""
    from engine.benchmarks.kernels import force_path, narrower_path

    narrower = narrower_path()
    if narrower is None:
        pytest.skip("this CPU runs no path wider than avx2")
    force_path(narrower)
    try:
        compare_many(messages, repeat=7)
        compare_bulk_fraction(messages, BULK_BYTES, repeat=7)
        compare_merkle(messages, repeat=7)
        bulk = os.urandom(BULK_BYTES)
        (own_ms,) = interleaved_best_ms([lambda: hashing.blake3_many([bulk], threads=1)], 5)
        print(f"\nblake3 one {BULK_BYTES >> 20} MiB buffer, engine path={narrower}: "
              f"{BULK_BYTES / own_ms / 1e6:.2f} GB/s")
    finally:
        force_path(None)


def test_avx2_packed_vs_c_avx2_bulk(benchmark, messages):
    """The issue 18 target on its own footing: the engine's avx2 path against the BLAKE3 team's
    AVX2 kernel (the C library with AVX-512 compiled out), both timed here. Asserted on thread
    CPU time, which other tenants of a shared VM disturb far less than wall time (both are
    printed)."""
    from engine.benchmarks.kernels import hashing_on_avx2

    if benchmark.disabled:
        pytest.skip("timing runs under `make bench`")
    lib = c_avx2_library()
    with hashing_on_avx2() as reason:
        if reason:
            pytest.skip(reason)
        _, cpu_fraction = compare_c_avx2_bulk(messages, BULK_BYTES, 11, lib)
        data, offsets = packed(messages)
        benchmark.group = "blake3_many_packed 100k x 250 B, avx2"
        benchmark(hashing.blake3_many_packed, data, offsets, threads=1)
    # The verdict is printed with the figures (as the SM2/SM3 targets are): a target missed on
    # a loaded machine must not stop the rest of `make bench`; the regression gate is
    # `make bench-check`.
    print(f"\nissue 18 AVX2 bulk target (thread CPU time): {cpu_fraction:.1%} "
          f"{'met' if cpu_fraction >= TARGET_C_AVX2_FRACTION else 'MISSED'}")


# ---- make test: smoke runs on small inputs -----------------------------------------------------

#: Floors for the smoke run (2,000 messages, best of 3) on the SIMD paths: about a third of
#: what this machine measures (list 4-8x, packing timed 3-6x, from buffer 4-10x, Merkle 15-60x,
#: bulk fractions 30-90 %), so load from other tenants does not trip them, while a kernel that
#: stopped doing its work natively (a Python fallback hashes at the baseline's speed: ratio ~1)
#: does. The portable path hashes one message at a time, about as fast as the `blake3`
#: package's loop (1.1x), so there only the Merkle floor can tell native from Python.
SMOKE_FLOORS = {"many": 1.5, "merkle": 4.0, "bulk_fraction": 0.1}
SMOKE_FLOORS_PORTABLE = {"many": 0.3, "merkle": 2.0, "bulk_fraction": 0.02}


@pytest.mark.bench_smoke
def test_smoke_hashing_benchmarks_run():
    portable = engine.native_info()["kernels"]["blake3"] == "portable"
    floors = SMOKE_FLOORS_PORTABLE if portable else SMOKE_FLOORS
    msgs = make_messages(2000, MESSAGE_BYTES)
    for ratio in compare_many(msgs, repeat=3):
        assert ratio >= floors["many"]
    assert kernel_bound(msgs, repeat=3) >= floors["many"]
    for fraction in compare_bulk_fraction(msgs, 1 << 20, repeat=3):
        assert fraction >= floors["bulk_fraction"]
    for ratio in compare_merkle(msgs, repeat=3):
        assert ratio >= floors["merkle"]


@pytest.mark.bench_smoke
def test_smoke_avx2_packed_vs_c_avx2_bulk():
    """The issue 18 comparison on small inputs, with the lenient bulk floor of the SIMD paths."""
    from engine.benchmarks.kernels import hashing_on_avx2

    lib = c_avx2_library()
    with hashing_on_avx2() as reason:
        if reason:
            pytest.skip(reason)
        for fraction in compare_c_avx2_bulk(make_messages(2000, MESSAGE_BYTES), 1 << 20, 3, lib):
            assert fraction >= SMOKE_FLOORS["bulk_fraction"]
