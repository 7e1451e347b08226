"""The store's cache of recently written state values (engine/store/store.py,
``state_cache_bytes_max``): reads answer exactly what LMDB holds (a cursor over the state
database, which never looks at the cache, says what that is), whatever the cache holds,
evicts or refuses; only committed writes enter it; and it does serve reads (no LMDB read
transaction for a key it holds)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.store import Store, StoreError
from engine.store import store as store_module
from tests.store.helpers import block_args

KEYS = [b"k%d" % i for i in range(12)] + [b"\xffengine/nonce/x", b"z" * 400]


def _reads(store: Store, monkeypatch) -> list[str]:
    calls: list[str] = []
    real = store._read

    def counting(fn, **kw):
        calls.append(kw.get("what", "read"))
        return real(fn, **kw)

    monkeypatch.setattr(store, "_read", counting)
    return calls


@settings(max_examples=40, deadline=None)
@given(blocks=st.lists(st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(
    st.none(), st.binary(max_size=40), st.binary(min_size=300, max_size=600))), max_size=8),
    min_size=1, max_size=10), bound=st.sampled_from([0, 700, 4000, 1 << 20]),
    value_max=st.sampled_from([100, 1 << 16]), seed=st.integers(0, 1000))
def test_reads_answer_what_lmdb_holds(tmp_path_factory, blocks, bound, value_max, seed):
    """Blocks of puts, deletes and rewrites (keys named twice too) under cache bounds from
    off to ample, values over and under the cached size: after every block, each key read
    alone and in batches (cached, uncached, never written, repeated) gives LMDB's value."""
    path = str(tmp_path_factory.mktemp("cache") / "store")
    rng = random.Random(seed)
    mp = pytest.MonkeyPatch()
    mp.setattr(store_module, "state_cache_bytes_max", bound)
    mp.setattr(store_module, "state_cache_value_bytes_max", value_max)
    try:
        store = Store(path)
        model: dict[bytes, bytes] = {}
        for height, changes in enumerate(blocks, 1):
            args = block_args(height, n_txs=1)
            args["state_changes"] = changes
            store.save_block(**args)
            for k, v in changes:
                if v is None:
                    model.pop(k, None)
                else:
                    model[k] = v
            assert store._state_cache_bytes <= bound
            truth = dict(store.state_items())  # a cursor over LMDB: never the cache
            assert truth == model
            for key in KEYS:
                assert store.state_get(key) == truth.get(key)
            batch = [rng.choice(KEYS) for _ in range(rng.randrange(1, 20))]
            assert store.state_get_many(batch) == [truth.get(k) for k in batch]
        store.close()
    finally:
        mp.undo()


def test_cached_keys_are_read_without_lmdb_and_others_with_it(store, monkeypatch):
    args = block_args(1)
    args["state_changes"] = [(b"a", b"1"), (b"b", None), (b"c", b"3")]
    store.save_block(**args)
    reads = _reads(store, monkeypatch)
    assert store.state_get_many([b"a", b"b", b"c", b"a"]) == [b"1", None, b"3", b"1"]
    assert store.state_get(b"c") == b"3" and store.state_get(b"b") is None
    assert reads == []  # all from the cache
    assert store.state_get_many([b"a", b"never", b"c"]) == [b"1", None, b"3"]
    assert store.state_get(b"never") is None
    assert len(reads) == 2  # the key it does not hold: one read each time


def test_a_refused_or_failed_save_leaves_the_cache_as_it_was(store, monkeypatch):
    args = block_args(1)
    args["state_changes"] = [(b"a", b"1")]
    store.save_block(**args)
    bad = block_args(3)  # not latest + 1: refused inside the write transaction
    bad["state_changes"] = [(b"a", b"stale")]
    with pytest.raises(StoreError, match="saved in order"):
        store.save_block(**bad)
    assert store.state_get(b"a") == b"1"

    def broken(*a, **kw):
        raise StoreError("disk on fire")

    good = block_args(2)
    good["state_changes"] = [(b"a", b"2")]
    monkeypatch.setattr(store, "_write", broken)
    with pytest.raises(StoreError, match="on fire"):
        store.save_block(**good)
    monkeypatch.undo()
    assert store.state_get(b"a") == b"1"
    store.save_block(**good)
    assert store.state_get(b"a") == b"2"


def test_a_large_value_replaces_the_cached_one_and_is_read_from_lmdb(store, monkeypatch):
    monkeypatch.setattr(store_module, "state_cache_value_bytes_max", 10)
    args = block_args(1)
    args["state_changes"] = [(b"a", b"small"), (b"b", b"x")]
    store.save_block(**args)
    args = block_args(2)
    args["state_changes"] = [(b"a", b"L" * 11)]
    store.save_block(**args)
    assert b"a" not in store._state_cache and store._state_cache[b"b"] == b"x"
    assert store.state_get(b"a") == b"L" * 11
    assert store.state_get_many([b"b", b"a"]) == [b"x", b"L" * 11]
    # Other changes of the key in the same block, before or after the large value.
    args = block_args(3)
    args["state_changes"] = [(b"b", None), (b"b", b"B" * 11), (b"c", b"C" * 11), (b"c", b"c")]
    store.save_block(**args)
    assert store.state_get_many([b"b", b"c"]) == [b"B" * 11, b"c"] == \
        [store.state_get(b"b"), store.state_get(b"c")]


def test_the_cache_stays_within_its_bound_dropping_the_oldest(store, monkeypatch):
    monkeypatch.setattr(store_module, "state_cache_bytes_max", 20 * (2 + 4 + 160))
    for h in range(1, 6):
        args = block_args(h)
        args["state_changes"] = [(b"%02d" % (10 * h + i), b"v%03d" % h) for i in range(10)]
        store.save_block(**args)
        assert store._state_cache_bytes <= store_module.state_cache_bytes_max
        assert len(store._state_cache) <= 20
    assert b"%02d" % 59 in store._state_cache  # the newest stay
    assert b"%02d" % 10 not in store._state_cache
    assert [store.state_get(b"%02d" % (10 * h)) for h in range(1, 6)] == \
        [b"v%03d" % h for h in range(1, 6)]


def test_genesis_and_restore_never_leave_a_cached_value(tmp_path):
    store = Store(str(tmp_path / "g"))
    store._state_cache[b"a"] = b"phantom"  # whatever it held before
    store.save_genesis(b"h" * 32, [(b"a", b"genesis")])
    assert store._state_cache == {} and store.state_get(b"a") == b"genesis"
    store.close()
