"""Issue 14, item 3: fewer synced writes per height.

The store runs LMDB with ``metasync=False``: a write transaction flushes its data pages once and
writes its meta page without a flush of its own (durable with the next flush), so block saves,
WAL records of received inputs and index compaction cost one flush instead of two; ``durable``
writes (signatures, genesis, state-sync restores) flush once more, which also makes every
earlier transaction durable. Several signatures of one consensus step share one durable
transaction (``sign_guarded_many``).

The flushes are counted as the kernel sees them: a child process runs the store under strace
and every ``fdatasync``/``fsync``/``msync`` call, and every write to a descriptor opened with
``O_DSYNC``/``O_SYNC`` (how LMDB flushes a meta page when metasync is on), counts as one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from engine.sim.storage import MemoryWalStore
from engine.store import DoubleSignRefused, Store
from tests.store.helpers import block_args

STRACE = shutil.which("strace")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent("""
    import json, os, sys
    from engine.store import Store
    from tests.store.helpers import block_args
    store = Store(sys.argv[1])
    store.save_block(**block_args(1))
    def mark(name):  # a marker syscall that strace sees between the operations
        os.access("/mark-" + name, os.F_OK)
    mark("sign")
    store.sign_guarded(2, 0, 1, b"prevote", lambda _: b"S" * 64, wal_entry=lambda s: b"w")
    mark("sign_many")
    store.sign_guarded_many([(2, 0, 2, b"precommit", b"P" * 64, b"w2"),
                             (2, 1, 0, b"proposal", b"Q" * 64, b"w3")])
    mark("save")
    store.save_block(**block_args(2))
    mark("wal")
    store.wal_append_many([(3, b"vote")], sync=False)
    mark("end")
    os._exit(0)  # no close(): its final flush is not part of what is counted
""")


def _flushes_between_marks(store_dir: str) -> dict[str, int]:
    out = subprocess.run(
        [STRACE, "-f", "-qq", "-e",
         "trace=openat,fdatasync,fsync,msync,pwrite64,write,pwritev,access",
         "-o", "/dev/stderr", sys.executable, "-c", CHILD, store_dir],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": ROOT})
    if out.returncode != 0 and ("ptrace" in out.stderr or "Operation not permitted" in out.stderr):
        pytest.skip(f"strace cannot trace here: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr[-2000:]
    sync_fds: set[str] = set()
    counts: dict[str, int] = {}
    current = None
    for line in out.stderr.splitlines():
        m = re.search(r'access\("/mark-(\w+)"', line)
        if m:
            current = m.group(1)
            counts.setdefault(current, 0)
            continue
        m = re.search(r'openat\(.*"(.*?\.mdb)", ([A-Z_|]+).*= (\d+)$', line)
        if m:
            if "O_DSYNC" in m.group(2) or "O_SYNC" in m.group(2):
                sync_fds.add(m.group(3))
            continue
        if current is None or current == "end":
            continue
        m = re.search(r"(fdatasync|fsync|msync|pwrite64|write|pwritev)\((\d+)", line)
        if m and (m.group(1) in ("fdatasync", "fsync", "msync") or m.group(2) in sync_fds):
            counts[current] += 1
    return counts


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (.ci/run installs it)")
def test_flushes_per_write_kind(tmp_path):
    counts = _flushes_between_marks(str(tmp_path / "store"))
    print("\nflushes per write:", json.dumps(counts))
    # A signature: its data flush and a forced flush that puts its meta page on disk.
    assert counts["sign"] == 2, counts
    # Two signatures of one step: the same two flushes for both.
    assert counts["sign_many"] == 2, counts
    # A block save, received WAL records: one flush each (was two: the meta page was written
    # through an O_DSYNC descriptor).
    assert counts["save"] == 1, counts
    assert counts["wal"] == 1, counts


def test_a_durable_write_flushes_after_its_commit(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.save_block(**block_args(1))
        assert s.flushes_durable == 0  # a block save is ordered, not durable by itself
        s.sign_guarded(2, 0, 1, b"v", lambda _: b"S" * 64)
        s.sign_guarded_many([(2, 0, 2, b"w", b"T" * 64, b"rec")])
        assert s.flushes_durable == 2
    with Store(str(tmp_path / "s2"), sync=False) as s:  # sync=False: durable writes still flush
        s.sign_guarded(2, 0, 1, b"v", lambda _: b"S" * 64)
        assert s.flushes_durable == 1


def test_signatures_of_one_step_in_one_transaction(store):
    store.sign_guarded_many([(5, 0, 0, b"proposal", b"P" * 64, b"rec-p"),
                             (5, 0, 1, b"prevote", b"V" * 64, b"rec-v")],
                            wal_before=[(5, b"input")])
    rec = store.signer_record()
    assert (rec.height, rec.round, rec.step, rec.sign_bytes, rec.signature) == \
        (5, 0, 1, b"prevote", b"V" * 64)
    assert store.signer_history() == [(0, 0, b"proposal", b"P" * 64),
                                      (0, 1, b"prevote", b"V" * 64)]
    assert store.wal_replay(5) == [b"input", b"rec-p", b"rec-v"]
    # The same signatures again (a re-sent step after a replay): nothing new is written.
    store.sign_guarded_many([(5, 0, 1, b"prevote", b"V" * 64, b"rec-v")])
    assert store.wal_replay(5) == [b"input", b"rec-p", b"rec-v"]


@pytest.mark.parametrize("entries", [
    # The second is below the first: refused against the record the first leaves.
    [(5, 0, 2, b"precommit", b"C" * 64, b"c"), (5, 0, 1, b"prevote", b"V" * 64, b"v")],
    # Other bytes at a step already signed.
    [(4, 0, 1, b"prevote", b"V" * 64, b"v"), (4, 0, 1, b"other", b"O" * 64, b"o")],
    # Below the record already on disk.
    [(3, 9, 2, b"old", b"O" * 64, b"o")],
])
def test_one_refusal_writes_nothing_of_the_step(store, entries):
    store.sign_guarded(4, 0, 0, b"proposal", lambda _: b"P" * 64, wal_entry=lambda s: b"p")
    before = (store.signer_record(), store.signer_history(), store.wal_replay(4),
              store.wal_replay(5))
    with pytest.raises(DoubleSignRefused):
        store.sign_guarded_many(entries, wal_before=[(4, b"buffered input")])
    assert (store.signer_record(), store.signer_history(), store.wal_replay(4),
            store.wal_replay(5)) == before


def test_bad_entries_name_themselves(store):
    with pytest.raises(TypeError, match="tuples"):
        store.sign_guarded_many([(1, 0, 0, b"x", b"s")])
    with pytest.raises(ValueError, match="height"):
        store.sign_guarded_many([(0, 0, 0, b"x", b"s" * 64, b"w")])
    with pytest.raises(TypeError, match="signature"):
        store.sign_guarded_many([(1, 0, 0, b"x", None, b"w")])
    assert store.signer_record() is None


def test_the_simulator_model_agrees_with_the_store(store):
    """The simulator runs the driver over MemoryWalStore: its sign_guarded_many must judge and
    record as the store does, refusals included (all or nothing)."""
    import random

    rng = random.Random(7)
    model = MemoryWalStore()
    for _ in range(300):
        n = rng.randint(1, 3)
        h = rng.randint(1, 4)
        entries = []
        for _ in range(n):
            r, st = rng.randint(0, 2), rng.randint(0, 2)
            sb = rng.choice([b"a", b"b"]) + bytes([h, r, st])
            entries.append((h, r, st, sb, b"S" + sb * 16, b"rec" + sb))
        results = []
        for target in (store, model):
            try:
                target.sign_guarded_many(entries, wal_before=[(h, b"in")])
                results.append("ok")
            except DoubleSignRefused:
                results.append("refused")
        assert results[0] == results[1], entries
        rec, mrec = store.signer_record(), model.signer_record()
        assert (rec is None) == (mrec is None)
        if rec is not None:
            assert (rec.height, rec.round, rec.step, rec.sign_bytes, rec.signature) == \
                (mrec.height, mrec.round, mrec.step, mrec.sign_bytes, mrec.signature)
        assert [(r, s, bytes(b), bytes(g)) for r, s, b, g in store.signer_history()] == \
            model.signer_history()
        for height in range(1, 5):
            assert store.wal_replay(height) == model.wal_replay(height)
