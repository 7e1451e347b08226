"""engine._poolcore (the mempool's compiled drop loop) against its specification: dropping a set
of transactions from a pool leaves exactly the indices that pooling the others alone builds."""
from __future__ import annotations

import gc
import sys
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _poolcore
from engine.mempool import Senders
from engine.tx import Tx


def _pool_of(entries, with_nonces):
    """The mempool's maps after pooling ``entries`` (tx id, sender, nonce, priority) in order,
    as ``Mempool._admit_chunk`` fills them."""
    pool, decoded, priority = {}, {}, {}
    pooled_nonces = {} if with_nonces else None
    senders = Senders(decoded)
    for tx_id, sender, nonce, prio in entries:
        pool[tx_id] = b"e" * (10 + nonce % 7)
        decoded[tx_id] = Tx(1, sender, nonce, b"k=v", b"s" * 64, tx_id)
        if prio:
            priority[tx_id] = prio
        senders.add(sender, nonce, tx_id)
        if with_nonces:
            pooled_nonces.setdefault(sender, {})[nonce] = tx_id
    return pool, decoded, priority, pooled_nonces, senders


def _state(maps):
    pool, decoded, priority, pooled_nonces, senders = maps
    return (list(pool.items()), list(decoded.items()), list(priority.items()),
            None if pooled_nonces is None else {s: dict(n) for s, n in pooled_nonces.items()},
            {s: dict(t) for s, t in senders._txs.items()}, dict(senders._max))


@st.composite
def _pools(draw):
    with_nonces = draw(st.booleans())
    n = draw(st.integers(0, 30))
    entries, used = [], set()
    for i in range(n):
        sender = bytes([draw(st.integers(0, 4))]) * 32
        nonce = draw(st.integers(0, 12))
        if with_nonces and (sender, nonce) in used:
            continue  # admission refuses a pooled (sender, nonce) when nonces are enforced
        used.add((sender, nonce))
        entries.append((i.to_bytes(32, "big"), sender, nonce, draw(st.sampled_from([0, 0, 5]))))
    drop = [e[0] for e in entries if draw(st.booleans())]
    drop += [b"\xee" * 32]  # an id that is not pooled is skipped
    # Senders marked out of order, and their pooled ids to reorder (none when no sender is).
    disordered = {e[1] for e in entries if draw(st.booleans())}
    reorder = {e[0] for e in entries if e[1] in disordered}
    return with_nonces, entries, draw(st.permutations(drop)), disordered, reorder


@settings(max_examples=300, deadline=None)
@given(_pools())
def test_drop_leaves_what_pooling_the_rest_builds(case):
    with_nonces, entries, drop, disordered, reorder = case
    maps = _pool_of(entries, with_nonces)
    pool, decoded, priority, pooled_nonces, senders = maps
    bytes_before = sum(map(len, pool.values()))
    was_disordered, was_reorder = set(disordered), set(reorder)
    freed = _poolcore.drop_many(pool, decoded, priority, pooled_nonces, senders._txs,
                                senders._max, drop, disordered, reorder)
    dropped = set(drop)
    want = _pool_of([e for e in entries if e[0] not in dropped], with_nonces)
    assert _state(maps) == _state(want)
    assert freed == bytes_before - sum(map(len, want[0].values()))
    # A sender stays marked while it has pooled transactions; dropped ids leave the reorder set.
    assert disordered == {s for s in was_disordered if s in want[4]._txs}
    assert reorder == was_reorder - dropped


@settings(max_examples=200, deadline=None)
@given(_pools())
def test_senders_remove_many_matches_pooling_the_rest(case):
    _, entries, drop, _, _ = case
    senders = _pool_of(entries, False)[4]
    by_id = {e[0]: e[1] for e in entries}
    senders.remove_many([(by_id[t], t) for t in drop if t in by_id])
    want = _pool_of([e for e in entries if e[0] not in set(drop)], False)[4]
    assert (senders._txs, senders._max) == (want._txs, want._max)
    for s in {e[1] for e in entries}:
        assert senders.next_nonce(s) == want.next_nonce(s)


def test_maps_must_be_plain_dicts():
    with pytest.raises(TypeError, match="pool"):
        _poolcore.drop_many(OrderedDict(), {}, {}, None, {}, {}, [], set(), set())
    with pytest.raises(TypeError, match="decoded"):
        _poolcore.drop_many({}, None, {}, None, {}, {}, [], set(), set())


def test_no_reference_leaks():
    env, sender = b"x" * 50, b"\x01" * 32
    before = (sys.getrefcount(env), sys.getrefcount(sender))
    for _ in range(100):
        entries = [(i.to_bytes(32, "big"), sender, i, 0) for i in range(20)]
        pool, decoded, priority, pooled, senders = _pool_of(entries, True)
        for t in pool:
            pool[t] = env
        _poolcore.drop_many(pool, decoded, priority, pooled, senders._txs, senders._max,
                            list(pool), {sender}, set(pool))
        del entries, pool, decoded, priority, pooled, senders
    gc.collect()
    assert (sys.getrefcount(env), sys.getrefcount(sender)) == before


# ---- RecentIds: a bounded FIFO set, against an OrderedDict doing the same ----------------------

class _Model:
    """What the mempool's id caches did with an OrderedDict."""

    def __init__(self, max_ids):
        self.d, self.max_ids = OrderedDict(), max_ids

    def add_many(self, keys):
        self.d.update(dict.fromkeys(keys))
        while len(self.d) > self.max_ids:
            self.d.popitem(last=False)

    def discard_many(self, keys):
        for k in keys:
            self.d.pop(k, None)


_ops = st.lists(st.tuples(st.sampled_from(["add", "add_many", "discard_many"]),
                          st.lists(st.integers(0, 40), max_size=30)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12), _ops)
def test_recent_ids_behaves_as_a_bounded_ordered_dict(max_ids, ops):
    ids = _poolcore.RecentIds(max_ids)
    model = _Model(max_ids)
    for op, keys in ops:
        keys = [k.to_bytes(2, "big") for k in keys]
        if op == "add":
            for k in keys:
                ids.add(k)
                model.add_many([k])
        elif op == "add_many":
            ids.add_many(keys)
            model.add_many(keys)
        else:
            ids.discard_many(keys)
            model.discard_many(keys)
        assert list(ids) == list(model.d) and len(ids) == len(model.d)
        assert all((k.to_bytes(2, "big") in ids) == (k.to_bytes(2, "big") in model.d)
                   for k in range(41))


def test_recent_ids_long_runs_compact_and_keep_exactly_the_newest():
    """Past the compaction thresholds (1,024 consumed or stale entries): a cache that fills
    and one that is mostly discarded again (the verified cache's pattern)."""
    ids, model = _poolcore.RecentIds(3000), _Model(3000)
    keys = [i.to_bytes(4, "big") for i in range(20_000)]
    for i in range(0, len(keys), 700):
        ids.add_many(keys[i:i + 700])
        model.add_many(keys[i:i + 700])
        ids.discard_many(keys[i:i + 300:3])
        model.discard_many(keys[i:i + 300:3])
        assert len(ids) == len(model.d)
    assert list(ids) == list(model.d)
    assert ids.backlog() <= 2 * len(ids) + 1024
    churn = _poolcore.RecentIds(100_000)
    for i in range(0, len(keys), 10):
        churn.add_many(keys[i:i + 10])
        churn.discard_many(keys[i:i + 10])
        assert churn.backlog() <= 1024 + 10  # discarded entries do not pile up
    assert len(churn) == 0 and list(churn) == []
    with pytest.raises(ValueError, match="max_ids"):
        _poolcore.RecentIds(-1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 20), max_size=40), st.sets(st.integers(0, 20)),
       st.sets(st.integers(0, 20)), st.sets(st.integers(0, 20)))
def test_unseen_gives_the_ids_known_nowhere(ids, verified, committed, pooled):
    """``unseen``: the indexes of the ids to verify (in none of the verified cache, the
    committed cache and the pool), in order, duplicates included."""
    def key(i):
        return bytes([i]) * 32

    v, c = _poolcore.RecentIds(100), _poolcore.RecentIds(100)
    v.add_many(map(key, verified))
    c.add_many(map(key, committed))
    pool = {key(i): b"e" for i in pooled}
    keys = [key(i) for i in ids]
    want = [n for n, i in enumerate(ids) if i not in verified | committed | pooled]
    assert _poolcore.unseen(keys, v, c, pool) == want


def test_native_threads_cpu_counts_threads_python_does_not_know():
    """``native_threads_cpu``: the process CPU outside the live Python threads. A batch
    verification spread over the native pool puts CPU there; Python-thread work does not."""
    import time

    from engine import tx as txmod
    from engine.crypto import SigningKey
    from engine.node.stagecpu import native_threads_cpu

    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(64)]
    envs = [txmod.encode_tx(k, n, b"k=v", "c") for n in range(16) for k in keys]
    before = native_threads_cpu()
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.1:  # 0.1 s of Python work on this thread only
        sum(range(1000))
    assert native_threads_cpu() - before < 0.05
    before = native_threads_cpu()
    for _ in range(200):  # the helper joins a batch unless the caller took every task first
        assert all(txmod.verify_txs(envs, "c", threads=2))
        if native_threads_cpu() - before > 0.005:
            break
    else:
        raise AssertionError("no CPU outside the Python threads after 200 parallel batches")


def test_stage_cpu_adds_per_stage_and_refuses_unknown_ones():
    """``StageCpu``: additions accumulate per stage, a snapshot is a copy, an unknown stage is
    refused by name (a typo at a timing point would otherwise vanish from the counters)."""
    from engine.node.stagecpu import STAGES, StageCpu

    cpu = StageCpu()
    cpu.add("verification", 1.5)
    cpu.add("verification", 2.0)
    cpu.add("storage", 0.25)
    snap = cpu.snapshot()
    assert snap == {**dict.fromkeys(STAGES, 0.0), "verification": 3.5, "storage": 0.25}
    snap["storage"] = 9.0
    assert cpu.snapshot()["storage"] == 0.25
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        cpu.add("nope", 1.0)
