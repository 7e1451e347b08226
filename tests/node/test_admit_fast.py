"""Admission's compiled common case (engine/_poolcore.pyx ``admit_run``) against the checks it
skips: the same chunks admitted with it and with every transaction taken through
``Mempool._admit_one`` (the compiled loop given types no transaction has) must give the same
answers, counters and pool, index by index.

The chunks mix what admission meets: fresh transactions (the common case), duplicates within a
chunk and of pooled ones, failed signatures, oversized envelopes, a full pool, nonces pooled
already, used (below the committed record) or arriving behind a pooled higher one, senders
whose record is not cached yet, app refusals and priorities, gossiped and local transactions,
callers waiting or not, ids the store says are committed (nonces not enforced). Fails if the
compiled loop pools a transaction a check refuses, indexes it differently (senders, nonces,
priorities, reordering) or answers differently.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _poolcore, crypto
from engine import mempool as mempool_mod
from engine import tx as txmod
from engine.app import CheckResult
from engine.mempool import Mempool, MempoolLimits
from engine.nonces import NonceTable

CHAIN = "admit-fast"
KEYS = [crypto.SigningKey(bytes([i + 1]) * 32) for i in range(4)]


class _Answer:
    """A waiting caller's slot (the part of the Future API admission uses)."""

    def __init__(self):
        self.value = None

    def done(self) -> bool:
        return self.value is not None

    def set_result(self, value) -> None:
        assert self.value is None, "answered twice"
        self.value = value


def _check_txs(txs):
    out = []
    for t in txs:
        if t.payload.startswith(b"no"):
            out.append(CheckResult(7, "app says no"))
        elif t.payload.startswith(b"p"):
            out.append(CheckResult(priority=5))
        else:
            out.append(CheckResult())
    return out


@st.composite
def _runs(draw):
    with_nonces = draw(st.booleans())
    envs: list[bytes] = []
    chunks = []
    for _ in range(draw(st.integers(1, 3))):
        chunk = []
        for _ in range(draw(st.integers(1, 14))):
            if envs and draw(st.integers(0, 5)) == 0:
                env = draw(st.sampled_from(envs))  # a duplicate
            else:
                key = draw(st.sampled_from(KEYS))
                payload = draw(st.sampled_from([b"k=v", b"k=w", b"no=1", b"p=1", b"k=" + b"x" * 90]))
                env = txmod.encode_tx(key, draw(st.integers(0, 9)), payload, CHAIN)
                envs.append(env)
            chunk.append((env, draw(st.booleans()), draw(st.booleans()),  # local, caller waits
                          draw(st.sampled_from([True, True, True, False, None]))))  # verdict
        chunks.append(chunk)
    # Committed records: some senders used nonces up to 2 (0..2 then stale); one with gaps.
    records = {k.public_key: draw(st.sampled_from([None, 2, 4])) for k in KEYS}
    cached = [k.public_key for k in KEYS if draw(st.booleans())]  # records read in advance
    limits = MempoolLimits(txs_max=draw(st.sampled_from([4, 10, 1000])),
                           bytes_max=draw(st.sampled_from([2_000, 1 << 20])),
                           tx_bytes_max=draw(st.sampled_from([200, 2_000])))
    store_committed = draw(st.booleans())
    # Ids committed lately (the mempool's in-memory cache of them).
    recent = [e for e in envs if draw(st.integers(0, 7)) == 0]
    return with_nonces, chunks, records, cached, limits, store_committed, recent


def _admit(case, compiled: bool):
    with_nonces, chunks, records, cached, limits, store_committed, recent = case
    state = {}
    if with_nonces:
        table = NonceTable(state.get)
        gaps = {2: [], 4: [1, 3]}
        for sender, highest in records.items():
            if highest is not None:
                state.update(table.apply_block([(sender, n) for n in range(highest + 1)
                                                if n not in gaps[highest]]))
        table.committed()
        for sender in cached:
            table.window(sender)
    admitted: list[bytes] = []
    mp = Mempool(chain_id=CHAIN.encode(), check_tx=lambda t: _check_txs([t])[0],
                 check_txs=_check_txs, find_committed=lambda ids: [False] * len(ids),
                 limits=limits, nonces=table if with_nonces else None,
                 on_admitted=admitted.extend)
    mp._committed.add_many(txmod.decode_tx(e).tx_id for e in recent)
    pooled_by_run = 0
    real_run = _poolcore.admit_run

    def spy(start, *args):
        nonlocal pooled_by_run
        stop, pool_bytes = real_run(start, *args)
        pooled_by_run += stop - start
        return stop, pool_bytes

    answers = []
    for chunk in chunks:
        batch, verdicts = [], []
        for env, local, waits, verdict in chunk:
            slot = _Answer() if waits else None
            answers.append(slot)
            batch.append((env, slot, local))
            verdicts.append(verdict)
        ids = [txmod.decode_tx(e).tx_id for e, _, _ in batch]
        # Nonces not enforced: the store's lookup says which ids are committed (the first).
        committed = {ids[0]} if store_committed and not with_nonces else set()
        _poolcore.admit_run = spy
        try:
            if not compiled:
                saved = mempool_mod._admit_types
                mempool_mod._admit_types = (type("NoTx", (), {}), type("NoCheck", (), {}))
            try:
                mp._admit_chunk(batch, ids, verdicts, committed)
            finally:
                if not compiled:
                    mempool_mod._admit_types = saved
        finally:
            _poolcore.admit_run = real_run
    snapshot = {
        "answers": [None if a is None else (a.value.code, a.value.tx_id, a.value.log)
                    for a in answers],
        "rejected": dict(mp.rejected),
        "pool": list(mp._pool.items()),
        "decoded": list(mp._decoded.items()),
        "bytes": mp._pool_bytes,
        "priority": dict(mp._priority),
        "pooled_nonces": {s: dict(n) for s, n in mp._pooled_nonces.items()},
        "senders": ({s: list(t.items()) for s, t in mp.pending._txs.items()},
                    dict(mp.pending._max)),
        "disordered": set(mp._disordered), "reorder": set(mp._reorder_ids),
        "verified": list(mp._verified), "admitted": admitted,
        "reaped": mp.reap(10_000, 1 << 30),
    }
    return snapshot, pooled_by_run


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_runs())
def test_compiled_admission_matches_the_checks(case):
    fast, pooled_fast = _admit(case, compiled=True)
    slow, pooled_slow = _admit(case, compiled=False)
    assert pooled_slow == 0  # the reference took every transaction through _admit_one
    assert pooled_fast <= len(fast["pool"])  # nothing is dropped between chunks
    for key in fast:
        assert fast[key] == slow[key], key


def test_the_compiled_loop_pools_the_common_case():
    """Fresh transactions of cached senders are pooled by the compiled loop alone; a sender not
    cached yet, a nonce behind a pooled one and an app refusal stop it for one transaction."""
    envs = [txmod.encode_tx(KEYS[0], n, b"k=v", CHAIN) for n in (5, 6, 7)]
    envs += [txmod.encode_tx(KEYS[0], 4, b"k=v", CHAIN),  # behind 7: reordering starts
             txmod.encode_tx(KEYS[0], 8, b"no=1", CHAIN),  # refused by the app
             txmod.encode_tx(KEYS[1], 0, b"k=v", CHAIN)]  # sender not cached yet
    case = (True, [[(e, False, True, True) for e in envs]], {k.public_key: None for k in KEYS},
            [KEYS[0].public_key], MempoolLimits(), False, [])
    snap, pooled = _admit(case, compiled=True)
    assert [a[0] for a in snap["answers"]] == ["ok"] * 4 + ["app_rejected", "ok"]
    assert pooled == 3  # nonces 5, 6, 7; the other three went through _admit_one
    assert snap["disordered"] == {KEYS[0].public_key}
    assert len(snap["reorder"]) == 4


def test_the_compiled_loop_refuses_wrong_shapes():
    """A chunk entry that is not a tuple, or maps that are not what the mempool keeps, are a
    programming error (TypeError), not a crash."""
    mp = Mempool(chain_id=CHAIN.encode(), check_tx=lambda t: CheckResult(),
                 find_committed=lambda ids: [False] * len(ids))
    env = txmod.encode_tx(KEYS[0], 0, b"k=v", CHAIN)
    t = txmod.decode_tx(env)

    def run(batch, committed, verdict=True):
        return _poolcore.admit_run(
            0, batch, [t.tx_id], [verdict], [t], [CheckResult()], committed, mp._pool,
            mp._decoded, mp._committed, mp._priority, mp.pending._txs, mp.pending._max,
            mp._disordered, mp._reorder_ids, None, None, 1 << 16, 100, 1 << 20, 0, [],
            txmod.Tx, CheckResult, mempool_mod._ok_result)

    # Not verified (None: the pool was full when its batch came; False: a bad signature).
    for verdict in (None, False):
        assert run([(env, None, False)], set(), verdict) == (0, 0)
    with pytest.raises(TypeError):
        run([[env, None, False]], set())
    with pytest.raises(TypeError):
        run([(env, None, False)], None)
    assert len(mp) == 0
    assert run([(env, None, False)], set()) == (1, len(env)) and t.tx_id in mp
