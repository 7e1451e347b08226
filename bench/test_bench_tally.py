"""Consensus benchmarks: the native vote tally, commit-certificate verification, and simulator
speed, each against a baseline timed in the same process on the same inputs.

- tally: 1,000,000 pre-verified votes over 100 validators and 5,000 rounds (prevotes and
  precommits, with duplicates and equivocations mixed in). Baseline: the pure-Python dict tally
  (``PyVoteTally``, vote by vote). Candidates: the native tally's batch call over numpy arrays
  (target >= 20x) and its per-vote call from Python (what the core does for each message).
  Every contender gets the votes in its natural form made before the clock (numpy arrays for the
  batch call, Python lists for the per-vote loops), so no side pays for converting them.
  Checksum: BLAKE3 of every vote's status and every row's quorum slot; both must agree.
- certificate: ``CommitCertificate.verify`` (one ``verify_batch`` + one native bitmap tally) for
  4, 100 and 1000 validators against OpenSSL: a loop of single Ed25519 verifications through
  ``cryptography`` (key objects built before the clock, the engine's key cache emptied before
  each engine run) plus a Python power sum over the bitmap. Both sides reject a certificate with
  one bad signature and one short of power before anything is timed.
- simulator: heights decided per second with 4 and 100 validators at zero delay (real Ed25519,
  verification results cached per (pk, msg, sig)).

The smoke versions (bench_smoke) run the same code at tiny sizes inside `make test` and check
that the outputs agree.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from engine import crypto, hashing
from engine.consensus import (
    CommitCertificate,
    ProtocolError,
    Validator,
    ValidatorSet,
    VoteType,
    _tally,
)
from engine.consensus.reference_tally import PyVoteTally
from engine.consensus.types import vote_sign_bytes
from engine.sim import SimConfig, run_seed

CHAIN = b"bench"
TALLY_TARGET = 20.0


def best_ms(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def native_path() -> str:
    try:
        import engine
        kernels = engine.native_info()["kernels"]
        return f"tally=cython ed25519={kernels.get('ed25519', 'openssl')}"
    except (ImportError, KeyError):  # a kernel may be absent from this build
        return "tally=cython"


def report(what: str, base_ms: float, cand_ms: float, target: float | None, checksum: str) -> float:
    ratio = base_ms / cand_ms
    verdict = "" if target is None else f" target >= {target:g}x {'met' if ratio >= target else 'MISSED'}"
    print(f"\n{what} [{native_path()}]: baseline {base_ms:.1f} ms, candidate {cand_ms:.1f} ms, "
          f"ratio {ratio:.1f}x{verdict}, checksum {checksum}")
    return ratio


# ---- tally ---------------------------------------------------------------------------------

def make_votes(votes_count: int, validators: int, seed: int = 1):
    """Rows of 2 per round; every validator votes once per row, plus ~1% repeats/conflicts."""
    rng = np.random.default_rng(seed)
    rows_count = max(1, votes_count // validators)
    rows = np.repeat(np.arange(rows_count, dtype=np.int64), validators)[:votes_count]
    vals = np.tile(np.arange(validators, dtype=np.int64), rows_count)[:votes_count]
    # Mostly one value per row (slot 1), some nil (0), a few others; 1% of votes re-sent.
    slots = rng.choice([0, 1, 1, 1, 1, 1, 2, 3], size=votes_count).astype(np.int64)
    k = votes_count // 100
    pick = rng.integers(0, votes_count, size=k)
    rows = np.concatenate([rows, rows[pick]])
    vals = np.concatenate([vals, vals[pick]])
    slots = np.concatenate([slots, rng.integers(0, 4, size=k)])
    return rows_count, rows, vals, slots


def tally_native_batch(powers, rows_count, rows, vals, slots):
    t = _tally.VoteTally(powers, rows_count)
    for _ in range(rows_count):
        t.new_row()
    status = t.add_batch(rows, vals, slots)
    return status.tobytes(), t.quorum_slots().tolist()


def tally_native_calls(powers, rows_count, rows, vals, slots):
    """Per-vote native calls; ``rows``, ``vals``, ``slots`` are Python lists."""
    t = _tally.VoteTally(powers, rows_count)
    for _ in range(rows_count):
        t.new_row()
    add = t.add
    status = bytes(add(r, v, s) for r, v, s in zip(rows, vals, slots))
    return status, [t.quorum_slot(r) for r in range(rows_count)]


def tally_python(powers, rows_count, rows, vals, slots):
    """The Python dict tally, vote by vote; ``rows``, ``vals``, ``slots`` are Python lists."""
    t = PyVoteTally(powers)
    for _ in range(rows_count):
        t.new_row()
    add = t.add
    status = bytes(add(r, v, s) for r, v, s in zip(rows, vals, slots))
    return status, [t.quorum_slot(r) for r in range(rows_count)]


def as_lists(args):
    """The same votes as Python lists (made once, before any clock starts)."""
    powers, rows_count, *arrays = args
    return (powers, rows_count, *(a.tolist() for a in arrays))


def checksum(result) -> str:
    status, quorums = result
    return hashing.blake3(status + np.array(quorums, dtype=np.int64).tobytes()).hex()[:16]


def compare_tally(votes_count: int, validators: int, repeat: int):
    powers = list(range(1, validators + 1))  # unequal powers
    args = (powers,) + make_votes(votes_count, validators)
    lists = as_lists(args)
    want = tally_python(*lists)
    got = tally_native_batch(*args)
    got_calls = tally_native_calls(*lists)
    assert got == want and got_calls == want
    quorums = sum(q >= 0 for q in want[1])
    assert 0 < quorums < len(want[1])  # some rows reach a quorum, some do not
    base = best_ms(lambda: tally_python(*lists), max(1, repeat - 1))
    batch = best_ms(lambda: tally_native_batch(*args), repeat)
    calls = best_ms(lambda: tally_native_calls(*lists), repeat)
    n = len(args[2])
    ratio = report(f"tally {n} votes / {validators} validators / {args[1]} rows, native batch "
                   "(numpy arrays in) vs Python dict (lists in)", base, batch, TALLY_TARGET,
                   checksum(got))
    report(f"tally {n} votes, native per-vote calls vs Python dict (both lists in)", base, calls,
           None, checksum(got_calls))
    return ratio


# ---- certificates ---------------------------------------------------------------------------

def make_certificate(validators: int, signers_count: int | None = None, bad: int | None = None):
    """A precommit certificate signed by the first ``signers_count`` validators (default: 3/4
    of them + 1); ``bad`` names a signer whose signature is over another message."""
    keys = [crypto.SigningKey.from_seed(hashing.blake3(b"bench%d" % i)) for i in range(validators)]
    vs = ValidatorSet([Validator(k.public_key, 1 + i % 3) for i, k in enumerate(keys)])
    block_hash = hashing.blake3(b"block")
    msg = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, 10, 0, block_hash)
    signers = range(validators * 3 // 4 + 1 if signers_count is None else signers_count)
    sigs = {i: keys[i].sign(msg if i != bad else msg + b"x") for i in signers}
    return CommitCertificate.build(10, 0, block_hash, sigs, validators), vs, msg


def openssl_keys(vs: ValidatorSet) -> list:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return [Ed25519PublicKey.from_public_bytes(vs.public_key(i)) for i in range(len(vs))]


def openssl_verify(cert: CommitCertificate, keys: list, powers: list[int], total: int) -> bool:
    """The baseline: the work ``cert.verify`` does, in Python over OpenSSL: the signers from the
    bitmap, their power summed, the sign bytes, each signature verified with OpenSSL."""
    from cryptography.exceptions import InvalidSignature

    signers = cert.signer_indices()
    if 3 * sum(powers[i] for i in signers) <= 2 * total:
        return False
    msg = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, cert.height, cert.round, cert.block_hash)
    try:
        for i, sig in zip(signers, cert.signatures):
            keys[i].verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def engine_verify(cert: CommitCertificate, vs: ValidatorSet) -> bool:
    try:
        cert.verify(CHAIN, vs)
        return True
    except ProtocolError:
        return False


def cold_keys() -> None:
    crypto.configure_key_cache(crypto.key_cache_info()["capacity"])


def compare_certificate(validators: int, repeat: int) -> float:
    cert, vs, _ = make_certificate(validators)
    keys, powers = openssl_keys(vs), [v.power for v in vs.validators]
    total = sum(powers)
    # Both sides accept the certificate and reject one with a bad signature and one short of
    # power (the largest signer set whose power is at most 2/3), so they do the same checks.
    short = max(k for k in range(validators + 1)
                if 3 * sum(powers[:k]) <= 2 * total)
    cases = [cert, make_certificate(validators, bad=validators // 2)[0],
             make_certificate(validators, signers_count=short)[0]]
    verdicts = [(engine_verify(c, vs), openssl_verify(c, keys, powers, total)) for c in cases]
    assert verdicts == [(True, True), (False, False), (False, False)], verdicts
    base = best_ms(lambda: openssl_verify(cert, keys, powers, total), repeat)
    cand = float("inf")
    for _ in range(repeat):  # cold keys: the engine decompresses every key, as OpenSSL does
        cold_keys()
        cand = min(cand, best_ms(lambda: cert.verify(CHAIN, vs), 1))
    return report(f"certificate verify, {validators} validators ({len(cert.signatures)} "
                  "signatures), batch + native tally vs OpenSSL loop + Python power sum "
                  "(both: bitmap, power, sign bytes, every signature; cold keys)", base, cand,
                  None, hashing.blake3(cert.encode()).hex()[:16])


# ---- simulator -------------------------------------------------------------------------------

def sim_speed(validators: int, heights: int) -> float:
    config = SimConfig(validators=validators, zero_delay=True, heights=heights)
    t = time.perf_counter()
    r = run_seed(1, config)
    elapsed = time.perf_counter() - t
    assert not r.violations and r.heights_decided >= heights and r.messages > 0
    rate = r.heights_decided / elapsed
    print(f"\nsimulator {validators} validators, zero delay: {r.heights_decided} heights in "
          f"{elapsed:.2f} s = {rate:.1f} heights/s, {r.messages} messages "
          f"({r.messages / elapsed:.0f} msg/s), checksum {r.heights_decided}/{r.decisions}")
    return rate


# ---- make bench --------------------------------------------------------------------------------

def test_tally_million_votes(benchmark):
    if benchmark.disabled:  # make test: the smoke version checks the same code's outputs
        pytest.skip("timing runs under `make bench`")
    ratio = compare_tally(1_000_000, 100, repeat=3)
    assert ratio >= TALLY_TARGET
    args = ([1] * 100,) + make_votes(1_000_000, 100)
    benchmark.group = "tally 1M votes"
    benchmark.pedantic(tally_native_batch, args=args, rounds=3)


@pytest.mark.parametrize("validators", [4, 100, 1000])
def test_certificate_verification(benchmark, validators):
    if benchmark.disabled:  # make test: the smoke version checks the same code's outputs
        pytest.skip("timing runs under `make bench`")
    compare_certificate(validators, repeat=5 if validators < 1000 else 2)
    cert, vs, _ = make_certificate(validators)
    benchmark.group = "certificate verify"
    benchmark(cert.verify, CHAIN, vs)


@pytest.mark.parametrize("validators,heights", [(4, 200), (100, 5)])
def test_simulator_speed(benchmark, validators, heights):
    if benchmark.disabled:  # make test: the smoke version checks the same code's outputs
        pytest.skip("timing runs under `make bench`")
    sim_speed(validators, heights)
    benchmark.group = "simulator"
    benchmark.pedantic(sim_speed, args=(validators, heights), rounds=1)


# ---- make test: smoke runs ------------------------------------------------------------------------

@pytest.mark.bench_smoke
def test_smoke_tally_and_certificates_and_sim():
    # The checks that can fail are inside: outputs equal to the baselines', verdicts on a good,
    # a badly signed and an underpowered certificate, a simulator run without violations.
    # The tally floor fails when the native batch call stops being native (ratio ~1).
    assert compare_tally(20_000, 20, repeat=2) > 3
    compare_certificate(4, repeat=1)
    compare_certificate(10, repeat=1)
    sim_speed(4, 5)
