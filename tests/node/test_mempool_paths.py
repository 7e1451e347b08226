"""Mempool paths cosmic-ray found untested (docs/mutation.md): AddResult.ok, the rejection
counters, a verifier that raises, stop() with requests waiting, verify_ahead, and the bounds
of the verified and committed caches. Verifier, decoder and store lookups are injected."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from engine.app import CheckResult
from engine.hashing import blake3
from engine.mempool import AddResult, Mempool, MempoolLimits

CODES_REFUSED = ["duplicate", "malformed", "bad_signature", "app_rejected", "mempool_full",
                 "tx_too_large"]


class Recorder:
    """A verifier (envelopes starting with b"bad" fail) and a store lookup, both recording."""

    def __init__(self, committed=()):
        self.batches: list[list[bytes]] = []
        self.lookups: list[list[bytes]] = []
        self.committed = {blake3(c) for c in committed}
        self.fail_next = False

    def verify(self, envelopes, chain_id, threads):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("verifier crashed")
        self.batches.append(list(envelopes))
        return [not e.startswith(b"bad") for e in envelopes]

    def find_committed(self, ids):
        self.lookups.append(list(ids))
        return [i in self.committed for i in ids]


def make(limits: MempoolLimits, rec: Recorder) -> Mempool:
    def check_tx(tx):
        return CheckResult(1, "no") if tx.payload.startswith(b"reject") else CheckResult()

    return Mempool(chain_id=b"chain", check_tx=check_tx, find_committed=rec.find_committed,
                   limits=limits, verify=rec.verify,
                   decode=lambda e: SimpleNamespace(payload=e))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_ok_is_true_for_ok_only():
    assert AddResult("ok", bytes(32)).ok is True
    for code in CODES_REFUSED:
        assert AddResult(code, bytes(32)).ok is False, code


def test_rejections_are_counted_by_code():
    async def main():
        rec = Recorder(committed=[b"old"])
        mp = make(MempoolLimits(txs_max=2, tx_bytes_max=10, bytes_max=100, batch_wait_ms=0),
                  rec)
        mp.start()
        r = await mp.add_many([b"a", b"bad1", b"bad2", b"a", b"old", b"reject", b"x" * 11,
                               b"b", b"c"])
        assert [x.ok for x in r] == [True, False, False, False, False, False, False, True,
                                     False]
        assert mp.rejected == {"bad_signature": 2, "duplicate": 2, "app_rejected": 1,
                               "tx_too_large": 1, "mempool_full": 1}
        # Gossiped transactions (no one waits for an answer) are counted too. (Room first:
        # a batch that finds the pool full is refused as mempool_full without verifying.)
        mp.remove_committed([blake3(b"b")])
        mp.submit([b"bad3", b"a"])
        for _ in range(100):
            await asyncio.sleep(0.01)
            if mp.rejected["duplicate"] == 3:
                break
        assert mp.rejected["bad_signature"] == 3 and mp.rejected["duplicate"] == 3
        await mp.stop()
    run(main())


def test_a_verifier_failure_fails_its_batch_and_admission_goes_on():
    async def main():
        rec = Recorder()
        mp = make(MempoolLimits(batch_wait_ms=0), rec)
        mp.start()
        rec.fail_next = True
        # Each caller of the failed batch gets a refusal it can report (never an exception
        # that would surface as an HTTP 500), naming the failure.
        failed = await mp.add_many([b"t1", b"t2"])
        assert [x.code for x in failed] == ["internal_error"] * 2
        assert all("verifier crashed" in x.log for x in failed)
        assert len(mp) == 0
        r = await mp.add_many([b"t1", b"t3"])  # the next batch is admitted as usual
        assert [x.code for x in r] == ["ok", "ok"] and len(mp) == 2
        await mp.stop()
    run(main())


def test_stop_cancels_waiting_requests_and_drops_waiting_gossip():
    async def main():
        rec = Recorder()
        mp = make(MempoolLimits(batch_wait_ms=5000), rec)  # nothing is admitted before stop
        mp.start()
        mp.submit([b"g1", b"g2"])  # gossip: no future to cancel
        waiting = asyncio.ensure_future(mp.add_many([b"l1"]))
        await asyncio.sleep(0.05)
        await mp.stop()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(mp) == 0 and rec.batches == []
        quick = make(MempoolLimits(batch_wait_ms=0), rec)
        quick.start()
        await quick.stop()
        quick.submit([b"late"])  # admission has stopped: nothing is admitted any more
        await asyncio.sleep(0.05)
        assert len(quick) == 0 and rec.batches == []
    run(main())


def test_verify_ahead_checks_only_unverified_and_remembers_the_valid():
    async def main():
        rec = Recorder()
        mp = make(MempoolLimits(batch_wait_ms=0), rec)
        mp.start()
        await mp.add_many([b"known"])
        envs = [b"known", b"new", b"bad-new"]
        ids = [blake3(e) for e in envs]
        calls = len(rec.batches)
        await mp.verify_ahead(envs, ids)
        assert rec.batches[calls:] == [[b"new", b"bad-new"]]
        assert mp.is_verified(ids[1]) and not mp.is_verified(ids[2])
        # The block check then verifies only what is still unverified: the bad one.
        assert mp.verify_block_txs(envs, ids) == [True, True, False]
        assert rec.batches[calls + 1:] == [[b"bad-new"]]
        await mp.verify_ahead(envs[:2], ids[:2])  # all verified: no call at all
        assert len(rec.batches) == calls + 2
        await mp.stop()
    run(main())


def test_verified_cache_forgets_the_oldest_first():
    """Pooled transactions count as verified while pooled; the bounded cache holds the others
    (verified ahead for a proposal, or refused after their signature was checked)."""
    async def main():
        rec = Recorder()
        mp = make(MempoolLimits(batch_wait_ms=0, verified_cache_max=2), rec)
        mp.start()
        await mp.add_many([b"p1"])
        envs = [b"v1", b"v2", b"v3"]
        await mp.verify_ahead(envs, [blake3(e) for e in envs])
        assert [mp.is_verified(blake3(e)) for e in envs] == [False, True, True]
        assert mp.is_verified(blake3(b"p1"))
        mp.remove_committed([blake3(b"p1"), blake3(b"v3")])
        assert not mp.is_verified(blake3(b"p1")) and not mp.is_verified(blake3(b"v3"))
        # A transaction refused after its signature was checked (here by check_tx) is
        # remembered as verified: a proposal carrying it does not verify it again.
        (refused,) = await mp.add_many([b"reject-me"])
        assert refused.code == "app_rejected" and mp.is_verified(refused.tx_id)
        calls = len(rec.batches)
        assert mp.verify_block_txs([b"reject-me"], [refused.tx_id]) == [True]
        assert len(rec.batches) == calls
        await mp.stop()
    run(main())


def test_committed_cache_keeps_exactly_its_bound():
    async def main():
        rec = Recorder()
        mp = make(MempoolLimits(batch_wait_ms=0, committed_cache_max=2), rec)
        mp.start()
        envs = [b"c1", b"c2", b"c3"]
        mp.remove_committed([blake3(e) for e in envs])
        # c2 and c3 are remembered: refused as duplicates with no store lookup.
        lookups = len(rec.lookups)
        r = await mp.add_many([b"c2", b"c3"])
        assert [x.code for x in r] == ["duplicate", "duplicate"]
        assert len(rec.lookups) == lookups
        # c1 was forgotten: it costs a store lookup (the fake store does not hold it).
        await mp.add_many([b"c1"])
        assert rec.lookups[lookups:] == [[blake3(b"c1")]]
        await mp.stop()
    run(main())


def test_exact_bounds_admit_and_one_more_refuses():
    async def main():
        rec = Recorder()
        # Bounds above 256 (CPython caches small ints, so an identity test would pass below).
        envs = [b"e%05d" % i for i in range(301)]
        queue = make(MempoolLimits(batch_wait_ms=0, pending_txs_max=300), rec)
        queue.start()
        r = await queue.add_many(envs)  # 301 > pending_txs_max: the last refused at once
        assert [x.code for x in r] == ["ok"] * 300 + ["mempool_full"]
        assert "admission queue" in r[300].log
        mp = make(MempoolLimits(txs_max=300, batch_wait_ms=0), rec)
        mp.start()
        r = await mp.add_many(envs)  # the pool holds 300
        assert [x.code for x in r] == ["ok"] * 300 + ["mempool_full"]
        assert "mempool is full" in r[300].log
        await queue.stop()
        # A fresh pool: a tx of exactly tx_bytes_max is admitted, one byte more is refused and
        # never handed to the verifier.
        mp2 = make(MempoolLimits(tx_bytes_max=8, bytes_max=10_000, batch_wait_ms=0), rec)
        mp2.start()
        calls = len(rec.batches)
        r = await mp2.add_many([b"x" * 8, b"y" * 9])
        assert [x.code for x in r] == ["ok", "tx_too_large"]
        assert rec.batches[calls:] == [[b"x" * 8]]
        await mp.stop()
        await mp2.stop()
    run(main())


def test_reap_fills_a_block_to_exactly_its_byte_bound():
    async def main():
        rec = Recorder()
        mp = make(MempoolLimits(batch_wait_ms=0), rec)
        mp.start()
        envs = [b"r%03d" % i for i in range(5)]  # 4 bytes each
        await mp.add_many(envs)
        assert mp.reap(100, 8) == envs[:2] and mp.reap(100, 7) == envs[:1]
        assert mp.reap(3, 100) == envs[:3]
        await mp.stop()
    run(main())


def test_malformed_gossip_and_lookups():
    async def main():
        rec = Recorder()

        def decode(e):
            if e.startswith(b"mal"):
                raise ValueError("bad layout")
            return SimpleNamespace(payload=e)

        admitted: list[list[bytes]] = []
        sizes: list[tuple[int, float]] = []
        mp = Mempool(chain_id=b"chain", check_tx=lambda tx: CheckResult(),
                     find_committed=rec.find_committed, limits=MempoolLimits(batch_wait_ms=0),
                     verify=rec.verify, decode=decode, on_admitted=admitted.append)
        mp.observe_batch = lambda size, seconds: sizes.append((size, seconds))
        mp.start()
        r = await mp.add_many([b"a", b"mal-1"])
        assert [x.code for x in r] == ["ok", "malformed"] and "bad layout" in r[1].log
        assert admitted == [[b"a"]] and sizes[0][0] == 2 and 0 <= sizes[0][1] < 5
        # Gossip is admitted but not handed back for gossip (no echo); pooled ids cost no
        # store lookup.
        lookups = len(rec.lookups)
        mp.submit([b"g1", b"a"])
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(mp) == 2:
                break
        assert len(mp) == 2 and admitted == [[b"a"]]
        assert rec.lookups[lookups:] == [[blake3(b"g1")]]
        with pytest.raises(AttributeError):
            r[0].code = "duplicate"  # results are frozen
        await mp.stop()
    run(main())
