"""SM2 / SM3 kernels next to their baselines, timed in the same run (`engine bench kernels`
lines ``sm2_*`` and ``sm3_*``, and bench/test_bench_sm.py).

Baselines: OpenSSL 3's SM2 verification through libcrypto's EVP interface (one call per
signature, keys loaded beforehand: what a Python program calling OpenSSL would do), a
``hashlib.new("sm3")`` loop for many messages, and OpenSSL's SM3 (hashlib) on one large buffer.
Outputs of both sides are compared before any time is reported. SM2 figures come in two kinds:
"cold" keys (the key cache emptied before every timed run: each key is decoded and gets the
one-quarter table, as for a stream of one-off senders) and "warm" keys (every key seen twice
before: the four-quarter tables come from the cache, as for validators and busy accounts).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator
from typing import Any

from engine import _native_sm, crypto, hashing
from engine.benchmarks import openssl_sm2
from engine.benchmarks.common import KernelResult, best_s, checksum, paired_s
from engine.benchmarks.common import result as _result
from engine.benchmarks.common import same as _same
from engine.benchmarks.common import verdict_bytes as _verdict_bytes

MESSAGE_BYTES = 100
#: ChainMaker's published figure for GmSSL, SM2 verifications per second per core.
GMSSL_VERIFY_PER_S = 17_000


def sm2_path() -> str:
    return str(_native_sm.kernel_info()["sm2"])


def narrower_sm2_paths() -> list[str]:
    """The SM2 paths timed besides the chosen one, forced in the same run: the AVX2 (mulx/adx
    scalar) build when the chosen one is the AVX-512 IFMA lanes."""
    return ["avx2"] if sm2_path() == "avx512" else []


@contextlib.contextmanager
def forced_path(isa: str) -> Iterator[str]:
    """Force the SM kernels onto ``isa`` (SM3's lanes too) for the duration."""
    _native_sm._force_isa(isa)
    try:
        yield sm2_path()
    finally:
        _native_sm._force_isa(None)


def cpu_model() -> str:
    """The CPU's model name (Linux), for naming next to the figures."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def sm3_path() -> str:
    return str(_native_sm.kernel_info()["sm3"])


class Sm2Corpus:
    """Distinct keys (from a seeded generator), messages and signatures, with OpenSSL's key
    objects and DER signatures prepared for the baseline."""

    def __init__(self, count: int, seed: int = 1):
        rng = random.Random(seed)
        keys = [crypto.Sm2SigningKey(rng.randrange(1, crypto.SM2_N - 1).to_bytes(32, "big"))
                for _ in range(count)]
        self.pks = [k.public_key for k in keys]
        self.msgs = [rng.randbytes(MESSAGE_BYTES) for _ in range(count)]
        self.sigs = [k.sign(m) for k, m in zip(keys, self.msgs)]
        self.ders = [crypto.sm2_signature_to_der(s) for s in self.sigs]
        self.openssl_keys = [openssl_sm2.Key.from_public(pk) for pk in self.pks]

    def openssl_loop(self, n: int) -> list[bool]:
        return [k.verify(m, d) for k, m, d in zip(self.openssl_keys[:n], self.msgs[:n],
                                                  self.ders[:n])]


def _clear_cache() -> None:
    _native_sm.sm2_cache_clear()


def _warm(corpus: Sm2Corpus, n: int) -> None:
    """Every key seen twice: its four-quarter tables are in the cache."""
    # Twice the keys: the cache is 8-way set-associative, so a set can fill before the whole.
    if crypto.sm2_key_cache_info()["capacity"] < 2 * n:
        crypto.sm2_configure_key_cache(max(2 * n, crypto.SM2_KEY_CACHE_KEYS_DEFAULT))
    for _ in range(2):
        crypto.sm2_verify_batch(corpus.pks[:n], corpus.msgs[:n], corpus.sigs[:n], threads=1)


def bench_sm2_single(corpus: Sm2Corpus, n: int, repeat: int,
                     warm: bool = False) -> KernelResult:
    """crypto.sm2_verify called once per signature, cold keys (or warm: every key seen twice)."""
    def engine_loop() -> list[bool]:
        return [crypto.sm2_verify(pk, m, s) for pk, m, s in zip(corpus.pks[:n], corpus.msgs[:n],
                                                                corpus.sigs[:n])]

    if warm:
        _warm(corpus, n)
    base_s, base_out, eng_s, eng_out = paired_s(lambda: corpus.openssl_loop(n), engine_loop,
                                                repeat, None if warm else _clear_cache)
    _same("sm2_verify", eng_out, base_out)
    keys = "warm" if warm else "cold"
    return _result(f"sm2 verify single ({keys} keys)", sm2_path(), "openssl-3 EVP loop", n, "sig",
                   base_s, eng_s, checksum(_verdict_bytes(eng_out)),
                   f"both: one call per signature, distinct keys; engine key cache "
                   f"{'holding every key (seen twice before)' if warm else 'emptied'}, "
                   "OpenSSL key objects and DER signatures built before the clock (its favour)")


def _verify_in_batches(corpus: Sm2Corpus, n: int, batch: int,
                       threads: int | None) -> list[bool]:
    """sm2_verify_batch over the first ``n`` signatures, ``batch`` at a time."""
    out: list[bool] = []
    for i in range(0, n, batch):
        out += crypto.sm2_verify_batch(corpus.pks[i:i + batch], corpus.msgs[i:i + batch],
                                       corpus.sigs[i:i + batch], threads=threads)
    return out


def bench_sm2_batch(corpus: Sm2Corpus, batch: int, threads: int | None, warm: bool,
                    repeat: int) -> KernelResult:
    """sm2_verify_batch over batches of ``batch`` signatures (the whole corpus), per signature."""
    n = len(corpus.pks) // batch * batch

    def engine_batches() -> list[bool]:
        return _verify_in_batches(corpus, n, batch, threads)

    if warm:
        _warm(corpus, n)
    base_s, base_out, eng_s, eng_out = paired_s(lambda: corpus.openssl_loop(n), engine_batches,
                                                repeat, None if warm else _clear_cache)
    _same("sm2_verify_batch", eng_out, base_out)
    thr = "all" if threads is None else str(threads)
    keys = "warm" if warm else "cold"
    return _result(f"sm2 verify batch {batch} ({keys}, {thr} thr)", sm2_path(),
                   "openssl-3 EVP loop", n, "sig", base_s, eng_s,
                   checksum(_verdict_bytes(eng_out)),
                   f"both: the same signatures; engine in batches of {batch}, keys {keys}; OpenSSL "
                   "key objects and DER signatures built before the clock (its favour)")


def bench_sm2_threads(corpus: Sm2Corpus, batch: int, warm: bool, repeat: int) -> KernelResult:
    """threads=2 against threads=1 on the same batches (the baseline is the engine itself)."""
    n = len(corpus.pks) // batch * batch

    def run(threads: int) -> list[bool]:
        return _verify_in_batches(corpus, n, batch, threads)

    if warm:
        _warm(corpus, n)
    one_s = two_s = float("inf")
    one_out: Any = None
    two_out: Any = None
    for _ in range(max(1, repeat)):
        s, one_out = best_s(lambda: run(1), 1, None if warm else _clear_cache)
        one_s = min(one_s, s)
        s, two_out = best_s(lambda: run(2), 1, None if warm else _clear_cache)
        two_s = min(two_s, s)
    _same("sm2_verify_batch threads", two_out, one_out)
    keys = "warm" if warm else "cold"
    return _result(f"sm2 verify batch {batch} ({keys}) 2 thr", sm2_path(), "engine 1 thread", n,
                   "sig", one_s, two_s, checksum(_verdict_bytes(two_out)),
                   f"both: the engine's batch calls of {batch}, keys {keys}; 1 vs 2 threads")


def make_messages(count: int, size: int, seed: int = 2) -> tuple[bytes, Any]:
    """``count`` messages of ``size`` bytes in one buffer, and their uint64 offsets."""
    import numpy as np

    data = random.Random(seed).randbytes(count * size)
    return data, np.arange(0, count * size + 1, size, dtype=np.uint64)


def bench_sm3_packed(count: int, size: int, repeat: int) -> KernelResult:
    data, offsets = make_messages(count, size)
    view = memoryview(data)
    bounds = offsets.tolist()

    def loop() -> bytes:
        # The same starting point as the engine: one buffer and its offsets (slices of a
        # memoryview copy nothing).
        return b"".join(hashlib.new("sm3", view[bounds[i]:bounds[i + 1]]).digest()
                        for i in range(count))

    base_s, base_out, eng_s, eng_out = paired_s(
        loop, lambda: hashing.sm3_many_packed(data, offsets, threads=1), repeat)
    _same("sm3_many_packed", eng_out, base_out)
    return _result(f"sm3 many packed {size} B (1 thr)", sm3_path(), "hashlib sm3 loop", count,
                   "msg", base_s, eng_s, checksum(eng_out),
                   "both: one buffer + offsets in (the loop hashes memoryview slices), "
                   "n*32 digest bytes out")


def bench_sm3_bulk(size_bytes: int, repeat: int) -> KernelResult:
    data = os.urandom(size_bytes)
    base_s, base_out, eng_s, eng_out = paired_s(lambda: hashlib.new("sm3", data).digest(),
                                                lambda: hashing.sm3(data), repeat)
    _same("sm3 bulk", eng_out, base_out)
    mib = size_bytes >> 20
    return _result(f"sm3 bulk one {mib} MiB buffer", sm3_path(), "hashlib sm3 (openssl)",
                   mib, "MiB", base_s, eng_s, checksum(eng_out), "both: one bytes buffer in")


def available() -> str | None:
    """None when the baselines can run here, else why not."""
    if not openssl_sm2.available():
        return "libcrypto is not OpenSSL 3 with SM2"
    try:
        hashlib.new("sm3")
    except ValueError:
        return "hashlib has no sm3 (OpenSSL without SM3)"
    return None


def kernel_results(*, quick: bool, repeat: int) -> list[KernelResult]:
    """The SM lines of `engine bench kernels` (empty when OpenSSL lacks SM2 / SM3)."""
    if available() is not None:
        return []
    corpus = Sm2Corpus(256 if quick else 1024)
    results = [bench_sm2_single(corpus, 64 if quick else 256, repeat, warm)
               for warm in (False, True)]
    for warm in (False, True):
        results.append(bench_sm2_batch(corpus, 64, 1, warm, repeat))
        if not quick:
            results.append(bench_sm2_batch(corpus, 1024, 1, warm, repeat))
    for isa in narrower_sm2_paths():
        with forced_path(isa):
            for warm in (False, True):
                results.append(bench_sm2_batch(corpus, 64, 1, warm, repeat))
                if not quick:
                    results.append(bench_sm2_batch(corpus, 1024, 1, warm, repeat))
    results.append(bench_sm3_packed(10_000 if quick else 100_000, 250, repeat))
    results.append(bench_sm3_bulk((4 if quick else 64) << 20, repeat))
    return results
