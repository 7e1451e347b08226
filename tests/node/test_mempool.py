"""Mempool admission: batching, dedup, limits, app rejection, removal after commit.

The verifier is injected here so these tests exercise the pool logic alone; tests/node/
test_node_*.py run the mempool with the real native ``verify_txs``.
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from engine.app import CheckResult
from engine.hashing import blake3
from engine.mempool import Mempool, MempoolLimits


class FakeVerifier:
    """Envelopes starting with b"bad" fail; records every batch it is given."""

    def __init__(self):
        self.batches: list[list[bytes]] = []

    def __call__(self, envelopes, chain_id, threads):
        assert chain_id == b"chain"
        self.batches.append(list(envelopes))
        return [not e.startswith(b"bad") for e in envelopes]


def make(limits=None, committed=()):
    v = FakeVerifier()
    admitted: list[bytes] = []

    def check_tx(tx):
        return CheckResult(1, "app says no") if tx.payload.startswith(b"reject") else CheckResult()

    mp = Mempool(chain_id=b"chain", check_tx=check_tx,
                 find_committed=lambda ids: [t in {blake3(c) for c in committed} for t in ids],
                 limits=limits or MempoolLimits(batch_wait_ms=5), verify=v,
                 decode=lambda e: SimpleNamespace(payload=e), on_admitted=admitted.extend)
    return mp, v, admitted


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_batched_admission_and_rejections():
    async def main():
        mp, v, admitted = make(committed=[b"old"])
        mp.start()
        envs = [b"tx%d" % i for i in range(50)] + [b"bad1", b"tx0", b"reject-me", b"old"]
        results = await mp.add_many(envs)
        codes = [r.code for r in results]
        assert codes[:50] == ["ok"] * 50
        assert codes[50:] == ["bad_signature", "duplicate", "app_rejected", "duplicate"]
        assert all(r.tx_id == blake3(e) for r, e in zip(results, envs))
        assert len(v.batches) == 1, "one verify call for the whole burst"
        assert len(mp) == 50 and admitted == envs[:50]
        # A later duplicate is refused without another signature check.
        assert (await mp.add(b"tx3")).code == "duplicate"
        assert len(v.batches) == 1
        await mp.stop()
    run(main())


def test_limits_give_clear_rejections():
    async def main():
        mp, _, _ = make(MempoolLimits(txs_max=3, bytes_max=1000, tx_bytes_max=10,
                                      batch_wait_ms=0))
        mp.start()
        r = await mp.add_many([b"a1", b"a2", b"a3", b"a4", b"x" * 11])
        assert [x.code for x in r] == ["ok", "ok", "ok", "mempool_full", "tx_too_large"]
        assert "full" in r[3].log and "tx_bytes_max" in r[4].log
        await mp.stop()
    run(main())


def test_a_full_admission_queue_refuses_at_once():
    async def main():
        mp, _, _ = make(MempoolLimits(pending_txs_max=2, batch_wait_ms=50))
        mp.start()
        mp.submit([b"g1", b"g2", b"g3"])  # gossip: the third is dropped, counted
        r = await mp.add_many([b"a1"])
        assert r[0].code == "mempool_full" and "admission queue" in r[0].log
        assert r[0].tx_id == blake3(b"a1")
        assert mp.rejected["mempool_full"] == 2
        await asyncio.sleep(0.1)  # the queue drains: admission goes on
        assert len(mp) == 2 and (await mp.add_many([b"a2"]))[0].ok
        await mp.stop()
    run(main())


def test_reap_remove_committed_and_verified_cache():
    async def main():
        mp, v, _ = make()
        mp.start()
        envs = [b"t%03d" % i for i in range(10)]
        await mp.add_many(envs)
        assert mp.reap(4, 10_000) == envs[:4]
        assert mp.reap(100, 9) == envs[:2]  # byte bound: each envelope is 4 bytes
        ids = [blake3(e) for e in envs[:4]]
        # A proposal carrying already-verified txs plus one new one verifies only the new one.
        calls = len(v.batches)
        verdicts = mp.verify_block_txs(envs[:4] + [b"new"], ids + [blake3(b"new")])
        assert verdicts == [True] * 5 and v.batches[calls:] == [[b"new"]]
        mp.remove_committed(ids)
        assert len(mp) == 6 and mp.reap(1, 100) == [envs[4]]
        assert mp.size_bytes == 24
        # The proposal's new tx arriving by gossip is admitted without a second check, and a
        # committed tx coming back is refused as a duplicate without any check.
        calls = len(v.batches)
        assert (await mp.add(b"new")).ok
        assert (await mp.add(envs[0])).code == "duplicate"
        assert len(v.batches) == calls
        await mp.stop()
    run(main())
