"""The store's state cache (Store(state_cache_bytes=...)): reads answered from it agree with
LMDB after every kind of state write, it is used, it stays within its bound, and a write that
fails forgets it."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.store import Store, StoreError
from engine.store.store import _MISS, _StateCache
from tests.store.helpers import block_args

KEYS = [b"k%d" % i for i in range(12)]

_changes = st.lists(st.tuples(st.sampled_from(KEYS),
                              st.one_of(st.none(), st.binary(min_size=0, max_size=40))),
                    max_size=8)
_step = st.tuples(_changes, st.lists(st.sampled_from(KEYS + [b"never"]), max_size=8))


@settings(max_examples=60, deadline=None)
@given(st.lists(_step, min_size=1, max_size=12), st.sampled_from([400, 1500, 1 << 20]))
def test_reads_agree_with_a_store_without_cache(tmp_path_factory, steps, bytes_max):
    """Blocks of puts and deletes (a key twice in a block: the last wins), reads of one key
    and of many between them; a small bound evicts all the time."""
    d = tmp_path_factory.mktemp("cache")
    with Store(str(d / "a"), sync=False, state_cache_bytes=bytes_max) as cached, \
            Store(str(d / "b"), sync=False) as plain:
        cached.save_genesis(b"\x00" * 32, [(KEYS[0], b"genesis")])
        plain.save_genesis(b"\x00" * 32, [(KEYS[0], b"genesis")])
        for height, (changes, reads) in enumerate(steps, start=1):
            assert cached.state_get_many(reads) == plain.state_get_many(reads)
            args = {**block_args(height, n_txs=1), "state_changes": changes}
            cached.save_block(**args)
            plain.save_block(**args)
            assert cached.state_get_many(reads) == plain.state_get_many(reads)
            for k in reads[:3]:
                assert cached.state_get(k) == plain.state_get(k)
            assert cached.state_cache.size_bytes <= bytes_max
        assert cached.state_items() == plain.state_items()


def test_cached_values_are_served_without_lmdb(tmp_path):
    with Store(str(tmp_path / "s"), sync=False, state_cache_bytes=1 << 20) as store:
        args = {**block_args(1), "state_changes": [(b"a", b"1"), (b"b", None)]}
        store.save_block(**args)

        def no_reads(*a, **kw):
            raise AssertionError("read LMDB")

        real_read, store._read = store._read, no_reads
        # Written by the block (a deleted key is known absent): no LMDB read at all.
        assert store.state_get_many([b"a", b"b", b"a"]) == [b"1", None, b"1"]
        assert store.state_get(b"a") == b"1"
        with pytest.raises(AssertionError, match="read LMDB"):
            store.state_get(b"c")  # never seen: read from the store
        store._read = real_read
        assert store.state_get(b"c") is None
        store._read = no_reads
        assert store.state_get(b"c") is None  # a miss learned: absent, now cached
        store._read = real_read
        assert store.state_cache.hits >= 5 and store.state_cache.misses >= 2


def test_a_failed_state_write_forgets_the_cache(tmp_path):
    with Store(str(tmp_path / "s"), sync=False, state_cache_bytes=1 << 20) as store:
        store.save_block(**{**block_args(1), "state_changes": [(b"a", b"1")]})
        assert store.state_get(b"a") == b"1" and len(store.state_cache) == 1
        real_write = store._write

        def commit_then_fail(fn, **kw):
            real_write(fn, **kw)  # committed...
            raise StoreError("flush failed")  # ...then the caller is told it failed

        store._write = commit_then_fail
        with pytest.raises(StoreError, match="flush failed"):
            store.save_block(**{**block_args(2), "state_changes": [(b"a", b"2")]})
        store._write = real_write
        assert len(store.state_cache) == 0
        assert store.state_get(b"a") == b"2"  # the committed value, from LMDB


def test_restore_from_snapshot_fills_the_cache_with_the_restored_state(tmp_path):
    args = block_args(5)
    with Store(str(tmp_path / "s"), sync=False, state_cache_bytes=1 << 20) as store:
        store.restore_from_snapshot(5, args["block_hash"], args["header"], args["txs"],
                                    args["certificate"], parent_hash=args["parent_hash"],
                                    app_hash=args["app_hash"],
                                    state=[(b"a", b"1"), (b"b", b"2")])
        assert store.state_get_many([b"a", b"b", b"c"]) == [b"1", b"2", None]
        assert store.state_cache.hits == 2


def test_learning_a_read_after_a_write_is_ignored():
    """A read that missed before a commit must not put its (older) value back after it."""
    cache = _StateCache(1 << 20)
    (found,), generation = cache.lookup([b"k"])
    assert found is _MISS
    cache.committed([(b"k", b"new")])
    cache.learn([(b"k", b"old")], generation)
    assert cache.lookup([b"k"])[0] == [b"new"]
    cache.clear()
    assert cache.lookup([b"k"])[0] == [_MISS] and cache.size_bytes == 0


def test_the_bound_evicts_the_oldest_first():
    """Entries of 131 bytes, a bound of ten: past it, the oldest go until half is left; a
    rewritten key counts as new."""
    cache = _StateCache(10 * 132)
    cache.committed([(b"key%03d" % i, b"vvvvv") for i in range(8)])
    cache.committed([(b"key000", b"again")])  # rewritten: the newest again
    assert cache.size_bytes == 8 * 131
    cache.committed([(b"new%03d" % i, b"vvvvv") for i in range(3)])  # 11 entries: evict
    keys = [b"key%03d" % i for i in range(8)] + [b"new%03d" % i for i in range(3)]
    found, _ = cache.lookup(keys)
    assert [k for k, v in zip(keys, found) if v is not _MISS] == \
        [b"key000", b"key007", b"new000", b"new001", b"new002"]
    assert cache.size_bytes == 5 * 131 <= cache.bytes_max // 2
    big = _StateCache(1000)
    big.committed([(b"k%d" % i, b"x" * 50) for i in range(100)])
    assert big.size_bytes <= big.bytes_max


def test_arguments(tmp_path):
    with pytest.raises(ValueError, match="state_cache_bytes"):
        Store(str(tmp_path / "n"), state_cache_bytes=-1)
    Store(str(tmp_path / "r"), sync=False).close()
    with pytest.raises(ValueError, match="writable"):
        Store(str(tmp_path / "r"), readonly=True, state_cache_bytes=1 << 20)
