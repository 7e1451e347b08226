"""The node's read API piece by piece (engine/node/queries.py), over a real store of a few
signed blocks with transactions and results: the recent blocks' bound, the waiters, waits for a
height, a transaction and blocks (found, woken, timed out, pruned heights skipped), block and
transaction answers, the signing set of a height and the default height of `GET /validators`.
Heights are above 256 where `is` on two equal ints is not `==`. Written against the survivors
of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from engine import consensus as cs
from engine import limits
from engine.app import Event, TxResult
from engine.block import Block
from engine.config import Genesis, GenesisValidator
from engine.crypto import SigningKey
from engine.hashing import blake3, blake3_many
from engine.node.commit import _packed_results
from engine.node.queries import NodeQueries, RecentBlocks, Waiters
from engine.node.tip import ChainTip
from engine.node.valset import ValidatorHistory
from engine.store import Store
from engine.suite import get_suite
from tests.node.helpers import run

CHAIN = b"queries-unit"
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(5)]
SET_A = cs.ValidatorSet([cs.Validator(k.public_key, 10) for k in KEYS[:4]])
SET_B = cs.ValidatorSet([cs.Validator(k.public_key, 10) for k in KEYS[:5]])
SET_C = cs.ValidatorSet([cs.Validator(k.public_key, 7) for k in KEYS[1:5]])
GENESIS = Genesis(CHAIN.decode(), [GenesisValidator(f"v{i}", 10, k.public_key)
                                   for i, k in enumerate(KEYS[:4])])
BASE, TOP = 298, 301




@pytest.fixture
def chain(tmp_path):
    """A store holding blocks BASE..TOP (3 transactions each, the middle one with events;
    height BASE + 1 stored without results), signed by 3 of set A."""
    store = Store(str(tmp_path / "store"))
    parent, blocks = blake3(b"parent"), {}
    for h in range(BASE, TOP + 1):
        txs = [b"tx %d %d" % (h, i) for i in range(3)]
        block = Block.make(chain_id=CHAIN, height=h, time_ms=1000 * h, parent_hash=parent,
                           app_hash=blake3(b"app %d" % (h - 1)), proposer_index=h % 4,
                           last_commit=b"", evidence=[b"ev"] if h == TOP else [], txs=txs,
                           validators_hash=SET_A.hash(), next_validators_hash=SET_A.hash())
        bh = block.hash()
        msg = cs.vote_sign_bytes(CHAIN, cs.VoteType.PRECOMMIT, h, 1, bh)
        cert = cs.CommitCertificate.build(h, 1, bh, {i: KEYS[i].sign(msg) for i in (0, 2, 3)},
                                          4)
        results = [] if h == BASE + 1 else _packed_results([
            TxResult(0, "ok"), TxResult(5, "no funds", b"\x09", (Event("t", {"k": "v"}),)),
            TxResult(0, "")])
        store.save_block(h, bh, block.head(), txs, cert.encode(), parent_hash=parent,
                         app_hash=blake3(b"app %d" % h), results=results,
                         tx_ids=blake3_many(txs))
        blocks[h] = (block, bh, txs)
        parent = bh
    yield store, blocks
    store.close()


def _queries(store, height=TOP, history=None, recent=None):
    return NodeQueries(store=store, tip=ChainTip(height=height), genesis=GENESIS,
                       validators=SET_A, recent=recent or RecentBlocks(), waiters=Waiters(),
                       history=history)


def test_recent_blocks_keep_the_last_bound_exactly():
    recent = RecentBlocks()
    n = limits.recent_blocks_max
    for h in range(1, n + 1):
        recent.add(h, bytes([h % 256]) * 32, [])
    assert recent.get(1) is not None and len(recent._blocks) == n
    recent.add(n + 1, b"x" * 32, [b"id"])
    assert recent.get(1) is None and recent.get(2) is not None
    assert len(recent._blocks) == n and recent.get(n + 1) == (b"x" * 32, [b"id"])


def test_waiters_wake_heights_reached_and_transactions_committed():
    async def main():
        loop = asyncio.get_running_loop()
        w = Waiters()
        f299, f300, f301 = (loop.create_future() for _ in range(3))
        done = loop.create_future()
        done.set_result(1)
        w.heights = [(299, f299), (300, f300), (301, f301), (298, done)]
        t1, t2 = loop.create_future(), loop.create_future()
        w.txs = {b"a": [t1], b"b": [t2]}
        w.committed(300, [b"x", b"b"])
        assert (f299.result(), f300.result()) == (300, 300) and not f301.done()
        assert w.heights == [(301, f301)]
        assert t2.result() == (300, 1) and not t1.done() and list(w.txs) == [b"a"]
        w.cancel_all()
        assert f301.cancelled() and t1.cancelled()

    run(main())


def test_wait_for_height_returns_at_once_waits_and_times_out_cleanly(chain):
    store, _ = chain
    q = _queries(store, height=int("300"))

    async def main():
        assert await q.wait_for_height(int("300"), 0.05) == 300  # reached: no wait
        assert await q.wait_for_height(299, 0.05) == 300
        later = asyncio.ensure_future(q.wait_for_height(302, 5))
        await asyncio.sleep(0.01)
        with pytest.raises(asyncio.TimeoutError):
            await q.wait_for_height(500, 0.05)
        assert [h for h, _ in q.waiters.heights] == [302]  # the timed-out wait is gone
        q.tip.height = 302
        q.waiters.committed(302, [])
        assert await later == 302

    run(main())


def test_wait_for_tx_finds_waits_and_times_out(chain):
    store, blocks = chain
    q = _queries(store)
    _, _, txs = blocks[300]
    known = blake3(txs[1])

    async def main():
        info = await q.wait_for_tx(known, 0.05)
        assert info is not None and (info["height"], info["index"]) == (300, 1)
        assert await q.wait_for_tx(b"u" * 32, 0.05) is None
        assert q.waiters.txs == {}  # nothing left listed after the timeout

    run(main())


def test_block_info(chain):
    store, blocks = chain
    q = _queries(store)
    block, bh, txs = blocks[TOP]
    info = q.block_info(TOP)
    assert info == {
        "height": TOP, "hash": bh.hex(), "parent_hash": blocks[TOP - 1][1].hex(),
        "time_ms": 1000 * TOP, "app_hash": blake3(b"app %d" % (TOP - 1)).hex(),
        "result_app_hash": blake3(b"app %d" % TOP).hex(), "tx_root": block.tx_root.hex(),
        "proposer_index": TOP % 4, "num_txs": 3, "tx_ids": [t.hex() for t in blake3_many(txs)],
        "evidence": 1, "certificate": {"round": 1, "signers": [0, 2, 3]}}
    assert q.block_info(TOP + 1) is None
    # A recent block's ids come from the commit, not from hashing again.
    q.recent.add(TOP, bh, [b"r" * 32] * 3)
    assert q.block_info(TOP)["tx_ids"] == [(b"r" * 32).hex()] * 3


def test_wait_for_blocks_answers_a_bounded_range_and_skips_pruned_heights(chain):
    store, blocks = chain

    class Pruned:
        """The store with BASE + 1 pruned."""

        suite = store.suite

        def load_block(self, h):
            return None if h == BASE + 1 else store.load_block(h)

    q = _queries(Pruned())

    async def main():
        got = await q.wait_for_blocks(BASE, 0.05)
        assert [b["height"] for b in got] == [BASE, BASE + 2, BASE + 3]
        assert got[0] == {"height": BASE, "hash": blocks[BASE][1].hex(), "num_txs": 3,
                          "tx_ids": [t.hex() for t in blake3_many(blocks[BASE][2])]}
        assert [b["height"] for b in await q.wait_for_blocks(BASE, 0.05, count_max=1)] == [BASE]
        assert [b["height"] for b in await q.wait_for_blocks(BASE + 2, 0.05, count_max=2)] == \
            [BASE + 2, BASE + 3]
        assert [b["height"] for b in await q.wait_for_blocks(BASE, 0.05, count_max=3)] == \
            [BASE, BASE + 2]
        assert [b["height"] for b in await q.wait_for_blocks(TOP, 0.05)] == [TOP]
        q.recent.add(BASE, b"h" * 32, [b"i" * 32])
        first = (await q.wait_for_blocks(BASE, 0.05, count_max=1))[0]
        assert first == {"height": BASE, "hash": (b"h" * 32).hex(), "num_txs": 1,
                         "tx_ids": [(b"i" * 32).hex()]}
        assert [b["height"] for b in await q.wait_for_blocks(BASE, 0.05, count_max=2)] == \
            [BASE]  # BASE + 1 is pruned; the range ends at BASE + 1 all the same
        assert await q.wait_for_blocks(1, 0.05, count_max=2) == []  # height 1 is a height
        assert await q.wait_for_blocks(TOP + 1, 0.05) == []  # not there in time
        # A block committed while waiting is answered.
        waiting = asyncio.ensure_future(q.wait_for_blocks(TOP + 1, 5))
        await asyncio.sleep(0.02)
        assert not waiting.done()
        q.recent.add(TOP + 1, b"n" * 32, [])
        q.tip.height = TOP + 1
        q.waiters.committed(TOP + 1, [])
        assert [b["height"] for b in await waiting] == [TOP + 1]
        for bad in (0, -1, "1", 1.0):
            with pytest.raises(ValueError, match="from_height"):
                await q.wait_for_blocks(bad, 0.05)  # type: ignore[arg-type]

    run(main())


def test_tx_info(chain):
    store, blocks = chain
    q = _queries(store)
    _, bh, txs = blocks[300]
    info = q.tx_info(blake3(txs[1]))
    assert info is not None
    assert {k: info[k] for k in ("tx_id", "height", "index", "tx", "block_hash")} == {
        "tx_id": blake3(txs[1]).hex(), "height": 300, "index": 1, "tx": txs[1].hex(),
        "block_hash": bh.hex()}
    assert info["result"] == {"code": 5, "log": "no funds", "data": "09",
                              "events": [{"type": "t", "attributes": {"k": "v"}}]}
    proof = info["proof"]
    assert proof["root"] == store.load_block(300).tx_root.hex()
    assert (proof["index"], proof["size"]) == (1, 3)
    # A block stored without results: the defaults.
    for i in (0, 2):
        no_results = q.tx_info(blake3(blocks[BASE + 1][2][i]))
        assert no_results["result"] == {"code": 0, "log": "", "data": "", "events": []}
    assert q.tx_info(b"n" * 32) is None

    class Pruned:
        suite = store.suite

        def find_tx(self, tx_id):
            return store.find_tx(tx_id)

        def load_block(self, h):
            return None

    assert _queries(Pruned()).tx_info(blake3(txs[1])) is None  # indexed, its block pruned


def test_validator_set_at_checks_the_height_and_reads_the_history():
    history = ValidatorHistory(SET_A, [(302, SET_B.encode()), (303, SET_C.encode())],
                               committed_height=301)
    q = _queries(None, height=301, history=history)
    assert q.validator_set_at(1) == SET_A and q.validator_set_at(302) == SET_B
    for bad in (0, -1, "5", None):
        with pytest.raises(ValueError, match="height must be an int >= 1"):
            q.validator_set_at(bad)  # type: ignore[arg-type]
    assert _queries(None).validator_set_at(999) == SET_A  # no history: the genesis set
    assert _queries(None).validator_set_at(1) == SET_A
    with pytest.raises(ValueError, match="height must be an int >= 1, not 0"):
        _queries(None).validator_set_at(0)


def test_validators_info_defaults_to_the_next_height():
    history = ValidatorHistory(SET_A, [(302, SET_B.encode()), (303, SET_C.encode())],
                               committed_height=301)
    q = _queries(SimpleNamespace(suite=get_suite(None)), height=301, history=history)
    info = q.validators_info()
    assert info["height"] == 302 and info["total_power"] == 50
    assert info["hash"] == SET_B.hash().hex()
    assert [(v["index"], v["name"], v["power"]) for v in info["validators"]] == \
        [(0, "v0", 10), (1, "v1", 10), (2, "v2", 10), (3, "v3", 10), (4, "", 10)]
    assert info["validators"][4]["pub_key"] == info["validators"][4]["public_key"] \
        == KEYS[4].public_key.hex()
    assert q.validators_info(303)["total_power"] == 28
    assert q.validators_info(301)["height"] == 301


def test_light_block(chain):
    store, blocks = chain
    q = _queries(store)
    block, bh, _ = blocks[300]
    lb = q.light_block(300)
    assert lb == {"height": 300, "hash": bh.hex(), "header": block.header().encode().hex(),
                  "certificate": store.load_block(300).certificate.hex(),
                  "validators": SET_A.encode().hex()}
    assert q.light_block(TOP + 1) is None
    assert q.light_block(1) is None  # a height, not stored here
    for bad in (0, -3, "300"):
        with pytest.raises(ValueError, match="height must be a positive int"):
            q.light_block(bad)  # type: ignore[arg-type]
