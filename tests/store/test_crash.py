"""Crash trials with real processes: SIGKILL a writer at random moments, then verify the store.

`make test` runs ENGINE_CRASH_TRIALS (default 20) trials; `make test-crash` runs 200+.
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

from engine.hashing import blake3
from engine.store import Store, check_store
from tests.store.crash_child import block_content, fake_sign, sign_bytes, valset_record

CHILD = os.path.join(os.path.dirname(__file__), "crash_child.py")
TRIALS = int(os.environ.get("ENGINE_CRASH_TRIALS", "20"))
SEED = int(os.environ.get("ENGINE_CRASH_SEED", str(random.randrange(1 << 30))))


def _run_child(path: str, kill_after_s: float) -> list[str]:
    proc = subprocess.Popen([sys.executable, CHILD, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def reader():
        for line in proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill names nothing for sure
                lines.append(line.split())
            ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert ready.wait(30), proc.stderr.read() if proc.poll() is not None else "child not ready"
    time.sleep(kill_after_s)
    proc.kill()
    proc.wait()
    t.join(10)
    err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, f"child died by itself: {err}"
    return lines


def _verify(path: str, lines, previous: dict) -> dict:
    blocks = [int(x[1]) for x in lines if x[0] == "block"]
    signs = [tuple(map(int, x[1:4])) for x in lines if x[0] == "sign"]
    wals = [tuple(map(int, x[1:4])) for x in lines if x[0] == "wal"]
    with Store(path) as store:
        report = check_store(store)
        assert report.ok, report.summary()
        latest = store.latest_height()
        prunes = [int(x[1]) for x in lines if x[0] == "prune"]
        assert store.base_height() >= max(prunes, default=0), "a reported prune was undone"
        compacted = [int(x[1]) for x in lines if x[0] == "compact"]
        assert store._read(store._indexed_height) >= max(compacted, default=0), \
            "a reported index compaction was undone"
        assert latest >= previous["latest"], "latest height went backwards"
        assert latest >= max(blocks, default=0), "a block reported durable is missing"
        for h in blocks[-3:] + [latest]:
            if h == 0:
                continue
            stored, want = store.load_block(h), block_content(h)
            assert stored.block_hash == want["block_hash"] and stored.txs == want["txs"]
            assert stored.results == want["results"] and stored.header == want["header"]
            assert stored.certificate == want["certificate"]
            found = store.find_txs([blake3(tx) for tx in want["txs"]])
            assert [(f.height, f.index) for f in found] == \
                [(h, i) for i in range(len(want["txs"]))], "tx index lost a block's entries"
        # The set history holds exactly the records of the committed blocks (same txn).
        assert store.validator_sets() == [r for h in range(1, latest + 1)
                                          if (r := valset_record(h)) is not None], \
            "validator-set history disagrees with the committed blocks"
        if latest:
            assert store.state_get(b"height") == b"%d" % latest, "state not in the block's txn"
            assert store.app_hash() == blake3(b"app %d" % latest)
        state = store.signer_record()
        hrs = (state.height, state.round, state.step) if state else (0, 0, 0)
        assert hrs >= previous["signer"], "signer state regressed"
        assert hrs >= max(signs, default=(0, 0, 0)), "a reported signature is not recorded"
        if state:
            assert state.sign_bytes == sign_bytes(*hrs)
            assert state.signature == fake_sign(state.sign_bytes)
            # Every reported signature of the record's height is in its history (written one
            # by one or together by sign_guarded_many), so a lost WAL loses no vote.
            history = {(r, st) for r, st, _, _ in store.signer_history()}
            assert {(r, st) for h, r, st in signs if h == state.height} <= history, \
                "a reported signature of the current height is missing from the history"
        for h, seq, k in wals:  # a reported WAL entry of an uncommitted height is there
            if h > latest:
                assert store.wal_replay(h)[seq] == b"wal %d %d" % (h, k)
        for h in store.wal_heights():
            assert h > latest, "WAL of a committed height survived"
    return {"latest": latest, "signer": hrs}


def test_sigkill_crash_trials(tmp_path):
    rng = random.Random(SEED)
    print(f"crash trials: ENGINE_CRASH_SEED={SEED} ENGINE_CRASH_TRIALS={TRIALS}")
    path = str(tmp_path / "store")
    state = {"latest": 0, "signer": (0, 0, 0)}
    for trial in range(TRIALS):
        lines = _run_child(path, rng.uniform(0.0, 0.25))
        try:
            state = _verify(path, lines, state)
        except AssertionError as e:
            raise AssertionError(f"trial {trial} (ENGINE_CRASH_SEED={SEED}): {e}") from None

    assert state["latest"] > 0, "the child never committed a block"
    print(f"crash trials: {TRIALS} kills, latest height {state['latest']}")
