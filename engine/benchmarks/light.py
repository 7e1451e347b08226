"""Light-client benchmark (issue 15 item 5): how fast a light block verifies, and how fast a
skipping client crosses 10,000 heights, next to a baseline timed in the same run.

- ``light block N``: adjacent verification (``verify_light_block``: header and set hashes, the
  power tally, one ``verify_batch`` over every signer) of consecutive light blocks of an
  N-validator set in which every validator signed, for N = 100 and 1,000.
- ``skip 10,000 heights, N``: ``LightClient.verify_to`` from height 1 to 10,001 of a chain whose
  N-validator set has one member replaced at even intervals until 1/3 of it is new; the client
  bisects only if the trust rule requires (it reports how many light blocks it verified).
  Light blocks are served from memory, signed before the clock (an untimed run signs them).

Baseline for each: a loop of single verifications of the chain's suite (``engine.crypto.verify``
for Ed25519, ``crypto.sm2_verify`` on an ``sm2-sm3`` chain: the same library and ISA path) over
exactly the signatures the candidate checked. Both sides start with the suite's public-key
cache emptied. ``crypto_suite="sm2-sm3"`` runs every scenario on SM2/SM3 chains. Reported:
headers per second for both, the ratio, the
ISA path, and a checksum of the verified headers' hashes (equal for both sides, or no ratio).
"""
from __future__ import annotations

import bisect
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

from engine import crypto
from engine.benchmarks.common import checksum
from engine.consensus.types import VoteType, vote_sign_bytes
from engine.light import LightBlock, LightClient, MemorySource, verify_light_block
from engine.light.synthetic import SyntheticChain, make_keys
from engine.suite import SM2_SM3, Suite, get_suite

__all__ = ["bench_light_blocks", "bench_skip", "run_light"]

CHAIN = b"bench-light"
SKIP_HEIGHTS = 10_000
FAR_FUTURE_PERIOD_MS = 10**12


def _cold() -> None:
    """Empty the public-key caches of both suites (each keeps its capacity)."""
    crypto.configure_key_cache(crypto.key_cache_info()["capacity"])
    crypto.sm2_configure_key_cache(crypto.sm2_key_cache_info()["capacity"])


def _path(suite: Suite) -> str:
    return crypto.sm2_native_path() if suite.name == SM2_SM3 else crypto.native_path()


def _baseline_loop(chain_id: bytes, blocks: list[LightBlock]) -> list[bytes]:
    """Single verifications of each block's suite, one signature at a time; the hashes of the
    headers whose every signature verified."""
    out = []
    for lb in blocks:
        verify = lb.suite.verify
        c = lb.certificate
        msg = vote_sign_bytes(chain_id, VoteType.PRECOMMIT, c.height, c.round, c.block_hash)
        ok = True
        for i, sig in zip(c.signer_indices(), c.signatures):
            ok &= verify(lb.validators.public_key(i), msg, sig)
        if ok:
            out.append(lb.hash())
    return out


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        _cold()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _row(name: str, headers: int, signatures: int, base_s: float, eng_s: float, check: str,
         suite: Suite, **extra: Any) -> dict[str, Any]:
    sm2 = suite.name == SM2_SM3
    return {"name": name, "crypto": suite.name, "path": _path(suite), "headers": headers,
            "signatures": signatures,
            "baseline": "loop of crypto.sm2_verify" if sm2 else "loop of crypto.verify",
            "baseline_headers_per_s": round(headers / base_s, 2),
            "engine_headers_per_s": round(headers / eng_s, 2),
            "baseline_ms": round(base_s * 1000, 3), "engine_ms": round(eng_s * 1000, 3),
            "ratio": round(base_s / eng_s, 2), "checksum": check, **extra}


def bench_light_blocks(validators: int, count: int, repeat: int,
                       suite: Suite | str | None = None) -> dict[str, Any]:
    s = get_suite(suite)
    keys = make_keys(validators, b"bench", suite=s)
    chain = SyntheticChain(CHAIN, [(1, [(k, 10) for k in keys])], count + 1, suite=s)
    blocks = [chain.light_block(h) for h in range(1, count + 2)]
    assert all(b is not None for b in blocks)
    lbs: list[LightBlock] = [b for b in blocks if b is not None]
    now = lbs[-1].time_ms + 1000

    def engine_run() -> list[bytes]:
        for trusted, lb in itertools.pairwise(lbs):
            verify_light_block(CHAIN, trusted, lb, now_ms=now,
                               trusting_period_ms=FAR_FUTURE_PERIOD_MS)
        return [lb.hash() for lb in lbs[1:]]

    base_s = eng_s = float("inf")
    want = got = None
    for _ in range(repeat):  # alternate, so both see the same machine load
        b, want = _best(lambda: _baseline_loop(CHAIN, lbs[1:]), 1)
        e, got = _best(engine_run, 1)
        base_s, eng_s = min(base_s, b), min(eng_s, e)
    if got != want:
        raise RuntimeError("light blocks: engine and baseline verdicts differ; no ratio")
    return _row(f"light block, {validators} validators", count, count * validators, base_s,
                eng_s, checksum(got or []), s)


def _skip_chain(validators: int, heights: int, suite: Suite) -> SyntheticChain:
    """One validator replaced at even intervals until a third of the set is new."""
    keys = make_keys(validators + validators // 3, b"skip", suite=suite)
    changes = validators // 3
    members = [(k, 10) for k in keys[:validators]]
    epochs: list[tuple[int, list]] = [(1, list(members))]
    for j in range(changes):
        members = list(members)
        members[j] = (keys[validators + j], 10)
        epochs.append((2 + (j + 1) * (heights - 1) // (changes + 1), members))
    return _FastSetChain(CHAIN, epochs, heights + 1, suite=suite)


class _FastSetChain(SyntheticChain):
    """The synthetic chain with a bisecting set lookup (hundreds of epochs)."""

    def set_at(self, height: int):
        return self._sets[max(0, bisect.bisect_right(self._epoch_starts, height) - 1)]


def bench_skip(validators: int, repeat: int, heights: int = SKIP_HEIGHTS, rounds: int = 1,
               suite: Suite | str | None = None) -> dict[str, Any]:
    """``rounds`` fresh clients each cross the ``heights`` per timed run (one skip is a few
    milliseconds: too short to time alone on a shared machine)."""
    s = get_suite(suite)
    chain = _skip_chain(validators, heights, s)
    target = heights + 1
    changed = sum(1 for v in chain.set_at(target).validators
                  if chain.set_at(1).index_of(v.public_key) is None)
    now = chain.header(target).time_ms + 1000

    def one_client() -> LightClient:
        lc = LightClient(MemorySource(chain.light_block), chain.light_block(1),  # type: ignore
                         trusting_period_ms=FAR_FUTURE_PERIOD_MS, now_ms=lambda: now)
        lc.verify_to(target)
        return lc

    def engine_run() -> LightClient:
        for _ in range(rounds - 1):
            one_client()
        return one_client()

    warm = one_client()  # signs (and caches) every light block the bisection fetches
    path = [warm.trusted_block(h) for h in warm.trusted_heights() if h > 1]
    verified = [lb for lb in path if lb is not None]
    base_s = eng_s = float("inf")
    want: list[bytes] = []
    got: list[bytes] = []
    for _ in range(repeat):
        b, want = _best(lambda: _baseline_loop(CHAIN, verified * rounds)[:len(verified)], 1)
        e, lc = _best(engine_run, 1)
        got = [lc.trusted_block(h).hash() for h in lc.trusted_heights() if h > 1]
        base_s, eng_s = min(base_s, b), min(eng_s, e)
    if got != want or got[-1] != chain.header(target).hash(s):
        raise RuntimeError("skip: engine and baseline verdicts differ; no ratio")
    sigs = sum(len(lb.certificate.signatures) for lb in verified) * rounds
    return _row(f"skip {heights:,} heights, {validators} validators", len(verified) * rounds,
                sigs, base_s, eng_s, checksum(got), s, set_changed=f"{changed}/{validators}",
                heights_per_s=round(heights * rounds / eng_s, 1), rounds=rounds)


def run_light(quick: bool = False, progress: Callable[[str], None] = print,
              crypto_suite: str | None = None) -> list[dict[str, Any]]:
    """Every scenario; ``quick``: tiny sizes (the smoke run inside make test);
    ``crypto_suite``: the chains' suite (default ed25519-blake3). SM2 batches verify several
    times slower than Ed25519's (no batch equation), so its full sizes are smaller: the same
    set sizes, fewer blocks and rounds."""
    s = get_suite(crypto_suite)
    if quick:
        plan = [lambda: bench_light_blocks(10, 3, 1, s), lambda: bench_light_blocks(31, 2, 1, s),
                lambda: bench_skip(12, 1, heights=200, suite=s)]
    elif s.name == SM2_SM3:
        plan = [lambda: bench_light_blocks(100, 4, 3, s), lambda: bench_light_blocks(1000, 2, 2, s),
                lambda: bench_skip(100, 3, rounds=4, suite=s),
                lambda: bench_skip(1000, 2, rounds=1, suite=s)]
    else:
        plan = [lambda: bench_light_blocks(100, 20, 3, s), lambda: bench_light_blocks(1000, 4, 3, s),
                lambda: bench_skip(100, 3, rounds=20, suite=s),
                lambda: bench_skip(1000, 3, rounds=3, suite=s)]
    progress(f"light client benchmark; {s.name}, {_path(s)} path, batch verification "
             f"on {os.cpu_count()} cores, baseline single-threaded")
    progress(f"{'scenario':<40} {'headers':>7} {'sigs':>7} {'base hdr/s':>11} "
             f"{'engine hdr/s':>13} {'ratio':>7}  checksum")
    rows = []
    for make in plan:
        row = make()
        rows.append(row)
        extra = (f"  (set changed {row['set_changed']}, "
                 f"{row['heights_per_s']:,.0f} heights crossed/s)" if "set_changed" in row else "")
        progress(f"{row['name']:<40} {row['headers']:>7} {row['signatures']:>7} "
                 f"{row['baseline_headers_per_s']:>11.1f} {row['engine_headers_per_s']:>13.1f} "
                 f"{row['ratio']:>6.2f}x  {row['checksum']}{extra}")
    return rows
