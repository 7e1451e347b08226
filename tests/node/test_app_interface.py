"""What applications get from the node: queries (embedded and GET /query), results with data
and events (GET /tx, wait=commit), WebSocket subscriptions with filters and slow-client drops,
the block context, and the async client."""
from __future__ import annotations

import asyncio
import struct

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import config, crypto, tx
from engine.app import Application, BlockResult, Event, QueryResult, TxResult
from engine.client import AsyncClient, Client, ClientError
from engine.hashing import blake3
from engine.node import Node
from tests.node.helpers import run


class NotesApp(Application):
    """Counts notes per sender; each tx emits a ``note`` event, each block a ``block`` one."""

    name = "notes"

    def __init__(self):
        super().__init__()
        self.pending: dict[bytes, bytes] = {}
        self.contexts: list = []

    def finalize_block(self, height, txs, context):
        self.contexts.append(context)
        writes: dict[bytes, bytes] = {}
        results = []
        for t in txs:
            if t.payload == b"fail":
                results.append(TxResult(3, "told to fail"))
                continue
            old = writes.get(t.sender) or self.state.get(t.sender) or bytes(8)
            writes[t.sender] = struct.pack("<Q", struct.unpack("<Q", old)[0] + 1)
            results.append(TxResult(data=b"noted:" + t.payload, events=[
                Event("note", {"sender": t.sender.hex(), "text": t.payload.decode()})]))
        self.last_app_hash = blake3(self.last_app_hash + b"".join(sorted(writes.values())))
        self.pending = writes
        return BlockResult(results, self.last_app_hash, writes,
                           events=[Event("block", {"txs": str(len(txs))})] if txs else [])

    def commit(self):
        self.pending = {}

    def query(self, path, data):
        if path == "/boom":
            raise RuntimeError("query bug")
        if path != "/count":
            return QueryResult(1, log="unknown path")
        value = self.pending.get(data) or self.state.get(data)
        return QueryResult(value=value) if value else QueryResult(2, log="no notes")


def _solo(tmp_path):
    return config.init_home(str(tmp_path / "solo"), "notes", p2p_port=0, rpc_port=0)


def test_query_results_events_and_context(tmp_path):
    home = _solo(tmp_path)
    key = crypto.SigningKey.generate()

    async def main():
        app = NotesApp()
        node = Node(home.path, app=app)
        await node.start()
        try:
            r = await node.submit_tx(tx.encode_tx(key, 0, b"hello", "notes"))
            info = await node.wait_for_tx(r.tx_id, 10)
            assert info["result"]["data"] == b"noted:hello".hex()
            assert info["result"]["events"] == [
                {"type": "note", "attributes": {"sender": key.public_key.hex(),
                                                "text": "hello"}}]
            # Embedded query.
            answer = node.query("/count", key.public_key)
            assert answer["code"] == 0 and answer["codespace"] == "app"
            assert struct.unpack("<Q", bytes.fromhex(answer["value"]))[0] == 1
            assert answer["height"] == node.latest_height and answer["proof"] is None
            assert node.query("/count", b"nobody")["code"] == 2
            boom = node.query("/boom", b"")
            assert boom["codespace"] == "engine" and "query bug" in boom["log"]
            old = node.query("/count", key.public_key, height=0)
            assert old["code"] != 0 and "not kept" in old["log"]
            # Over RPC, with the sync client (in a thread: it blocks) and the async one.
            c = Client(node.rpc.url)
            loop = asyncio.get_running_loop()
            sync = await loop.run_in_executor(None, c.query, "/count", key.public_key)
            c.close()
            assert sync["value"] == answer["value"]
            async with AsyncClient(node.rpc.url) as ac:
                got = await ac.query("/count", key.public_key, prove=True)
                assert got["value"] == answer["value"] and got["proof"] is None
                with pytest.raises(ClientError) as e:
                    await ac._request("GET", "/query?path=/count&data=zz")
                assert e.value.status == 400 and e.value.code == "bad_data"
                # POST /tx?wait=commit carries data and events too; a failed tx its code.
                done = await ac.submit_tx(tx.encode_tx(key, 1, b"fail", "notes"),
                                          wait_commit=True)
                assert done["result"]["code"] == 3 and done["result"]["events"] == []
                fetched = await ac.tx(r.tx_id)
                assert fetched["result"]["data"] == b"noted:hello".hex()
            # The block context: height, time, proposer, hash, signers of the parent.
            ctx = next(c for c in app.contexts if c.height == info["height"])
            block = node.block_info(info["height"])
            assert ctx.block_hash.hex() == block["hash"] and ctx.time_ms == block["time_ms"]
            assert ctx.proposer == home.validator_key.public_key and ctx.chain_id == "notes"
            later = [c for c in app.contexts if c.height > 1]
            assert later and later[0].last_commit_signers == (home.validator_key.public_key,)
            assert app.contexts[0].height == 1 and app.contexts[0].last_commit_signers == ()
        finally:
            await node.stop()

    run(main())


def test_subscription_filters_and_slow_clients(tmp_path):
    home = _solo(tmp_path)
    alice, bob = crypto.SigningKey.generate(), crypto.SigningKey.generate()

    async def main():
        node = Node(home.path, app=NotesApp())
        await node.start()
        try:
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{node.rpc.url}/subscribe",
                             params={"filter": "note.sender"}) as resp:
                assert resp.status == 400 and (await resp.json())["error"] == "bad_filter"
            ac = AsyncClient(node.rpc.url)
            stream = ac.subscribe([f"note.sender={bob.public_key.hex()}"])
            first = asyncio.ensure_future(stream.__anext__())
            await asyncio.sleep(0.3)  # subscribed before the txs below are committed
            await node.submit_tx(tx.encode_tx(alice, 0, b"from alice", "notes"))
            r = await node.submit_tx(tx.encode_tx(bob, 0, b"from bob", "notes"))
            message = await asyncio.wait_for(first, 10)
            assert message["kind"] == "tx" and message["tx_id"] == r.tx_id.hex()
            assert message["result"]["events"][0]["attributes"]["text"] == "from bob"
            await stream.aclose()
            await ac.close()
            # A block-event filter and a subscriber that never reads: dropped with a reason.
            blocks = node.subscribe(["block"])
            slow = node.subscribe([], queue_max=2)
            for i in range(1, 6):
                await node.submit_tx(tx.encode_tx(alice, i, b"n%d" % i, "notes"))
                await asyncio.sleep(0.15)
            await asyncio.sleep(0.5)
            assert slow.reason is not None and slow.reason.startswith("slow_client")
            assert (await slow.get()) is None
            msg = await asyncio.wait_for(blocks.get(), 5)
            assert msg["kind"] == "block" and msg["events"][0]["type"] == "block"
            assert blocks.reason is None
        finally:
            await node.stop()
        assert blocks.reason == "node stopped"

    run(main())


def test_two_argument_finalize_block_still_works(tmp_path):
    home = _solo(tmp_path)

    class Old(NotesApp):
        def finalize_block(self, height, txs):
            return BlockResult([TxResult() for _ in txs], self.last_app_hash)

    async def main():
        node = Node(home.path, app=Old())
        await node.start()
        try:
            await node.wait_for_height(2, 10)
        finally:
            await node.stop()

    run(main())


def test_stopping_a_node_closes_its_subscribers(tmp_path):
    home = _solo(tmp_path)

    async def main():
        node = Node(home.path, app=NotesApp())
        await node.start()
        client = AsyncClient(node.rpc.url)
        stream = client.subscribe(["note"])
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.3)
        await asyncio.wait_for(node.stop(), 10)
        last = await asyncio.wait_for(first, 5)
        assert last == {"error": "node stopped", "message": "node stopped"}
        await stream.aclose()
        await client.close()

    run(main())


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=40),
    st.builds(lambda k, v: k + b"=" + v, st.binary(max_size=300), st.binary(max_size=20)),
    st.builds(lambda k, v: b"\xffengine/"[:k] + v, st.integers(0, 9), st.binary(max_size=12)),
    st.builds(lambda n, m: b"k" * n + b"=" + b"v" * m, st.sampled_from([0, 1, 255, 256, 257]),
              st.sampled_from([0, 4095, 4096, 4097]))))
def test_kvstore_admission_check_agrees_with_parse_kv(payload):
    from engine.app import kv_ok, parse_kv

    assert kv_ok(payload) == (parse_kv(payload) is not None)
    assert kv_ok(bytearray(payload)) == (parse_kv(payload) is not None)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.one_of(
    st.builds(lambda k, v: k + b"=" + v, st.sampled_from([b"a", b"b", b"c", b"", b"k" * 257]),
              st.binary(max_size=8)),
    st.sampled_from([b"noeq", b"\xffengine/n=1", b"val:zz=1"])), max_size=10),
    min_size=1, max_size=4))
def test_kvstore_native_block_parse_gives_the_python_loops_results(blocks):
    """The kvstore parses a block without validator transactions natively (a list of Tx);
    given the same blocks as tuples it takes its per-transaction loop: same results, app
    hashes, writes and their order, height after height."""
    from engine import app as app_mod

    native = app_mod._kv_writes
    parsed: list[int] = []

    def counting(txs, *args):
        out = native(txs, *args)
        parsed.append(out is not None)
        return out

    fast, slow = app_mod.KVStoreApp(), app_mod.KVStoreApp()
    key = crypto.SigningKey.from_seed(b"\x07" * 32)
    for height, payloads in enumerate(blocks, start=1):
        txs = [tx.decode_tx(tx.encode_tx(key, n, p, "c")) for n, p in enumerate(payloads)]
        app_mod._kv_writes = counting
        try:
            a = fast.finalize_block(height, list(txs))
        finally:
            app_mod._kv_writes = native
        # The native parse took the block unless it holds a validator transaction.
        assert parsed.pop() == (not any(p.startswith(b"val:") for p in payloads))
        b = slow.finalize_block(height, tuple(txs))
        assert a.tx_results == b.tx_results
        assert a.app_hash == b.app_hash
        assert list(a.writes.items()) == list(b.writes.items())
        assert a.validator_updates == b.validator_updates
        fast.commit()
        slow.commit()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda k, v: k + b"=" + v, st.sampled_from([b"a", b"", b"k" * 257, b"\xffengine/x"]),
              st.binary(max_size=8)),
    st.sampled_from([b"noeq", b"val:zz=1", b"val:" + b"ab" * 32 + b"=5"])), max_size=12))
def test_kvstore_batch_check_answers_as_check_tx(payloads):
    from engine.app import KVStoreApp

    app = KVStoreApp()
    key = crypto.SigningKey.from_seed(b"\x09" * 32)
    txs = [tx.decode_tx(tx.encode_tx(key, n, p, "c")) for n, p in enumerate(payloads)]
    assert app.check_txs(txs) == [app.check_tx(t) for t in txs]
    assert app.check_txs(tuple(txs)) == [app.check_tx(t) for t in txs]


def test_the_batch_check_is_used_only_where_it_answers_for_check_tx():
    from engine.app import CheckResult, KVStoreApp
    from engine.node.apphooks import AppHooks

    class OwnCheck(KVStoreApp):  # overrides check_tx alone: the inherited batch would bypass it
        def check_tx(self, tx):
            return CheckResult(7, "mine")

    class BothOverridden(OwnCheck):
        def check_txs(self, txs):
            return [self.check_tx(t) for t in txs]

    class WithPool(KVStoreApp):
        def check_tx(self, tx, pending):
            return CheckResult()

        def check_txs(self, txs):
            return [CheckResult() for _ in txs]

    kv = KVStoreApp()
    assert AppHooks(kv, None).check_txs == kv.check_txs
    assert AppHooks(OwnCheck(), None).check_txs is None
    both = BothOverridden()
    assert AppHooks(both, None).check_txs == both.check_txs
    assert AppHooks(WithPool(), None).check_txs is None  # check_tx sees the pool: one by one
    assert AppHooks(Application(), None).check_txs is None
