"""Flip bytes inside data.mdb at random offsets: every read must either detect the damage
(StoreCorruption / StoreError with a clear message) or return exactly the original data; the
process must never crash. Each trial runs in a forked child so a segfault is seen, not suffered.
"""
import os
import random
import shutil

import pytest

from engine.store import Store, StoreError, check_store
from tests.store.helpers import save

TRIALS = int(os.environ.get("ENGINE_CORRUPTION_TRIALS", "150"))
# A fixed seed by default, so a run of the suite is reproducible; ENGINE_CORRUPTION_SEED=random
# (or any number) explores further. Known limit, found that way: seed 509953218 (trial 141)
# flips a high bit of a large value's size in an LMDB leaf node, and py-lmdb 3.0 touches every
# page of a value it returns (its "preload") before the store can look at it, so the process
# takes SIGBUS reading past the end of the file. Nothing in Python runs between LMDB and that
# read; the store cannot turn it into an error (README, "Store": corruption).
_SEED = os.environ.get("ENGINE_CORRUPTION_SEED", "20261204")
SEED = random.randrange(1 << 30) if _SEED == "random" else int(_SEED)


def _snapshot(store: Store) -> dict:
    """Everything readable, as plain values."""
    blocks = [(b.height, b.block_hash, b.parent_hash, b.header, tuple(b.txs), tuple(b.results),
               b.certificate, b.app_hash, b.tx_root) for b in store.blocks(1)]
    some_txs = [store.find_tx(__import__("engine.hashing").hashing.blake3(b[4][0]))
                for b in blocks if b[4]][:5]
    return {"latest": store.latest_height(), "base": store.base_height(), "blocks": blocks,
            "state": store.state_items(), "wal": store.wal_replay(store.latest_height() + 1),
            "signer": store.signer_record(), "txs": some_txs}


def _build(path: str) -> dict:
    with Store(path) as s:
        for h in range(1, 25):
            save(s, h, n_txs=[0, 3, 40, 300][h % 4], tx_bytes=[50, 250, 1200][h % 3])
        assert s.compact_index() == 1  # heights 1..16 merged into tx_index, 17..24 pending
        for i in range(3):
            s.wal_append(25, b"wal entry %d" % i)
        s.sign_guarded(25, 0, 1, b"sign bytes", lambda b: b"s" * 64)
        assert check_store(s).ok
        return _snapshot(s)


def _trial(path: str, expected: dict) -> str:
    """Runs in the child: 'detected: ...', 'identical' or 'WRONG: ...'."""
    try:
        with Store(path, readonly=True) as s:
            report = check_store(s)
            if not report.ok:
                return "detected: " + report.problems[0]
            got = _snapshot(s)
    except StoreError as e:
        return f"detected: {e}"
    for name, value in expected.items():
        if got[name] != value:
            return f"WRONG: check passed but {name} differs"
    return "identical"


def _run_forked(path: str, expected: dict) -> tuple[int, str]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            out = _trial(path, expected)
        except BaseException as e:  # noqa: BLE001 - any other exception is a finding to report
            out = f"UNCLEAR: {type(e).__name__}: {e}"
        os.write(w, out.encode()[:4000])
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, b"".join(chunks).decode(errors="replace")


def test_random_byte_flips_are_detected_or_harmless(tmp_path):
    rng = random.Random(SEED)
    pristine = str(tmp_path / "pristine")
    expected = _build(pristine)
    size = os.path.getsize(os.path.join(pristine, "data.mdb"))
    outcomes = {"detected": 0, "identical": 0}
    for trial in range(TRIALS):
        work = str(tmp_path / "work")
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        offsets = []
        with open(os.path.join(work, "data.mdb"), "r+b") as f:
            for _ in range(rng.choice([1, 1, 2, 8])):
                off = rng.randrange(size)
                f.seek(off)
                old = f.read(1)[0]
                f.seek(off)
                f.write(bytes([old ^ (1 << rng.randrange(8))]))
                offsets.append(off)
        status, out = _run_forked(work, expected)
        where = f"trial {trial} offsets {offsets} (ENGINE_CORRUPTION_SEED={SEED})"
        assert os.WIFEXITED(status), f"{where}: child killed by signal {os.WTERMSIG(status)}"
        assert out.startswith(("detected", "identical")), f"{where}: {out}"
        outcomes[out.split(":")[0]] += 1
    print(f"corruption trials: {outcomes} (ENGINE_CORRUPTION_SEED={SEED})")
    assert outcomes["detected"] > 0


@pytest.mark.parametrize("db", ["blocks", "commits", "block_hashes", "tx_index", "state", "meta",
                                "wal", "signer"])
def test_flipped_record_in_each_database_is_named(tmp_path, db):
    """A flip inside one record's value (bypassing LMDB) is reported with database and key."""
    path = str(tmp_path / "s")
    _build(path)
    with Store(path) as s:
        def flip(txn):
            cur = txn.cursor(db=s._dbs[db])
            assert cur.last()
            key, value = bytes(cur.key()), bytearray(cur.value())
            value[len(value) // 2] ^= 0x10
            txn.put(key, bytes(value), db=s._dbs[db])
        s._write(flip)
        report = check_store(s)
        assert not report.ok
        assert f"'{db}'" in report.summary(), report.summary()
