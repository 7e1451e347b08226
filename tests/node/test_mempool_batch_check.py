"""Admission with an application's batch check (``check_txs``): one call per admission chunk,
the same outcome as ``check_tx`` one by one, and a batch call that fails falls back to it."""
from __future__ import annotations

import asyncio

from engine import crypto, tx
from engine.app import CheckResult, KVStoreApp
from engine.mempool import Mempool, MempoolLimits

CHAIN = "batch"


def _envelopes(payloads):
    keys = [crypto.SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(3)]
    return [tx.encode_tx(keys[i % 3], i, p, CHAIN) for i, p in enumerate(payloads)]


PAYLOADS = [b"a=1", b"noeq", b"b=2", b"=x", b"val:zz=1", b"c=" + b"v" * 5000, b"d=4"] * 3


def _admit(envs, *, check_txs=None, check_tx=None, chunk=4):
    async def main():
        app = KVStoreApp()
        mp = Mempool(chain_id=CHAIN.encode(), check_tx=check_tx or app.check_tx,
                     check_txs=check_txs, find_committed=lambda ids: [False] * len(ids),
                     limits=MempoolLimits(batch_wait_ms=0, admit_chunk_txs=chunk))
        mp.start()
        try:
            results = await mp.add_many(envs)
        finally:
            await mp.stop()
        return [(r.code, r.log) for r in results], mp

    return asyncio.run(asyncio.wait_for(main(), 20))


def test_batch_check_gives_the_one_by_one_outcome_in_one_call_per_chunk():
    envs = _envelopes(PAYLOADS)
    envs.append(envs[0])  # a duplicate in the same request: refused before any check
    app = KVStoreApp()
    calls: list[int] = []

    def batch(txs):
        calls.append(len(txs))
        return app.check_txs(txs)

    single, _ = _admit(envs)
    batched, mp = _admit(envs, check_txs=batch)
    assert batched == single
    assert [c for c, _ in single].count("ok") == 9  # the check refused the others
    assert calls == [4, 4, 4, 4, 4, 2]  # each chunk of 4 (then refused as a duplicate)
    assert mp.batch_check_failures == 0


def test_a_failing_batch_call_falls_back_to_check_tx():
    envs = _envelopes(PAYLOADS)
    app = KVStoreApp()
    single, _ = _admit(envs)

    def raises(txs):
        raise RuntimeError("batch broke")

    def short(txs):
        return app.check_txs(txs)[:-1]

    for bad in (raises, short):
        got, mp = _admit(envs, check_txs=bad)
        assert got == single
        assert mp.batch_check_failures == 6, bad.__name__  # every chunk fell back


def test_batch_verdicts_are_used_as_given():
    """The batch's answers decide: a batch stricter than check_tx refuses."""
    envs = _envelopes([b"a=1", b"b=2"])
    got, _ = _admit(envs, check_txs=lambda txs: [CheckResult(5, "batch says no")] * len(txs))
    assert got == [("app_rejected", "batch says no")] * 2


def test_a_node_with_the_kvstore_admits_through_its_batch_check(tmp_path):
    from engine.node import Node
    from tests.node.helpers import make_testnet, run

    (home,) = make_testnet(tmp_path, 1, chain_id=CHAIN)

    async def main():
        node = Node(home, rpc=False)
        await node.start()
        try:
            assert node.mempool._check_txs is not None
            result = await node.submit_tx(_envelopes([b"k=v"])[0])
            assert result.ok
            bad = await node.submit_tx(_envelopes([b"", b"noeq"])[1])
            assert (bad.code, bad.log) == ("app_rejected", KVStoreApp().check_tx(
                tx.decode_tx(_envelopes([b"", b"noeq"])[1])).log)
        finally:
            await node.stop()

    run(main())
