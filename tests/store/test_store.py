"""Store API: blocks, tx lookups and proofs, state, WAL, signer guard, errors, paths, growth,
pruning."""
import os
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest

from engine.hashing import blake3, verify_merkle_proof
from engine.store import (
    DoubleSignRefused,
    Store,
    StoreCorruption,
    StoreError,
    _txindex,
    check_store,
)
from engine.store import store as store_module
from tests.store.helpers import block_args, save


def test_blocks_round_trip_and_range_reads(store):
    saved = [save(store, h, n_txs=h % 4 * 7) for h in range(1, 40)]
    assert store.latest_height() == 39 and store.base_height() == 1
    for args in saved:
        block = store.load_block(args["height"])
        assert block.txs == args["txs"] and block.header == args["header"]
        assert block.certificate == args["certificate"] and block.results == args["results"]
        assert block.app_hash == args["app_hash"] and block.parent_hash == args["parent_hash"]
        assert store.load_block_by_hash(args["block_hash"]).height == args["height"]
    assert [b.height for b in store.blocks(5, 100)] == list(range(5, 40))
    assert [b.height for b in store.blocks(1)] == list(range(1, 40))
    assert store.load_block(40) is None and store.load_block_by_hash(b"\1" * 32) is None
    assert store.load_certificate(7) == b"cert 7"
    assert store.app_hash(7) == blake3(b"app 7") and store.app_hash() == blake3(b"app 39")
    assert check_store(store).ok


def test_blocks_must_be_saved_in_order_with_matching_parent(store):
    save(store, 1)
    with pytest.raises(StoreError, match="in order"):
        save(store, 3)
    bad = block_args(2)
    bad["parent_hash"] = b"\7" * 32
    with pytest.raises(StoreError, match="parent_hash"):
        store.save_block(**bad)
    assert store.latest_height() == 1
    save(store, 2)


def test_tx_lookup_and_inclusion_proof(store):
    saved = [save(store, h, n_txs=50) for h in range(1, 30)]  # enough blocks to merge runs
    for args in saved[::7]:
        for index in (0, 17, 49):
            tx = args["txs"][index]
            loc = store.find_tx(blake3(tx))
            assert (loc.height, loc.index, loc.tx) == (args["height"], index, tx)
            proof = store.tx_proof(blake3(tx))
            assert verify_merkle_proof(proof.tx_root, tx, proof.proof)
            assert not verify_merkle_proof(proof.tx_root, tx + b"x", proof.proof)
    assert store.find_tx(blake3(b"never committed")) is None
    with pytest.raises(ValueError, match="tx_id"):
        store.find_tx(b"short")


def test_tx_index_prefix_collision_is_resolved_by_the_full_id(store, monkeypatch):
    """Two entries sharing an 8-byte id prefix: the lookup must return the tx asked for (a
    real collision needs ~2**32 hashes, so the block's run is given one)."""
    a, b = b"tx a" * 10, b"tx b" * 10
    real_run = store_module._codec.block_run

    def colliding_run(ids, height):
        entries = np.frombuffer(real_run(ids, height), "<u8").reshape(-1, 2).copy()
        entries[:, 0] = int.from_bytes(blake3(a)[:8], "big")  # b's entry now collides with a's
        return entries.tobytes()

    monkeypatch.setattr(store_module._codec, "block_run", colliding_run)
    args = block_args(1, n_txs=0)
    args["txs"] = [b, a]  # the wrong candidate (b, index 0) is tried first
    args["results"] = []
    store.save_block(**args)
    monkeypatch.undo()
    loc = store.find_tx(blake3(a))
    assert (loc.height, loc.index, loc.tx) == (1, 1, a)
    assert store.find_tx(blake3(b)) is None  # its entry was overwritten: not found, no crash
    problems = check_store(store).problems  # and check sees the run disagree with the txs
    assert any("tx index run does not match" in p for p in problems), problems


def test_tx_index_merges_into_few_runs(store):
    for h in range(1, 1 + _txindex.TX_INDEX_MERGE_FANOUT ** 2):
        save(store, h, n_txs=3)
    runs = store.info()["databases"]["tx_index"]["entries"]
    assert runs <= 2 * (_txindex.TX_INDEX_MERGE_FANOUT - 1)
    assert check_store(store).ok


def test_tx_index_stays_small_when_block_sizes_straddle_a_tier(store):
    """Blocks of sizes from different tiers in turn (e.g. 3,000 and 5,000 transactions at
    fanout 16) must still merge: the run count stays bounded and every id is found."""
    fanout = _txindex.TX_INDEX_MERGE_FANOUT
    small, big = fanout - 1, fanout + 1  # tiers 0 and 1
    for h in range(1, 1 + 6 * fanout):
        save(store, h, n_txs=small if h % 2 else big)
    runs = store.info()["databases"]["tx_index"]["entries"]
    assert runs <= 3 * (fanout - 1), runs
    for h in (1, 2, 3 * fanout, 6 * fanout):
        for i, tx in enumerate(store.load_block(h).txs):
            loc = store.find_tx(blake3(tx))
            assert (loc.height, loc.index) == (h, i)
    assert check_store(store).ok


def test_state_changes_apply_with_the_block(store):
    args = block_args(1)
    args["state_changes"] = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    store.save_block(**args)
    args = block_args(2)
    args["state_changes"] = [(b"b", None), (b"c", b"33")]
    store.save_block(**args)
    assert store.state_items() == [(b"a", b"1"), (b"c", b"33")]
    assert store.state_get(b"b") is None and store.state_get(b"c") == b"33"
    assert store.state_items(b"c") == [(b"c", b"33")]
    keys = [b"c", b"b", b"a", b"zz", b"c"]
    assert store.state_get_many(keys) == [store.state_get(k) for k in keys] \
        == [b"33", None, b"1", None, b"33"]
    assert store.state_get_many([]) == []
    with pytest.raises(ValueError, match="keys must not be empty"):
        store.state_get_many([b"a", b""])
    with pytest.raises(TypeError, match=r"keys\[\] must be bytes"):
        store.state_get_many([b"a", "b"])


def test_state_changes_to_one_key_apply_in_order(store):
    """Puts to distinct keys go in one call; a block naming a key twice (or mixing deletes)
    keeps the order of its changes: the last one wins."""
    args = block_args(1)
    args["state_changes"] = [(b"k%d" % i, b"v%d" % i) for i in range(300)]
    store.save_block(**args)
    assert store.state_get_many([b"k0", b"k150", b"k299"]) == [b"v0", b"v150", b"v299"]
    args = block_args(2)
    args["state_changes"] = [(b"x", b"1"), (b"x", b"2"), (b"k1", None), (b"y", b"1"),
                             (b"y", None), (b"k2", b"new")]
    store.save_block(**args)
    assert store.state_get_many([b"x", b"k1", b"y", b"k2"]) == [b"2", None, None, b"new"]
    args = block_args(3)
    args["state_changes"] = [(b"z", b"1"), (b"z", b"2")]  # puts only, not distinct
    store.save_block(**args)
    assert store.state_get(b"z") == b"2"
    assert check_store(store).ok


def test_wal_append_replay_and_discard_with_block(store):
    assert [store.wal_append(1, b"e%d" % i) for i in range(5)] == [0, 1, 2, 3, 4]
    store.wal_append(2, b"next height", sync=False)
    assert store.wal_replay(1) == [b"e%d" % i for i in range(5)]
    assert store.wal_heights() == [1, 2]
    save(store, 1)  # committing height 1 discards its WAL in the same transaction
    assert store.wal_replay(1) == [] and store.wal_replay(2) == [b"next height"]
    store.wal_discard(2)
    assert store.wal_heights() == []


def test_wal_survives_reopen(tmp_path):
    path = str(tmp_path / "s")
    with Store(path) as s:
        s.wal_append(1, b"proposal")
        s.wal_append(1, b"prevote")
    with Store(path) as s:
        assert s.wal_replay(1) == [b"proposal", b"prevote"]


def test_seal_many_equals_sealing_one_by_one():
    from engine.store._records import seal, seal_many, unseal

    keys = [b"k%d" % i for i in range(300)] + [b"empty"]
    values = [os.urandom(i % 70) for i in range(300)] + [b""]
    sealed = seal_many("state", keys, values)
    assert sealed == [seal("state", k, v) for k, v in zip(keys, values)]
    assert all(bytes(unseal("state", k, r)) == v for k, v, r in zip(keys, values, sealed))
    assert seal_many("state", [], []) == []


def test_wal_append_many_and_records_written_with_a_signature(store):
    store.wal_append_many([(1, b"a"), (2, b"future"), (1, b"b")])
    assert store.wal_replay(1) == [b"a", b"b"] and store.wal_replay(2) == [b"future"]
    store.wal_append_many([])
    # Buffered inputs go to disk in the signature's own transaction, before its record.
    store.sign_guarded(1, 0, 1, b"prevote", lambda _: b"S" * 64,
                       wal_entry=lambda sig: b"signed", wal_before=[(1, b"proposal")])
    assert store.wal_replay(1) == [b"a", b"b", b"proposal", b"signed"]
    # A refused signature aborts the transaction: none of its records are written.
    with pytest.raises(DoubleSignRefused):
        store.sign_guarded(1, 0, 1, b"other", lambda _: b"T" * 64,
                           wal_before=[(1, b"vote"), (2, b"x")])
    assert store.wal_replay(1)[-1] == b"signed" and store.wal_replay(2) == [b"future"]
    with pytest.raises(TypeError, match="tuples"):
        store.wal_append_many([b"no height"])
    with pytest.raises(ValueError, match="height"):
        store.wal_append_many([(0, b"x")])


def test_signer_guard(store):
    calls = []

    def sign(data):
        calls.append(data)
        return b"S" * 64

    assert store.sign_guarded(5, 0, 1, b"vote a", sign) == b"S" * 64
    assert store.sign_guarded(5, 0, 1, b"vote a", sign) == b"S" * 64  # stored signature
    assert len(calls) == 1
    with pytest.raises(DoubleSignRefused, match="different bytes"):
        store.sign_guarded(5, 0, 1, b"vote b", sign)
    with pytest.raises(DoubleSignRefused):
        store.sign_guarded(4, 9, 2, b"older height", sign)
    with pytest.raises(DoubleSignRefused):
        store.sign_guarded(5, 0, 0, b"older step", sign)
    store.sign_guarded(5, 1, 0, b"next round", sign, wal_entry=lambda sig: b"vote+" + sig)
    state = store.signer_record()
    assert (state.height, state.round, state.step, state.sign_bytes) == (5, 1, 0, b"next round")
    assert store.wal_replay(5) == [b"vote+" + b"S" * 64]
    with pytest.raises(TypeError, match="signature"):
        store.sign_guarded(6, 0, 0, b"x", lambda data: None)
    assert store.signer_record().height == 5  # a failed signing leaves the state as it was


def test_bad_arguments_name_themselves(store):
    args = block_args(1)
    for name, value, exc in [("height", 0, ValueError), ("height", "1", TypeError),
                             ("block_hash", b"x", ValueError), ("txs", b"abc", TypeError),
                             ("txs", [b"a", 3], TypeError), ("results", [b"1"], ValueError),
                             ("tx_ids", b"1" * 33, ValueError),
                             ("state_changes", [(b"", b"v")], ValueError),
                             ("app_hash", None, TypeError)]:
        bad = dict(args, **{name: value})
        with pytest.raises(exc, match=name):
            store.save_block(**bad)
    assert store.latest_height() == 0
    with pytest.raises(TypeError, match="path"):
        Store(123)
    with pytest.raises(ValueError, match="map_size"):
        Store("/tmp/x-never-created", map_size=10)


def test_refuses_foreign_paths(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"hello")
    with pytest.raises(StoreError, match="is a file"):
        Store(str(f))
    d = tmp_path / "other"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match="other files"):
        Store(str(d))
    foreign = tmp_path / "foreign"
    env = lmdb.open(str(foreign))
    with env.begin(write=True) as txn:
        txn.put(b"someone", b"else's data")
    env.close()
    with pytest.raises(StoreError, match="foreign LMDB"):
        Store(str(foreign))
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "data.mdb").write_bytes(os.urandom(20000))
    with pytest.raises(StoreError):
        Store(str(garbage))


def test_refuses_newer_schema(tmp_path):
    path = str(tmp_path / "s")
    with Store(path) as s:
        def bump(txn):
            s._put_meta(txn, b"schema", (99).to_bytes(4, "little"))
        s._write(bump)
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_readonly_store_refuses_writes_cleanly(tmp_path):
    path = str(tmp_path / "s")
    with Store(path) as s:
        save(s, 1)
    with Store(path, readonly=True) as ro:
        assert ro.latest_height() == 1
        with pytest.raises(StoreError, match="read-only"):
            save(ro, 2)
        with pytest.raises(StoreError, match="read-only"):
            ro.wal_append(2, b"x")
    with pytest.raises(StoreError, match="no store"):
        Store(str(tmp_path / "absent"), readonly=True)


def _permission_checks(path) -> None:
    """As a user file modes apply to: a store in a directory it may not write is a StoreError
    saying so, for a write and for creating a store."""
    with Store(str(path)) as s:
        save(s, 1)
    os.chmod(path / "data.mdb", 0o400)
    os.chmod(path / "lock.mdb", 0o400)
    os.chmod(path, 0o500)
    try:
        with pytest.raises(StoreError, match="read-only|Permission denied"), \
                Store(str(path)) as s:
            s.wal_append(1, b"x")
        with pytest.raises(StoreError, match="cannot create"):
            Store(str(path / "sub"))
    finally:
        os.chmod(path, 0o700)


NOBODY = 65534


def _as_nobody(fn, *args) -> None:
    """Run ``fn(*args)`` in a forked child that has dropped root for nobody (file modes do not
    deny root, and CI runs as root); its failure, with the traceback, fails the caller."""
    import traceback

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            assert os.geteuid() == NOBODY
            fn(*args)
            code = 0
        except BaseException:  # noqa: BLE001 - reported to the parent, which fails
            os.write(write_fd, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        report = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"as nobody:\n{report}"


def test_permission_denied_is_a_clear_error(tmp_path):
    if os.geteuid() != 0:
        _permission_checks(tmp_path / "locked")
        return
    # Root: a directory nobody owns, outside pytest's root-only tmp tree.
    import shutil
    import tempfile

    top = tempfile.mkdtemp(prefix="engine-perm-")
    try:
        os.chmod(top, 0o755)
        os.chown(top, NOBODY, NOBODY)
        _as_nobody(_permission_checks, Path(top) / "locked")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = _repo_root() + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_disk_full_aborts_cleanly(tmp_path):
    """RLIMIT_FSIZE makes writes past 2 MB fail with EFBIG, like a full disk."""
    path = str(tmp_path / "s")
    code = f"""
import resource, signal, sys
sys.path.insert(0, {_repo_root()!r})
from tests.store.helpers import block_args
from engine.store import Store, StoreError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
s = Store({path!r})
s.save_block(**block_args(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))
try:
    s.save_block(**block_args(2, n_txs=4000, tx_bytes=1000))
except StoreError as e:
    print("refused:", e)
    sys.exit(0)
sys.exit(5)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_child_env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "disk full" in proc.stdout and "unchanged" in proc.stdout, proc.stdout
    with Store(path) as s:
        assert s.latest_height() == 1
        assert check_store(s).ok
        save(s, 2)  # space available again: writes work
        assert check_store(s).ok


def test_map_grows_automatically(tmp_path):
    with Store(str(tmp_path / "s"), map_size=1 << 17) as s:
        for h in range(1, 6):
            save(s, h, n_txs=500, tx_bytes=250)
        assert s.info()["map_size"] > 5 * 500 * 250
        assert s.latest_height() == 5 and check_store(s).ok


def test_prune_removes_old_data_and_reuses_space(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        saved = [save(s, h, n_txs=100, tx_bytes=250) for h in range(1, 41)]
        pages_before = s.info()["last_page"]
        assert s.prune(31) == 30
        assert s.base_height() == 31 and s.load_block(30) is None
        assert s.load_block_by_hash(saved[5]["block_hash"]) is None
        assert s.find_tx(blake3(saved[3]["txs"][0])) is None
        assert s.find_tx(blake3(saved[35]["txs"][9])).height == 36
        assert s.prune(31) == 0
        with pytest.raises(ValueError, match="retain_height"):
            s.prune(1000)
        assert check_store(s).ok
        for h in range(41, 71):  # 30 new blocks of the same size fit in the freed pages
            save(s, h, n_txs=100, tx_bytes=250)
        assert s.info()["last_page"] <= pages_before * 1.1
        assert check_store(s).ok
        assert [b.height for b in s.blocks(1)] == list(range(31, 71))


def test_check_reports_injected_inconsistencies(store):
    for h in range(1, 5):
        save(store, h)

    def tamper(txn):  # rewrite valid-checksum records that contradict each other
        store._put(txn, "block_hashes", b"\5" * 32, (3).to_bytes(8, "big"))
        store._put(txn, "wal", (2).to_bytes(8, "big") + bytes(8), b"stale")
        txn.delete((2).to_bytes(8, "big"), db=store._dbs["commits"])

    store._write(tamper)
    report = check_store(store)
    text = report.summary()
    assert not report.ok
    assert "holds another block" in text and "discarded" in text and "certificate" in text


def test_check_calls_the_node_verifier(store):
    for h in range(1, 4):
        save(store, h)
    seen = []

    def verify(block, parent):
        seen.append((block.height, parent.height if parent else None))
        return ["bad certificate"] if block.height == 2 else []

    report = check_store(store, verify_block=verify)
    assert seen == [(1, None), (2, 1), (3, 2)]
    assert report.problems == ["blocks: height 2: bad certificate"]


def test_corrupt_record_raises_store_corruption_naming_db_and_key(store):
    save(store, 1)

    def flip(txn):
        key = (1).to_bytes(8, "big")
        value = bytearray(txn.get(key, db=store._dbs["blocks"]))
        value[200] ^= 1
        txn.put(key, bytes(value), db=store._dbs["blocks"])

    store._write(flip)
    with pytest.raises(StoreCorruption, match="'blocks' at key height 1"):
        store.load_block(1)
    assert "checksum" in check_store(store).summary()


def test_cli_check_and_info(tmp_path, capsys):
    from engine.cli import main

    home = tmp_path / "home"
    with Store(str(home / "store")) as s:
        for h in range(1, 4):
            save(s, h)
    assert main(["store", "check", "--home", str(home)]) == 0
    assert "OK: 3 blocks" in capsys.readouterr().out
    assert main(["store", "info", "--home", str(home)]) == 0
    assert '"latest_height": 3' in capsys.readouterr().out
    assert main(["store", "check", "--home", str(tmp_path / "nothing")]) == 1
    assert "no store" in capsys.readouterr().out


@pytest.mark.parametrize("cache_bytes_max", [128 << 20, 0])  # in-memory runs / on-disk search
def test_find_txs_batch_matches_single_lookups(store, cache_bytes_max):
    store._runs.cache_bytes_max = cache_bytes_max
    saved = [save(store, h, n_txs=30) for h in range(1, 40)]
    assert store.compact_index() == 2  # merged runs (searched on disk at budget 0) + block runs
    txs = [a["txs"][i] for a in saved[::3] for i in (0, 29)]
    queries = [blake3(t) for t in txs] + [blake3(b"absent %d" % i) for i in range(5)]
    batch = store.find_txs(queries)
    assert batch == [store.find_tx(q) for q in queries]
    assert [loc.tx for loc in batch[:len(txs)]] == txs and batch[len(txs):] == [None] * 5
    assert store.find_txs([]) == []
    with pytest.raises(ValueError, match=r"tx_ids\[1\]"):
        store.find_txs([queries[0], b"short"])


def test_lookup_cache_follows_merges_and_prunes(store):
    first = [save(store, h, n_txs=10) for h in range(1, 20)]
    assert store.find_tx(blake3(first[2]["txs"][4])).height == 3  # fills the cache
    more = [save(store, h, n_txs=10) for h in range(20, 60)]      # runs merge and get new keys
    assert store.find_tx(blake3(more[-1]["txs"][9])).height == 59
    assert store.find_tx(blake3(first[2]["txs"][4])).height == 3
    store.prune(10)
    assert store.find_tx(blake3(first[2]["txs"][4])) is None      # pruned runs left the cache
    assert store.find_tx(blake3(first[15]["txs"][1])).height == 16


def test_prune_runs_in_bounded_transactions(store, monkeypatch):
    from engine.store import store as store_module

    monkeypatch.setattr(store_module, "prune_blocks_per_txn_max", 7)
    saved = [save(store, h, n_txs=4) for h in range(1, 41)]
    assert store.prune(33) == 32 and store.base_height() == 33
    assert store.find_tx(blake3(saved[31]["txs"][0])) is None
    assert store.find_tx(blake3(saved[32]["txs"][3])).height == 33
    assert check_store(store).ok


def test_prune_in_steps_rewrites_a_straddling_run_only_once_half_of_it_is_stale(store):
    """A node prunes one block a step while the base moves up through a merged run of many
    blocks: rewriting that run at every step (what pruning did) cost a write of the whole run
    per height. The run is now left as it is, its pruned entries skipped by lookups and by
    check, until they span half of its heights; then it is rewritten without them."""
    fanout = _txindex.TX_INDEX_MERGE_FANOUT
    saved = [save(store, h, n_txs=3) for h in range(1, 2 * fanout + 1)]
    assert store.compact_index() == 2  # runs 1..16 and 17..32

    def runs() -> list[tuple[int, int, int]]:
        with store._env.begin() as txn:
            return [_txindex.parse_run_key(bytes(k)) for k in
                    txn.cursor(db=store._dbs["tx_index"]).iternext(values=False)]

    assert runs()[0] == (1, fanout, 3 * fanout)
    firsts = []
    for retain in range(2, fanout + 2):
        store.prune(retain, blocks_max=1)
        assert store.base_height() == retain
        firsts.append(runs()[0][0])
        for h, args in enumerate(saved, start=1):
            loc = store.find_tx(blake3(args["txs"][1]))
            assert (loc is None) if h < retain else (loc.height, loc.index) == (h, 1)
        report = check_store(store)
        assert report.ok, (retain, report.problems)
    # The run 1..16 is rewritten when the base reaches 9 (heights 1..8 stale: half of 16),
    # then 13 (half of 9..16), 15 and 16: four rewrites for fifteen steps, each of a run half
    # the size of the one before; at 17 it lies wholly below the base and is deleted.
    assert firsts == [1] * 7 + [9] * 4 + [13, 13, 15, 16, fanout + 1], firsts
    assert runs()[0] == (fanout + 1, 2 * fanout, 3 * fanout)


def test_check_reports_an_index_run_below_the_base(store):
    saved = [save(store, h, n_txs=2) for h in range(1, 2 * _txindex.TX_INDEX_MERGE_FANOUT + 1)]
    store.compact_index()
    store.prune(_txindex.TX_INDEX_MERGE_FANOUT + 1)
    assert check_store(store).ok
    with store._env.begin(write=True) as txn:  # a run that pruning should have deleted
        entries = _txindex.block_entries(1, b"".join(blake3(t) for t in saved[0]["txs"]))
        _txindex.write_run(txn, store._dbs["tx_index"], entries, 1, 1, sort=False)
    problems = check_store(store).problems
    assert any("lies below the base height" in p for p in problems), problems


def test_compact_index_keeps_every_answer(store):
    """Lookups answer the same before and after merging; merged runs cover exactly the
    blocks up to meta 'indexed' and check passes at every stage."""
    fanout = _txindex.TX_INDEX_MERGE_FANOUT
    saved = [save(store, h, n_txs=h % 5) for h in range(1, 2 * fanout + 4)]
    ids = [blake3(tx) for a in saved for tx in a["txs"]]
    before = store.find_txs(ids)
    assert all(loc is not None for loc in before)
    assert store.info()["databases"]["tx_index"]["entries"] == 0  # all still in block records
    assert store.compact_index() == 2
    assert store.compact_index() == 0  # 3 blocks wait: fewer than a group
    assert store.info()["databases"]["tx_index"]["entries"] == 2
    assert store.find_txs(ids) == before
    assert [store.find_tx(i) for i in ids[:20]] == before[:20]
    assert check_store(store).ok
    store.prune(fanout + 5)  # cuts into the second merged run
    assert check_store(store).ok
    after = store.find_txs(ids)
    for loc, old in zip(after, before):
        assert loc == (old if old.height >= fanout + 5 else None)


def test_save_block_compacts_by_itself_when_nobody_does(store):
    for h in range(1, store_module.index_pending_blocks_max + 1):
        save(store, h, n_txs=2)
    assert store.info()["databases"]["tx_index"]["entries"] >= 1
    assert check_store(store).ok


def test_damaged_tx_bytes_are_caught_by_the_tx_root(store):
    """The record checksum leaves out the tx bytes: the tx root must catch a change there."""
    args = save(store, 1, n_txs=5)

    def flip(txn):
        key = b"\0" * 7 + b"\1"
        value = bytearray(txn.get(key, db=store._dbs["blocks"]))
        value[-16 - 3] ^= 0x01  # inside the last transaction
        txn.put(key, bytes(value), db=store._dbs["blocks"])

    store._write(flip)
    with pytest.raises(StoreCorruption, match="tx root"):
        store.load_block(1)
    assert not check_store(store).ok
    assert store.find_tx(blake3(args["txs"][0])) is not None  # other txs still verify by hash
    with pytest.raises(StoreCorruption, match="tx root"):
        store.find_tx(blake3(args["txs"][-1]))  # its candidate fails: the record is checked


def test_save_block_tx_ids_list_checked_item_by_item(store):
    """A list of ids takes one C-level check; any id of the wrong type or length still gets
    the error naming it (two wrong lengths adding up to the right total included)."""
    args = block_args(1, n_txs=3)
    good = [blake3(t) for t in args["txs"]]
    for bad, error in (([good[0], good[1][:31], good[2] + b"x"], ValueError),
                       ([good[0], bytearray(good[1])[:31], good[2]], ValueError),
                       ([good[0], "x" * 32, good[2]], TypeError)):
        with pytest.raises(error, match=r"tx_ids\[1\]"):
            store.save_block(**{**args, "tx_ids": bad})
    assert store.latest_height() == 0
    store.save_block(**{**args, "tx_ids": good})
    assert store.find_tx(good[2]).index == 2
    # ids given as memoryviews (not bytes) take the checked path and are stored alike
    args2 = block_args(2, n_txs=2)
    store.save_block(**{**args2, "tx_ids": [memoryview(blake3(t)) for t in args2["txs"]]})
    assert store.find_tx(blake3(args2["txs"][1])).height == 2


def test_state_changes_checked_natively_then_by_name():
    """The common shape is accepted in one native pass; the first item of another shape and
    everything after it get the checks that name them (a list or any iterable)."""
    from engine.store._codec import plain_changes_end
    from engine.store.store import _checked_changes

    plain = [(b"k1", b"v"), (b"k2", None)]
    assert plain_changes_end(plain, 4) == 2 and _checked_changes(plain) == plain
    assert plain_changes_end([(b"k", b"v"), [b"k", b"v"]], 4) == 1
    assert plain_changes_end([(b"", b"v")], 4) == 0
    assert plain_changes_end([(b"long-key", b"v")], 4) == 0
    assert plain_changes_end([(b"k", bytearray(b"v"))], 4) == 0
    mixed = iter([(b"a", b"1"), (b"b", bytearray(b"2")), (b"c", None)])
    assert _checked_changes(mixed) == [(b"a", b"1"), (b"b", b"2"), (b"c", None)]
    with pytest.raises(TypeError, match=r"state_changes\[1\] must be a \(key, value\) tuple"):
        _checked_changes([(b"a", b"1"), [b"b", b"2"]])
    with pytest.raises(ValueError, match=r"state_changes\[2\] key"):
        _checked_changes([(b"a", b"1"), (b"b", b"2"), (b"", b"3")])


def test_batch_unseal_matches_one_record_at_a_time():
    """unseal_many (state_get_many's reads, split natively) gives each record's payload as
    unseal does, None where absent, and names the first damaged or short record."""
    from engine.store import StoreCorruption
    from engine.store._codec import first_tag_mismatch, split_sealed
    from engine.store._records import TAG_BYTES, seal, unseal, unseal_many

    keys = [b"k%d" % i for i in range(40)]
    sealed = [seal("state", k, os.urandom(i * 7 % 300)) for i, k in enumerate(keys)]
    values: list = [memoryview(v) if i % 3 else (None if i % 5 == 0 else v)
                    for i, v in enumerate(sealed)]
    got = unseal_many("state", keys, values)
    assert got == [None if v is None else bytes(unseal("state", k, v))
                   for k, v in zip(keys, values)]
    assert all(type(p) is bytes for p in got if p is not None)
    placed, found, payloads, tags = split_sealed(keys, values, TAG_BYTES)
    assert placed == got and found == [k for k, v in zip(keys, values) if v is not None]
    assert payloads == [p for p in got if p is not None]
    assert tags == b"".join(bytes(v)[-TAG_BYTES:] for v in values if v is not None)
    assert first_tag_mismatch([t + b"rest" for t in (tags[:16], tags[16:32])], tags[:32], 16) == -1
    assert first_tag_mismatch([tags[:16], b"\0" * 32], tags[:32], 16) == 1
    with pytest.raises(ValueError, match="one tag per digest"):
        first_tag_mismatch([tags[:16]], tags[:32], 16)
    damaged = list(values)
    damaged[7] = bytearray(sealed[7])
    damaged[7][0] ^= 1
    damaged[9] = bytearray(sealed[9])
    damaged[9][-1] ^= 1
    with pytest.raises(StoreCorruption) as e:
        unseal_many("state", keys, damaged)
    assert e.value.key == b"k7" and "checksum mismatch" in str(e.value)
    with pytest.raises(StoreCorruption) as e:
        unseal_many("state", keys, values[:3] + [b"short"] + values[4:])
    assert e.value.key == b"k3" and "shorter than its tag" in str(e.value)
    with pytest.raises(ValueError, match="same length"):
        split_sealed(keys, values[:-1], TAG_BYTES)
