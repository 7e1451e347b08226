"""SM2 / SM3 benchmarks (issue 17): the native kernels against OpenSSL 3 in the same run.

`make bench` runs the full versions; each prints one line per comparison: what ran, the native
path, baseline and engine times per item, the ratio, the target and a checksum of the outputs
(both sides' outputs are compared before anything is timed). Single-thread SM2 lines also give
the ratio in thread CPU time, which other tenants of a shared machine disturb far less than wall
time, and the verifications per second per core next to GmSSL's published 17,000/s. The smoke
version (marked bench_smoke) runs the same code on small inputs inside `make test`.
Comparisons live in engine/benchmarks/sm.py, shared with `engine bench kernels`.
"""
from __future__ import annotations

import time

import pytest

from engine import crypto
from engine.benchmarks import sm

TARGET_SM2 = 10.0     # x OpenSSL per signature, one thread
TARGET_THREADS = 1.8  # threads=2 / threads=1 at >= 1024 signatures
TARGET_SM3_PACKED = 5.0
TARGET_SM3_BULK = 1.0

pytestmark = pytest.mark.skipif(sm.available() is not None, reason=str(sm.available()))


def show(result, target: float | None, *, per_core: bool = False) -> None:
    verdict = "" if target is None else (
        f"target >= {target:g}x " + ("met" if result.ratio >= target else "MISSED"))
    extra = ""
    if per_core:
        rate = 1e6 / result.engine_us
        extra = f"  {rate:,.0f} verif/s/core (GmSSL published {sm.GMSSL_VERIFY_PER_S:,}/s)"
    print(f"\n{result.name:<38} path={result.path:<8} {result.baseline}={result.baseline_us:9.2f} µs"
          f"  engine={result.engine_us:8.2f} µs  ratio={result.ratio:6.2f}x  {verdict}"
          f"{extra}  checksum={result.checksum}")


def cpu_ratio(corpus: sm.Sm2Corpus, n: int, warm: bool, repeat: int) -> tuple[float, float]:
    """(OpenSSL µs, engine µs) per signature in thread CPU time, batches of n, one thread."""
    def engine_run() -> list[bool]:
        return crypto.sm2_verify_batch(corpus.pks[:n], corpus.msgs[:n], corpus.sigs[:n],
                                       threads=1)

    base = eng = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        want = corpus.openssl_loop(n)
        base = min(base, time.thread_time() - start)
        if warm:
            sm._warm(corpus, n)
        else:
            sm._clear_cache()
        start = time.thread_time()
        got = engine_run()
        eng = min(eng, time.thread_time() - start)
        assert got == want
    return base / n * 1e6, eng / n * 1e6


def run_sm2(corpus: sm.Sm2Corpus, repeat: int, batches=(64, 1024)) -> None:
    """The SM2 lines on the chosen path, then on each narrower path forced in the same run (the
    AVX2 build when the chosen path is the AVX-512 IFMA lanes), so that both paths' ratios to
    OpenSSL come from one run on one machine state."""
    print(f"\nSM2 on {sm.cpu_model()}: chosen path {sm.sm2_path()}")
    run_sm2_path(corpus, repeat, batches)
    for isa in sm.narrower_sm2_paths():
        with sm.forced_path(isa) as path:
            print(f"\nSM2 forced onto path {path} (ENGINE_FORCE_ISA={isa}; SM3 lanes {sm.sm3_path()})")
            run_sm2_path(corpus, repeat, batches)


def run_sm2_path(corpus: sm.Sm2Corpus, repeat: int, batches) -> None:
    for warm in (False, True):
        show(sm.bench_sm2_single(corpus, min(256, len(corpus.pks)), repeat, warm), TARGET_SM2,
             per_core=True)
    for batch in batches:
        for warm in (False, True):
            show(sm.bench_sm2_batch(corpus, batch, 1, warm, repeat), TARGET_SM2, per_core=True)
            base_us, eng_us = cpu_ratio(corpus, batch, warm, max(1, repeat // 2))
            print(f"  same in thread CPU time (path {sm.sm2_path()}): openssl {base_us:.1f} µs, "
                  f"engine {eng_us:.1f} µs, ratio {base_us / eng_us:.2f}x, "
                  f"{1e6 / eng_us:,.0f} verif/s/core")


def run_threads(corpus: sm.Sm2Corpus, repeat: int, batch: int) -> None:
    for warm in (False, True):
        show(sm.bench_sm2_threads(corpus, batch, warm, repeat), TARGET_THREADS)


def cpu_pair(baseline, engine, repeat: int) -> tuple[float, float]:
    """Best thread CPU seconds of each side, run alternately, outputs compared."""
    base = eng = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        want = baseline()
        base = min(base, time.thread_time() - start)
        start = time.thread_time()
        got = engine()
        eng = min(eng, time.thread_time() - start)
        assert got == want
    return base, eng


def run_sm3(count: int, bulk_bytes: int, repeat: int) -> None:
    import hashlib
    import os

    from engine import hashing

    show(sm.bench_sm3_packed(count, 250, repeat), TARGET_SM3_PACKED)
    data, offsets = sm.make_messages(count, 250)
    view = memoryview(data)
    # Both sides start from the one buffer (the loop hashes memoryview slices: no copies).
    base, eng = cpu_pair(lambda: b"".join(hashlib.new("sm3", view[i * 250:(i + 1) * 250]).digest()
                                          for i in range(count)),
                         lambda: hashing.sm3_many_packed(data, offsets, threads=1), repeat)
    print(f"  same in thread CPU time: hashlib loop {base * 1e3:.1f} ms, engine {eng * 1e3:.1f} ms,"
          f" ratio {base / eng:.2f}x")
    show(sm.bench_sm3_bulk(bulk_bytes, repeat), TARGET_SM3_BULK)
    bulk = os.urandom(bulk_bytes)
    base, eng = cpu_pair(lambda: hashlib.new("sm3", bulk).digest(), lambda: hashing.sm3(bulk),
                         repeat)
    mib = bulk_bytes / (1 << 20)
    print(f"  same in thread CPU time: openssl {mib / base:.0f} MiB/s, engine {mib / eng:.0f} MiB/s,"
          f" ratio {base / eng:.2f}x")


# ---- make bench ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus():
    return sm.Sm2Corpus(4096)


def test_sm2_verify_vs_openssl(benchmark, corpus):
    if benchmark.disabled:
        pytest.skip("timing runs under `make bench`")
    run_sm2(corpus, repeat=5)
    run_threads(corpus, repeat=5, batch=1024)
    run_threads(corpus, repeat=3, batch=4096)
    sm._warm(corpus, 1024)
    benchmark.group = "sm2_verify_batch 1024 warm keys, 1 thread"
    benchmark(crypto.sm2_verify_batch, corpus.pks[:1024], corpus.msgs[:1024],
              corpus.sigs[:1024], threads=1)


def test_sm3_vs_openssl(benchmark):
    if benchmark.disabled:
        pytest.skip("timing runs under `make bench`")
    run_sm3(100_000, 64 << 20, repeat=5)
    data, offsets = sm.make_messages(100_000, 250)
    from engine import hashing

    benchmark.group = "sm3_many_packed 100k x 250 B"
    benchmark(hashing.sm3_many_packed, data, offsets, threads=1)


# ---- make test: smoke run on small inputs ------------------------------------------------------

@pytest.mark.bench_smoke
def test_sm_benchmarks_smoke():
    small = sm.Sm2Corpus(64)
    run_sm2(small, repeat=1, batches=(16,))
    run_threads(small, repeat=1, batch=32)
    run_sm3(2000, 1 << 20, repeat=1)
    crypto.sm2_configure_key_cache(crypto.SM2_KEY_CACHE_KEYS_DEFAULT)
