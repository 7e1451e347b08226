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
    return with_nonces, entries, draw(st.permutations(drop))


@settings(max_examples=300, deadline=None)
@given(_pools())
def test_drop_leaves_what_pooling_the_rest_builds(case):
    with_nonces, entries, drop = case
    maps = _pool_of(entries, with_nonces)
    pool, decoded, priority, pooled_nonces, senders = maps
    bytes_before = sum(map(len, pool.values()))
    freed, pairs = _poolcore.drop_many(pool, decoded, priority, pooled_nonces, senders._txs,
                                       senders._max, drop, True)
    dropped = set(drop)
    want = _pool_of([e for e in entries if e[0] not in dropped], with_nonces)
    assert _state(maps) == _state(want)
    assert freed == bytes_before - sum(map(len, want[0].values()))
    by_id = {e[0]: e[1] for e in entries}
    assert pairs == [(by_id[t], t) for t in drop if t in by_id]


@settings(max_examples=200, deadline=None)
@given(_pools())
def test_senders_remove_many_matches_pooling_the_rest(case):
    _, entries, drop = case
    senders = _pool_of(entries, False)[4]
    by_id = {e[0]: e[1] for e in entries}
    senders.remove_many([(by_id[t], t) for t in drop if t in by_id])
    want = _pool_of([e for e in entries if e[0] not in set(drop)], False)[4]
    assert (senders._txs, senders._max) == (want._txs, want._max)
    for s in {e[1] for e in entries}:
        assert senders.next_nonce(s) == want.next_nonce(s)


def test_maps_must_be_plain_dicts():
    with pytest.raises(TypeError, match="pool"):
        _poolcore.drop_many(OrderedDict(), {}, {}, None, {}, {}, [], False)
    with pytest.raises(TypeError, match="decoded"):
        _poolcore.drop_many({}, None, {}, None, {}, {}, [], False)


def test_no_reference_leaks():
    env, sender = b"x" * 50, b"\x01" * 32
    before = (sys.getrefcount(env), sys.getrefcount(sender))
    for _ in range(100):
        entries = [(i.to_bytes(32, "big"), sender, i, 0) for i in range(20)]
        pool, decoded, priority, pooled, senders = _pool_of(entries, True)
        for t in pool:
            pool[t] = env
        _poolcore.drop_many(pool, decoded, priority, pooled, senders._txs, senders._max,
                            list(pool), True)
        del entries, pool, decoded, priority, pooled, senders
    gc.collect()
    assert (sys.getrefcount(env), sys.getrefcount(sender)) == before
