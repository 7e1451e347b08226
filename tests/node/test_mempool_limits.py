"""Mempool limits the README and engine/mempool.py promise: the pool's byte bound, the checks of
``MempoolLimits``, and admission batches split at ``batch_txs_max`` (one verify call each) and
admitted in chunks of ``admit_chunk_txs``, in arrival order.

The verifier and decoder are injected (as in test_mempool.py) so only the pool logic runs.
"""
from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

import pytest

from engine.app import CheckResult
from engine.hashing import blake3
from engine.mempool import Mempool, MempoolLimits


def make(limits: MempoolLimits):
    batches: list[list[bytes]] = []
    admitted_calls: list[list[bytes]] = []

    def verify(envelopes, chain_id, threads):
        batches.append(list(envelopes))
        return [True] * len(envelopes)

    mp = Mempool(chain_id=b"chain", check_tx=lambda tx: CheckResult(),
                 find_committed=lambda ids: [False] * len(ids), limits=limits, verify=verify,
                 decode=lambda e: SimpleNamespace(payload=e),
                 on_admitted=lambda envs: admitted_calls.append(list(envs)))
    return mp, batches, admitted_calls


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_bytes_max_bounds_the_pool_exactly_and_frees_on_commit():
    async def main():
        mp, _, _ = make(MempoolLimits(txs_max=100, bytes_max=10, tx_bytes_max=5,
                                      batch_wait_ms=0))
        mp.start()
        # 4 + 4 + 2 = 10 bytes: exactly at the bound, all admitted; one more byte is refused.
        r = await mp.add_many([b"aaaa", b"bbbb", b"cc", b"d"])
        assert [x.code for x in r] == ["ok", "ok", "ok", "mempool_full"]
        assert "10 bytes" in r[3].log and mp.size_bytes == 10 and len(mp) == 3
        # Committing a transaction frees its bytes: the refused one now fits.
        mp.remove_committed([blake3(b"cc")])
        assert mp.size_bytes == 8
        assert (await mp.add(b"d")).ok and mp.size_bytes == 9
        await mp.stop()
    run(main())


FIELDS = [f.name for f in dataclasses.fields(MempoolLimits)]


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "7"])
def test_limits_refuse_non_positive_and_non_int_values(name, value):
    if name == "batch_wait_ms" and value == 0:
        assert MempoolLimits(batch_wait_ms=0).batch_wait_ms == 0  # 0 = no waiting, allowed
        return
    with pytest.raises(ValueError, match=f"^{name} must be a positive int"):
        MempoolLimits(**{name: value})


def test_limits_refuse_a_tx_bound_over_the_pool_bound():
    with pytest.raises(ValueError, match="tx_bytes_max must not exceed bytes_max"):
        MempoolLimits(bytes_max=100, tx_bytes_max=101)
    assert MempoolLimits(bytes_max=100, tx_bytes_max=100).tx_bytes_max == 100


def test_admission_is_split_into_verify_batches_and_admitted_in_chunks_in_order():
    async def main():
        mp, batches, admitted_calls = make(MempoolLimits(batch_txs_max=4, admit_chunk_txs=3,
                                                         batch_wait_ms=50))
        mp.start()
        envs = [b"tx%02d" % i for i in range(10)]
        results = await mp.add_many(envs)
        assert [r.code for r in results] == ["ok"] * 10
        assert [r.tx_id for r in results] == [blake3(e) for e in envs]
        # One verify call per batch of at most batch_txs_max, arrival order kept.
        assert batches == [envs[0:4], envs[4:8], envs[8:10]]
        # Each batch is admitted in chunks of at most admit_chunk_txs (yielding in between).
        assert admitted_calls == [envs[0:3], envs[3:4], envs[4:7], envs[7:8], envs[8:10]]
        assert mp.reap(100, 10_000) == envs
        await mp.stop()
    run(main())


def test_a_full_pool_refuses_a_batch_without_verifying_it():
    """When a batch comes to a full pool, its signatures are not checked (that work would be
    taken from consensus for transactions refused anyway): each is refused as mempool_full,
    pooled and committed ones still as duplicates; after a commit frees room, batches are
    verified and admitted again."""
    async def main():
        mp, batches, _ = make(MempoolLimits(txs_max=2, batch_wait_ms=0))
        mp.start()
        assert all(r.ok for r in await mp.add_many([b"p1", b"p2"]))
        assert batches == [[b"p1", b"p2"]]
        mp.remove_committed([blake3(b"old")])
        r = await mp.add_many([b"n1", b"p1", b"old", b"n2"])
        assert [x.code for x in r] == ["mempool_full", "duplicate", "duplicate", "mempool_full"]
        assert "2 txs" in r[0].log and r[0].tx_id == blake3(b"n1")
        assert batches == [[b"p1", b"p2"]]  # nothing verified for the refused batch
        assert not mp.is_verified(blake3(b"n1"))
        mp.remove_committed([blake3(b"p1")])
        assert (await mp.add(b"n1")).ok
        assert batches[-1] == [b"n1"]
        await mp.stop()
    run(main())
