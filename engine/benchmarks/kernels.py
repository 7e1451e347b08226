"""`engine bench kernels`: every native hot path next to a baseline timed in the same run.

Each kernel runs on inputs made for this run, the candidate (the engine's native call) and the
baseline (what a Python program would do without the engine: an OpenSSL loop through
``cryptography``, a loop over the ``blake3`` package, the pure-Python references, a raw LMDB
put; for the avx2 throughput line, the BLAKE3 team's C library with AVX-512 compiled out, built
here when apt-get and a compiler allow, see blake3_c_avx2.py) are timed alternately, best of
``repeat`` runs (other tenants share the machine; the best run is the least disturbed one), and
their outputs are compared before anything is reported: a kernel whose outputs differ from its
baseline's raises instead of printing a ratio. Each result carries a checksum of the outputs, so
the work cannot be skipped.

``ratio`` is baseline time / engine time (higher is better). Ratios, not times, are what
`engine bench compare` gates on: both sides of a ratio ran on the same machine in the same minute.
The public-key cache of the Ed25519 verifier is emptied before every timed run ("cold" keys), the
conservative figure; a node that sees the same senders again does better.

The calibration kernel is a fixed pure-Python workload (dict, struct and bytes operations like
the node's per-transaction bookkeeping). Its speed normalises end-to-end TPS across machines.
"""
from __future__ import annotations

import array
import contextlib
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

from engine import crypto, hashing
from engine import tx as txmod
from engine.benchmarks.common import HEADER, KernelResult, best_s, checksum, paired_s
from engine.benchmarks.common import result as _result
from engine.benchmarks.common import same as _same
from engine.benchmarks.common import verdict_bytes as _verdict_bytes

#: Sizes of the full and the quick (``--quick``) run.
SIZES = {
    "full": {"txs": 20_000, "single": 2_000, "validators": 100, "votes_rows": 2_000,
             "block_txs": 1_000, "blocks": 20, "certs": 50, "packed": 100_000,
             "bulk_bytes": 64 << 20, "repeat": 5},
    "quick": {"txs": 1_024, "single": 200, "validators": 100, "votes_rows": 100,
              "block_txs": 200, "blocks": 5, "certs": 5, "packed": 2_000,
              "bulk_bytes": 1 << 20, "repeat": 2},
}
TX_BYTES_DEFAULT = 250
MESSAGE_BYTES = 100
#: The packed messages of the avx2 throughput line (issue 18: 100,000 x 250 B).
PACKED_MESSAGE_BYTES = 250
CHAIN_ID = "bench"
CALIBRATION_OPS = 200_000


def _cold_keys() -> None:
    crypto.configure_key_cache(crypto.key_cache_info()["capacity"])


# ---- inputs ----------------------------------------------------------------------------------

def make_envelopes(count: int, tx_bytes: int = TX_BYTES_DEFAULT, *, chain_id: str = CHAIN_ID,
                   senders: int = 64) -> list[bytes]:
    """``count`` signed kvstore envelopes of exactly ``tx_bytes`` bytes from ``senders`` keys."""
    overhead = txmod.TX_HEADER_BYTES + txmod.SIGNATURE_BYTES
    if tx_bytes < overhead + 3:
        raise ValueError(f"tx_bytes must be at least {overhead + 3}, not {tx_bytes}")
    keys = [crypto.SigningKey.generate() for _ in range(max(1, senders))]
    payload_bytes = tx_bytes - overhead
    out = []
    for i in range(count):
        head = b"k%d=" % i
        payload = head + (b"v%d." % i) * (payload_bytes // 4 + 1)
        out.append(txmod.encode_tx(keys[i % len(keys)], i, payload[:payload_bytes], chain_id))
    return out


class SignatureCorpus:
    """Distinct keys, random messages and their signatures, with OpenSSL key objects ready."""

    def __init__(self, count: int):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        keys = [crypto.SigningKey.generate() for _ in range(count)]
        self.messages = [os.urandom(MESSAGE_BYTES) for _ in range(count)]
        self.signatures = [k.sign(m) for k, m in zip(keys, self.messages)]
        self.public_keys = [k.public_key for k in keys]
        self.openssl_keys = [Ed25519PublicKey.from_public_bytes(pk) for pk in self.public_keys]

    def openssl_loop(self, n: int) -> list[bool]:
        from cryptography.exceptions import InvalidSignature

        out = []
        for key, msg, sig in zip(self.openssl_keys[:n], self.messages[:n], self.signatures[:n]):
            try:
                key.verify(sig, msg)
                out.append(True)
            except InvalidSignature:
                out.append(False)
        return out


# ---- kernels ---------------------------------------------------------------------------------

def bench_tx_ids(envelopes: list[bytes], repeat: int) -> KernelResult:
    """The call the node makes: the mempool hashes a list of envelopes (``blake3_many``), so
    both sides start from that list and end with a list of 32-byte ids. (The packed form would
    first have to build a buffer and offsets from the list, which costs more than it saves.)"""
    import blake3 as blake3_pkg

    base_s, want, eng_s, got = paired_s(
        lambda: [blake3_pkg.blake3(e).digest() for e in envelopes],
        lambda: hashing.blake3_many(envelopes, threads=1), repeat)
    _same("tx ids", got, want)
    return _result("tx ids (blake3_many list, 1 thr)", hashing_path(), "blake3 pkg loop",
                   len(envelopes), "tx", base_s, eng_s, checksum(got),
                   "both: list of envelopes in, list of 32-byte ids out (as the mempool)")


def bench_merkle(envelopes: list[bytes], repeat: int) -> KernelResult:
    import blake3 as blake3_pkg

    from engine._reference import merkle as ref

    ids = hashing.blake3_many(envelopes)
    node_key = hashing.NODE_KEY
    empty = blake3_pkg.blake3(b"", key=node_key).digest()

    def reference() -> bytes:
        return ref.root_from_hashes(
            ids, lambda left, right: blake3_pkg.blake3(left + right, key=node_key).digest(), empty)

    base_s, want, eng_s, got = paired_s(
        reference,
        lambda: hashing.merkle_root_from_hashes(ids, threads=1), repeat)
    _same("merkle root", got, want)
    return _result("merkle root of tx ids (1 thr)", hashing_path(), "py reference",
                   len(ids), "leaf", base_s, eng_s, checksum(got),
                   "both: list of tx ids in (hashed before the clock), root out")


def bench_ed25519_single(corpus: SignatureCorpus, n: int, repeat: int) -> KernelResult:
    def engine_loop() -> list[bool]:
        return [crypto.verify(pk, m, s) for pk, m, s in
                zip(corpus.public_keys[:n], corpus.messages[:n], corpus.signatures[:n])]

    base_s, want, eng_s, got = paired_s(
        lambda: corpus.openssl_loop(n),
        engine_loop, repeat, _cold_keys)
    _same("ed25519 single", got, want)
    return _result("ed25519 verify single", crypto.native_path(), "OpenSSL loop", n, "sig",
                   base_s, eng_s, checksum(_verdict_bytes(got)),
                   "both: one call per signature, distinct keys; engine key cache emptied, "
                   "OpenSSL key objects built before the clock")


def bench_ed25519_batch(corpus: SignatureCorpus, batch: int, threads: int | None,
                        repeat: int) -> KernelResult:
    batches = max(1, min(len(corpus.messages), 4096) // batch)
    n = batches * batch

    def engine_batches() -> list[bool]:
        out: list[bool] = []
        for b in range(batches):
            sl = slice(b * batch, (b + 1) * batch)
            out += crypto.verify_batch(corpus.public_keys[sl], corpus.messages[sl],
                                       corpus.signatures[sl], threads=threads)
        return out

    base_s, want, eng_s, got = paired_s(
        lambda: corpus.openssl_loop(n),
        engine_batches, repeat, _cold_keys)
    _same(f"ed25519 batch {batch}", got, want)
    label = "all" if threads is None else str(threads)
    return _result(f"ed25519 verify_batch {batch} ({label} thr)", crypto.native_path(),
                   "OpenSSL loop", n, "sig", base_s, eng_s, checksum(_verdict_bytes(got)),
                   "both: distinct keys; engine key cache emptied, OpenSSL key objects built "
                   "before the clock; baseline one thread")


_TX_HEADER = struct.Struct("<B32sQI")


def openssl_verify_txs(envelopes: Sequence[bytes], chain_id: str) -> list[bool]:
    """The baseline of verify_txs, doing the work the native call does and no more: read each
    envelope's header (version, sender, payload length; a malformed one is False), build its
    sign bytes and verify it with OpenSSL. No tx id is hashed and no Tx object is built (the
    native call does neither)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    cid = chain_id.encode()
    prefix = txmod.TX_DOMAIN + bytes([len(cid)]) + cid
    fixed = txmod.TX_HEADER_BYTES + txmod.SIGNATURE_BYTES
    unpack = _TX_HEADER.unpack_from
    out = []
    for env in envelopes:
        if len(env) < fixed:
            out.append(False)
            continue
        version, sender, _nonce, payload_len = unpack(env)
        if version != txmod.TX_VERSION or fixed + payload_len != len(env):
            out.append(False)
            continue
        try:
            Ed25519PublicKey.from_public_bytes(sender).verify(
                env[-txmod.SIGNATURE_BYTES:], prefix + env[:-txmod.SIGNATURE_BYTES])
            out.append(True)
        except InvalidSignature:
            out.append(False)
    return out


def bench_verify_txs(envelopes: list[bytes], threads: int | None, repeat: int,
                     chain_id: str = CHAIN_ID, *, shared: bool = False) -> KernelResult:
    """``shared``: the envelopes come from few senders (one equation term per distinct key in
    the engine's batches; the OpenSSL loop verifies each signature all the same), named so."""
    base_s, want, eng_s, got = paired_s(
        lambda: openssl_verify_txs(envelopes, chain_id),
        lambda: txmod.verify_txs(envelopes, chain_id, threads=threads), repeat, _cold_keys)
    _same("verify_txs", got, want)
    label = "all" if threads is None else str(threads)
    senders = len({bytes(e[1:33]) for e in envelopes})
    name = f"verify_txs {senders} senders ({label} thr)" if shared else f"verify_txs ({label} thr)"
    return _result(name, crypto.native_path(), "parse + OpenSSL loop",
                   len(envelopes), "tx", base_s, eng_s, checksum(_verdict_bytes(got)),
                   f"both: list of envelopes in, header parse + sign bytes + verify, no tx id; "
                   f"{senders} senders, engine key cache emptied (cold); baseline one thread")


def bench_tally(validators: int, rows: int, repeat: int) -> KernelResult:
    import numpy as np

    from engine.consensus import _tally
    from engine.consensus.reference_tally import PyVoteTally

    rng = np.random.default_rng(7)
    powers = rng.integers(1, 100, validators).tolist()
    # Every validator votes in every row, some twice (duplicates and conflicts are counted too).
    r = np.repeat(np.arange(rows, dtype=np.int64), validators + validators // 10)
    v = np.concatenate([np.concatenate([np.arange(validators),
                                        rng.integers(0, validators, validators // 10)])
                        for _ in range(rows)]).astype(np.int64)
    s = rng.integers(0, 4, len(r)).astype(np.int64)

    def run(factory, rs, vs, ss) -> bytes:
        tally = factory(powers, rows)
        for _ in range(rows):
            tally.new_row()
        codes = tally.add_batch(rs, vs, ss)
        powers_out = [tally.power(row, slot) for row in range(rows) for slot in range(4)]
        return bytes(np.asarray(codes, dtype=np.int8).tobytes()) + struct.pack(
            f"<{len(powers_out)}q", *powers_out)

    # Each side gets the votes in its natural form, made before the clock: numpy arrays for the
    # native batch call, Python lists for the Python tally (iterating numpy scalars would slow
    # the baseline down with conversions that are no part of tallying).
    r_list, v_list, s_list = r.tolist(), v.tolist(), s.tolist()
    base_s, want, eng_s, got = paired_s(
        lambda: run(PyVoteTally, r_list, v_list, s_list),
        lambda: run(_tally.VoteTally, r, v, s), repeat)
    _same("vote tally", got, want)
    return _result(f"vote tally ({validators} validators)", "cython", "PyVoteTally", len(r),
                   "vote", base_s, eng_s, checksum(got),
                   "both: build the tally, one batch call (engine: numpy arrays, baseline: "
                   "lists, both made before the clock), read every power")


def bench_certificates(validators: int, count: int, repeat: int) -> KernelResult:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from engine import consensus as cs
    from engine.consensus.types import VoteType, vote_sign_bytes

    chain_id = CHAIN_ID.encode()
    keys = [crypto.SigningKey.generate() for _ in range(validators)]
    vset = cs.ValidatorSet([cs.Validator(k.public_key, 10) for k in keys])
    signers = validators * 2 // 3 + 1
    certs = []
    for h in range(1, count + 1):
        block_hash = hashing.blake3(b"block %d" % h)
        msg = vote_sign_bytes(chain_id, VoteType.PRECOMMIT, h, 0, block_hash)
        sigs = {i: keys[i].sign(msg) for i in range(signers)}
        certs.append(cs.CommitCertificate.build(h, 0, block_hash, sigs, validators))
    openssl_keys = [Ed25519PublicKey.from_public_bytes(k.public_key) for k in keys]
    powers = [10] * validators

    def baseline() -> list[bool]:
        out = []
        for c in certs:
            idx = c.signer_indices()
            power = sum(powers[i] for i in idx)
            msg = vote_sign_bytes(chain_id, VoteType.PRECOMMIT, c.height, c.round, c.block_hash)
            for i, sig in zip(idx, c.signatures):
                openssl_keys[i].verify(sig, msg)  # raises on a bad signature
            out.append(power * 3 > sum(powers) * 2)
        return out

    def engine_run() -> list[bool]:
        for c in certs:
            c.verify(chain_id, vset)  # raises ProtocolError on a bad certificate
        return [True] * len(certs)

    base_s, want, eng_s, got = paired_s(
        baseline,
        engine_run, repeat, _cold_keys)
    _same("certificates", got, want)
    return _result(f"certificate verify ({signers}/{validators})", crypto.native_path(),
                   "bitmap sum + OpenSSL", count, "cert", base_s, eng_s,
                   checksum([c.encode() for c in certs]),
                   "both: signer bitmap, power sum, sign bytes, every signature; engine key "
                   "cache emptied, OpenSSL key objects built before the clock")


def bench_block_save(block_txs: int, blocks: int, repeat: int, tx_bytes: int) -> KernelResult:
    import lmdb

    from engine.store import Store

    rng_seed = os.urandom(16)
    made: list[dict[str, Any]] = []
    for h in range(1, blocks + 1):
        txs = [hashing.blake3(rng_seed + struct.pack("<QI", h, i)) * (tx_bytes // 32 + 1)
               for i in range(block_txs)]
        txs = [t[:tx_bytes] for t in txs]
        made.append({
            "height": h, "block_hash": hashing.blake3(b"b%d" % h),
            "header": hashing.blake3(b"h%d" % h) * 6, "txs": txs,
            "certificate": bytes(13) + os.urandom(64 * 67),
            "parent_hash": hashing.blake3(b"b%d" % (h - 1)) if h > 1 else bytes(32),
            "app_hash": hashing.blake3(b"a%d" % h),
            "results": [b"\x93\x00\xa0\xc4\x00"] * block_txs,
            "tx_ids": b"".join(hashing.blake3_many(txs))})
    raw_values = [b"".join([b["header"], *b["txs"], b["certificate"], *b["results"]])
                  for b in made]
    bench_dir = os.environ.get("ENGINE_BENCH_DIR")

    def raw_puts() -> tuple[float, list[bytes]]:
        """Seconds spent in the synced puts, and the values read back after the clock."""
        with tempfile.TemporaryDirectory(dir=bench_dir) as tmp:
            env = lmdb.open(tmp, map_size=1 << 30, sync=True, metasync=True)
            try:
                start = time.perf_counter()
                for b, v in zip(made, raw_values):
                    with env.begin(write=True) as txn:
                        txn.put(struct.pack(">Q", b["height"]), v)
                elapsed = time.perf_counter() - start
                with env.begin() as txn:
                    return elapsed, [bytes(txn.get(struct.pack(">Q", b["height"])) or b"")
                                     for b in made]
            finally:
                env.close()

    def store_saves() -> tuple[float, list[bytes]]:
        """Seconds spent in the synced saves, and their tx roots."""
        with tempfile.TemporaryDirectory(dir=bench_dir) as tmp:
            store = Store(os.path.join(tmp, "store"), sync=True, map_size=1 << 30)
            try:
                start = time.perf_counter()
                out = [store.save_block(**b) for b in made]
                elapsed = time.perf_counter() - start
                if store.latest_height() != len(made):
                    raise RuntimeError("block save: the store lost blocks")
                return elapsed, out
            finally:
                store.close()

    # Opening, closing and deleting the environments, and reading the raw values back for the
    # comparison, stay outside both timed regions: each side times its writes only.
    base_s = eng_s = float("inf")
    stored: list[bytes] = []
    roots: list[bytes] = []
    for _ in range(max(1, repeat)):
        b_s, stored = raw_puts()
        e_s, roots = store_saves()
        base_s, eng_s = min(base_s, b_s), min(eng_s, e_s)
    _same("raw LMDB put", stored, raw_values)
    want = [hashing.merkle_root_from_hashes(hashing.blake3_many(b["txs"])) for b in made]
    _same("block save", roots, want)
    return _result(f"block save ({block_txs} tx, sync)", "lmdb", "raw LMDB put (sync)", blocks,
                   "block", base_s, eng_s, checksum(roots),
                   "both: the synced write transactions only (one per block; tx ids made "
                   "before the clock, as at admission); open, close and read-back untimed")


def calibration(repeat: int = 3) -> dict[str, Any]:
    """Time a fixed pure-Python workload; ``score`` is workloads per second on this machine."""
    pack = struct.Struct("<QI").pack

    def workload() -> int:
        table: dict[bytes, int] = {}
        acc = 0
        for i in range(CALIBRATION_OPS):
            key = pack(i & 4095, i)[:8]
            table[key] = table.get(key, 0) + i
            acc = (acc * 31 + len(key) + i) & 0xFFFFFFFF
        return acc + len(table)

    seconds, out = best_s(workload, repeat)
    return {"name": "pure-Python dict/struct loop", "ops": CALIBRATION_OPS,
            "seconds": round(seconds, 6), "score": round(1.0 / seconds, 4), "checksum": out}


#: Kernels measured again on the narrower SIMD path (``avx2``) when the CPU selects a wider one,
#: so that one report carries the figures of both kinds of validator machine.
NARROWER_PATH_KERNELS = ("tx_ids", "merkle", "ed25519_single", "ed25519_batch")


def narrower_path() -> str | None:
    """``avx2`` when this CPU runs a wider path by default and can also run avx2, else None."""
    import engine

    info = engine.native_info()
    kernels = info["kernels"]
    if "avx2" not in info["isa_supported"] or info["forced_isa"] is not None:
        return None
    return "avx2" if any(v not in ("avx2", "portable") for v in kernels.values()) else None


def force_path(isa: str | None) -> None:
    """Run both native kernels (hashing and Ed25519) on ``isa`` (None: the default again)."""
    from engine import _native_ed25519, _native_hash

    _native_hash._force_isa(isa)
    _native_ed25519._force_isa(isa)


def hashing_path() -> str:
    import engine

    return str(engine.native_info()["kernels"].get("blake3", "?"))


@contextlib.contextmanager
def hashing_on_avx2() -> Iterator[str]:
    """The engine's BLAKE3 kernels on avx2 for the duration: already there (an AVX2-only CPU, or
    ENGINE_FORCE_ISA=avx2), or forced in this process on a CPU that selects a wider path. Yields
    "" when that is so, else the reason it cannot be (no avx2 here, or ENGINE_FORCE_ISA names
    another path)."""
    import engine
    from engine import _native_hash

    info = engine.native_info()
    if info["kernels"]["blake3"] == "avx2":
        yield ""
    elif info["forced_isa"] is not None:
        yield f"ENGINE_FORCE_ISA={info['forced_isa']} runs BLAKE3 on {info['kernels']['blake3']}"
    elif "avx2" not in info["isa_supported"]:
        yield "this CPU has no avx2 path"
    else:
        _native_hash._force_isa("avx2")
        try:
            yield ""
        finally:
            _native_hash._force_isa(None)


def bench_packed_vs_c_avx2(count: int, bulk_bytes: int, repeat: int) -> KernelResult | str:
    """Issue 18's AVX2 throughput target: ``blake3_many_packed`` on ``count`` x 250 B [from
    buffer], avx2, against the BLAKE3 team's C library with AVX-512 compiled out (its AVX2
    assembly kernel) hashing one ``bulk_bytes`` buffer, one thread each. Per KiB hashed, so the
    ratio is the engine's share of that bulk rate (the target is 0.9). A string says why the
    line cannot run here."""
    import blake3 as blake3_pkg

    from engine.benchmarks import blake3_c_avx2

    lib = blake3_c_avx2.load()
    if lib is None:
        return blake3_c_avx2.why_unavailable()
    bulk = os.urandom(bulk_bytes)
    messages = [os.urandom(PACKED_MESSAGE_BYTES) for _ in range(count)]
    data = b"".join(messages)
    offsets = array.array("Q", range(0, (count + 1) * PACKED_MESSAGE_BYTES, PACKED_MESSAGE_BYTES))
    _same("C library bulk", lib.hash(bulk), blake3_pkg.blake3(bulk).digest())
    with hashing_on_avx2() as reason:
        if reason:
            return reason
        path = hashing_path()
        base_s, _, eng_s, got = paired_s(
            lambda: lib.hash(bulk),
            lambda: hashing.blake3_many_packed(data, offsets, threads=1), repeat)
    _same("blake3_many_packed avx2", got, b"".join(blake3_pkg.blake3(m).digest()
                                                   for m in messages))
    base_us_kib = base_s / (bulk_bytes / 1024) * 1e6
    eng_us_kib = eng_s / (len(data) / 1024) * 1e6
    return KernelResult(
        "blake3_many_packed vs C avx2 bulk", path, "C 1.3.1 avx2 asm bulk",
        len(data) // 1024, "KiB", round(base_us_kib, 4), round(eng_us_kib, 4),
        round(base_us_kib / eng_us_kib, 3), checksum(got),
        f"both: one thread; engine {count:,} x {PACKED_MESSAGE_BYTES} B packed [from buffer] "
        f"on avx2; baseline {lib.label} ({lib.deb_version}) on one {bulk_bytes >> 20} MiB "
        f"buffer; per KiB hashed, target 0.9x")


# ---- the whole run ---------------------------------------------------------------------------

#: Senders of the shared-key verify_txs line.
SHARED_SENDERS = 64

KERNEL_NAMES = ("tx_ids", "merkle", "ed25519_single", "ed25519_batch", "verify_txs", "tally",
                "certificates", "block_save", "sm", "avx2_bulk")


def run_kernels(*, quick: bool = False, only: Sequence[str] | None = None,
                tx_bytes: int = TX_BYTES_DEFAULT,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the kernels (all, or those named in ``only``) and return the report section."""
    unknown = sorted(set(only or ()) - set(KERNEL_NAMES))
    if unknown:
        raise ValueError(f"only names unknown kernels {unknown}; known: {list(KERNEL_NAMES)}")
    wanted = set(only or KERNEL_NAMES)
    size = SIZES["quick" if quick else "full"]
    repeat = size["repeat"]
    say = progress or (lambda _line: None)
    results: list[KernelResult] = []

    def add(result: KernelResult) -> None:
        results.append(result)
        say(result.line())

    say(HEADER)
    # One sender per envelope: the "cold keys" verify_txs run then decompresses every key, as
    # OpenSSL does (64 senders let the engine's key cache turn all but 64 lookups into hits).
    envelopes = make_envelopes(size["txs"], tx_bytes, senders=size["txs"]) if wanted & {
        "tx_ids", "merkle", "verify_txs"} else []
    if "tx_ids" in wanted:
        add(bench_tx_ids(envelopes, repeat))
    if "merkle" in wanted:
        add(bench_merkle(envelopes, repeat))
    if wanted & {"ed25519_single", "ed25519_batch"}:
        corpus = SignatureCorpus(4096 if not quick else 1024)
        if "ed25519_single" in wanted:
            add(bench_ed25519_single(corpus, size["single"], repeat))
        if "ed25519_batch" in wanted:
            for batch in (64, 1024):
                for threads in (1, None):
                    add(bench_ed25519_batch(corpus, batch, threads, repeat))
    narrower = narrower_path()
    if narrower and wanted & set(NARROWER_PATH_KERNELS):
        force_path(narrower)
        try:
            if "tx_ids" in wanted:
                add(bench_tx_ids(envelopes, repeat))
            if "merkle" in wanted:
                add(bench_merkle(envelopes, repeat))
            if "ed25519_single" in wanted:
                add(bench_ed25519_single(corpus, size["single"], repeat))
            if "ed25519_batch" in wanted:
                for batch in (64, 1024):
                    add(bench_ed25519_batch(corpus, batch, 1, repeat))
        finally:
            force_path(None)
    if "avx2_bulk" in wanted:  # optional: needs apt-get, dpkg-deb and a C compiler
        row = bench_packed_vs_c_avx2(size["packed"], size["bulk_bytes"], repeat)
        if isinstance(row, str):
            say(f"blake3_many_packed vs C avx2 bulk: skipped ({row})")
        else:
            add(row)
    if "verify_txs" in wanted:
        for threads in (1, None):
            add(bench_verify_txs(envelopes, threads, repeat))
        # The same count from 64 senders: a regression of the per-key terms shows here.
        add(bench_verify_txs(make_envelopes(size["txs"], tx_bytes, senders=SHARED_SENDERS), 1,
                             repeat, shared=True))
    if "tally" in wanted:
        add(bench_tally(size["validators"], size["votes_rows"], repeat))
    if "certificates" in wanted:
        add(bench_certificates(size["validators"], size["certs"], repeat))
    if "block_save" in wanted:
        add(bench_block_save(size["block_txs"], size["blocks"], repeat, tx_bytes))
    if "sm" in wanted:  # SM2 / SM3 against OpenSSL 3 (engine/benchmarks/sm.py)
        from engine.benchmarks import sm as sm_bench

        for result in sm_bench.kernel_results(quick=quick, repeat=repeat):
            add(result)
    calib = calibration()
    say(f"calibration: {calib['name']}, {calib['seconds'] * 1e3:.1f} ms per run "
        f"(score {calib['score']:.2f}/s)")
    return {"quick": quick, "tx_bytes": tx_bytes, "results": [asdict(r) for r in results],
            "calibration": calib}
