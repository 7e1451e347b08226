"""Crash trials: SIGKILL during a snapshot restore and during pruning, at random instants.
A restore is all or nothing (an empty store restarts state sync; a whole one continues by block
sync); pruning leaves a consistent store whose base only moved forward, and goes on."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading

from engine.hashing import blake3
from engine.store import Store, check_store
from tests.node.crash_sync_child import RESTORE_HEIGHT, entries, tip_block

CHILD = os.path.join(os.path.dirname(__file__), "crash_sync_child.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRIALS = int(os.environ.get("ENGINE_CRASH_TRIALS", "4"))
SEED = int(os.environ.get("ENGINE_CRASH_SEED", str(random.randrange(1 << 30))))


def _run_child(args: list[str], kill_after_s: float) -> list[list[str]]:
    proc = subprocess.Popen([sys.executable, CHILD, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT})
    lines: list[list[str]] = []
    ready = threading.Event()

    def reader():
        for line in proc.stdout:
            if line.endswith("\n"):
                lines.append(line.split())
            ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert ready.wait(60), proc.stderr.read() if proc.poll() is not None else "not ready"
    try:
        proc.wait(kill_after_s)  # a child that finishes first is not killed
    except subprocess.TimeoutExpired:
        proc.kill()
    proc.wait()
    t.join(10)
    return lines


def test_kill_during_restore_leaves_all_or_nothing(tmp_path):
    rng = random.Random(SEED)
    n = 150_000
    outcomes = set()
    for trial in range(TRIALS):
        path = str(tmp_path / f"s{trial}")
        # The first trial dies at once, the last one finishes: both outcomes are seen.
        delay = 0.0 if trial == 0 else 60.0 if trial == TRIALS - 1 else rng.uniform(0.0, 2.5)
        lines = _run_child(["restore", path, str(n)], delay)
        with Store(path) as store:
            latest = store.latest_height()
            if ["restored"] in lines:
                assert latest == RESTORE_HEIGHT, f"seed {SEED}: acknowledged restore lost"
            if latest == 0:  # nothing: the node would run state sync again
                assert store.state_items() == [] and store.base_height() == 0
                outcomes.add("empty")
                continue
            assert latest == RESTORE_HEIGHT and store.base_height() == RESTORE_HEIGHT
            items = store.state_items()
            assert items == entries(n), f"seed {SEED}: half a state"
            b = tip_block()
            block = store.load_block(RESTORE_HEIGHT)
            assert block is not None and block.block_hash == b["block_hash"]
            assert block.txs == b["txs"] and store.app_hash() == b["app_hash"]
            assert store.load_certificate(RESTORE_HEIGHT) == b["certificate"]
            report = check_store(store)
            assert report.ok, report.summary()
            outcomes.add("whole")
    assert outcomes == {"empty", "whole"}, f"seed {SEED}: {outcomes}"


def _blocks(path: str, count: int) -> None:
    with Store(path, sync=False) as s:
        parent = bytes(32)
        for h in range(1, count + 1):
            block_hash = blake3(b"block %d" % h)
            s.save_block(h, block_hash, b"header %d" % h, [b"tx %d %d" % (h, i) for i in range(30)],
                         b"cert %d" % h, parent_hash=parent, app_hash=blake3(b"app %d" % h),
                         state_changes=[(b"k%d" % (h % 97), b"v%d" % h)])
            if h % 64 == 0:
                s.compact_index()
            parent = block_hash


def test_kill_during_pruning_leaves_a_consistent_store_that_prunes_on(tmp_path):
    rng = random.Random(SEED)
    path = str(tmp_path / "store")
    count = 1500
    _blocks(path, count)
    with Store(path) as s:
        state_before = s.state_items()
    base = 1
    for _ in range(TRIALS):
        lines = _run_child(["prune", path], rng.uniform(0.0, 0.4))
        acked = [int(x[1]) for x in lines if x[0] == "base"]
        with Store(path) as s:
            now = s.base_height()
            assert now >= max([base, *acked]), f"seed {SEED}: base went back or lost a step"
            assert s.latest_height() == count and s.state_items() == state_before
            report = check_store(s)
            assert report.ok, f"seed {SEED}: {report.summary()}"
            assert s.load_block(now) is not None
            if now > 1:
                assert s.load_block(now - 1) is None
            # The tx index answers for kept blocks and forgets pruned ones.
            assert s.find_tx(blake3(b"tx %d 3" % count)) is not None
            if now > 2:
                assert s.find_tx(blake3(b"tx %d 3" % (now - 1))) is None
            base = now
    _run_child(["prune", path], 60)  # let it finish
    with Store(path) as s:
        assert s.base_height() == count - 49
        assert check_store(s).ok
