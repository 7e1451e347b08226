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
        for _ in range(500):  # the queue drains: admission goes on (within 5 s on a busy box)
            if len(mp) == 2:
                break
            await asyncio.sleep(0.01)
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


def test_a_check_tx_exception_refuses_that_tx_only():
    async def main():
        mp, _, _ = make()

        def check_tx(tx):
            if tx.payload == b"boom":
                raise RuntimeError("app bug")
            return CheckResult()

        mp._check_tx = check_tx
        mp.start()
        r = await mp.add_many([b"a", b"boom", b"b"])
        assert [x.code for x in r] == ["ok", "app_error", "ok"]
        assert "app bug" in r[1].log and len(mp) == 2
        await mp.stop()
    run(main())


def test_a_failing_batch_answers_every_open_caller_once():
    """Admission itself failing midway (here the decoder) answers what is still open with
    ``internal_error``; what was answered before keeps its answer (no exception, no None)."""
    async def main():
        mp, _, _ = make()

        def decode(env):
            if env == b"crash":
                raise RuntimeError("decoder bug")
            return SimpleNamespace(payload=env)

        mp._decode_with_id = lambda env, tx_id: decode(env)
        mp.start()
        r = await mp.add_many([b"a", b"crash", b"b"])
        assert [x.code for x in r] == ["ok", "internal_error", "internal_error"]
        assert "decoder bug" in r[1].log
        await mp.stop()
    run(main())


def _account_pool(check_tx=None, **limits):
    """A pool whose envelopes are ``sender:nonce:payload`` (decoded as such)."""
    def decode(env):
        sender, nonce, payload = env.split(b":", 2)
        return SimpleNamespace(sender=sender, nonce=int(nonce), payload=payload,
                               tx_id=blake3(env))

    mp = Mempool(chain_id=b"chain", check_tx=check_tx or (lambda tx, pending: CheckResult()),
                 find_committed=lambda ids: [False] * len(ids),
                 limits=MempoolLimits(batch_wait_ms=1, **limits), verify=FakeVerifier(),
                 decode=decode, check_tx_pending=True)
    return mp


def test_check_tx_sees_the_pool_and_recheck_evicts():
    async def main():
        seen = []

        def check_tx(tx, pending):
            seen.append((pending.next_nonce(tx.sender),
                         [p.nonce for p in pending.by_sender(tx.sender)]))
            expected = pending.next_nonce(tx.sender) or 0
            return CheckResult() if tx.nonce == expected else CheckResult(2, "nonce gap")

        mp = _account_pool(check_tx)
        mp.start()
        r = await mp.add_many([b"a:0:x", b"a:1:y", b"a:3:gap", b"b:0:z"])
        assert [x.code for x in r] == ["ok", "ok", "app_rejected", "ok"]
        assert seen[:3] == [(None, []), (1, [0]), (2, [0, 1])]
        # After a commit the app re-judges the pool: a:1 became invalid (say, funds gone).
        evicted = mp.recheck(lambda tx, pending: CheckResult(3, "overdraft")
                             if tx.payload == b"y" else CheckResult())
        assert [reason for _, reason in evicted] == ["overdraft"]
        assert len(mp) == 2 and mp.pending.next_nonce(b"a") == 1
        assert mp.rejected["recheck_evicted"] == 1
        # A recheck that raises evicts that transaction only.
        mp.recheck(lambda tx, pending: 1 / 0 if tx.sender == b"b" else CheckResult())
        assert len(mp) == 1 and mp.pending.next_nonce(b"b") is None
        await mp.stop()
    run(main())


def test_reap_orders_each_sender_by_nonce_and_honours_priority():
    async def main():
        prio = {b"p": 5}

        def check_tx(tx, pending):
            return CheckResult(priority=prio.get(tx.sender, 0))

        mp = _account_pool(check_tx)
        mp.start()
        # Gossip from two nodes delivered a's nonces out of order.
        await mp.add_many([b"a:1:second", b"b:0:x", b"a:0:first", b"a:2:third"])
        assert mp.reap(10, 10_000) == [b"a:0:first", b"b:0:x", b"a:1:second", b"a:2:third"]
        await mp.add_many([b"p:0:paid"])
        assert mp.reap(2, 10_000) == [b"p:0:paid", b"a:0:first"]
        mp.remove_committed([blake3(b"a:1:second"), blake3(b"a:0:first")])
        assert mp.reap(10, 10_000) == [b"p:0:paid", b"b:0:x", b"a:2:third"]
        await mp.stop()
    run(main())


def test_with_nonces_admission_asks_the_store_only_for_refused_nonces():
    """Issue 14, item 4: with nonces enforced (as every node does), admission makes no store
    lookup per batch: a committed transaction consumed its (sender, nonce), so the nonce check
    refuses it, and only then is the store asked, to answer "already committed" rather than
    "stale nonce". Fails if the batch lookup comes back, or if a committed transaction that
    left the in-memory cache were admitted again."""
    from engine import crypto, tx
    from engine.nonces import NonceTable

    key = crypto.SigningKey.generate()
    envs = [tx.encode_tx(key, n, b"k%d=v" % n, "chain") for n in range(6)]
    ids = [tx.decode_tx(e).tx_id for e in envs]
    state: dict[bytes, bytes] = {}
    table = NonceTable(state.get)
    committed: set[bytes] = set()
    lookups: list[list[bytes]] = []

    def find_committed(batch):
        lookups.append(list(batch))
        return [t in committed for t in batch]

    async def main():
        mp = Mempool(chain_id=b"chain", check_tx=lambda t: CheckResult(),
                     find_committed=find_committed, nonces=table,
                     limits=MempoolLimits(batch_wait_ms=1, committed_cache_max=1))
        mp.start()
        try:
            assert [r.code for r in await mp.add_many(envs[:3])] == ["ok"] * 3
            assert lookups == []  # fresh transactions: no store lookup at all
            # Block 1 commits nonces 0-2; the id cache (1 id here) keeps only the last.
            state.update(table.apply_block((key.public_key, n) for n in range(3)))
            table.committed()
            committed.update(ids[:3])
            mp.remove_committed(ids[:3])
            results = await mp.add_many([envs[1], envs[3]])
            assert [(r.code, r.log) for r in results] == [("duplicate", "already committed"),
                                                         ("ok", "")]
            assert lookups == [[ids[1]]]  # only the refused one was looked up
            # Another envelope reusing a consumed nonce is stale, not a duplicate.
            other = tx.encode_tx(key, 2, b"different", "chain")
            assert (await mp.add(other)).code == "stale_nonce"
        finally:
            await mp.stop()
    run(main())


def test_commits_evict_pooled_transactions_whose_nonce_became_stale():
    """After a block, a pooled transaction whose nonce the block used (through another
    transaction) or moved out of its sender's window is evicted; one whose nonce is still
    fresh (above the new highest, or a gap below it) stays. Fails if the all-fresh shortcut
    skipped a sender that has a stale nonce, or if eviction dropped a fresh one."""
    from engine import crypto, tx
    from engine.nonces import NonceTable

    a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()
    state: dict[bytes, bytes] = {}
    table = NonceTable(state.get)

    async def main():
        mp = Mempool(chain_id=b"chain", check_tx=lambda t: CheckResult(),
                     find_committed=lambda batch: [False] * len(batch), nonces=table,
                     limits=MempoolLimits(batch_wait_ms=1))
        mp.start()
        try:
            pooled = {(k, n): tx.encode_tx(k, n, b"k=%d" % n, "chain")
                      for k, n in ((a, 3), (a, 5), (a, 9), (b, 7), (b, 8))}
            assert all(r.ok for r in await mp.add_many(list(pooled.values())))
            # A block commits other transactions: a's nonce 5 (3 and 4 stay usable gaps)
            # and b's nonce 2 (b's pooled 7 and 8 stay above it: the shortcut's case).
            state.update(table.apply_block([(a.public_key, 5), (b.public_key, 2)]))
            table.committed()
            assert mp.evict_stale_nonces([a.public_key, b.public_key, a.public_key]) == 1
            left = {(k, n) for (k, n), env in pooled.items()
                    if tx.decode_tx(env).tx_id in mp}
            assert left == {(a, 3), (a, 9), (b, 7), (b, 8)}
            assert mp.rejected.get("stale_nonce") == 1
            # Then a block at b's nonce 8: 7 becomes a gap (fresh), 8 is used (stale).
            state.update(table.apply_block([(b.public_key, 8)]))
            table.committed()
            assert mp.evict_stale_nonces([b.public_key]) == 1
            assert tx.decode_tx(pooled[(b, 7)]).tx_id in mp
            assert tx.decode_tx(pooled[(b, 8)]).tx_id not in mp
        finally:
            await mp.stop()
    run(main())
