"""Several nodes in one process on real 127.0.0.1 sockets: commits, RPC, crash and catch-up."""
from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest

from engine import crypto, hashing, tx
from engine.hashing import MerkleProof
from engine.node import Node
from engine.rpc import join_envelopes
from tests.node.helpers import make_testnet, make_txs, run, start_nodes

CHAIN = "inproc"




async def _stop(nodes):
    for n in nodes:
        await n.stop()


def _agree(nodes, height):
    """Every node holds the same block and app hash at ``height``."""
    infos = [n.block_info(height) for n in nodes]
    assert all(i is not None for i in infos)
    assert len({(i["hash"], i["result_app_hash"]) for i in infos}) == 1, infos


def test_four_nodes_commit_and_rpc(tmp_path):
    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        nodes = await start_nodes(homes)
        try:
            await _exercise(nodes)
        finally:
            await _stop(nodes)

    async def _exercise(nodes):
        txs = make_txs(CHAIN, 300)
        results = await nodes[1].submit_txs(txs)
        assert all(r.ok for r in results), {(r.code, r.log) for r in results if not r.ok}
        # Every transaction gets committed, on every node (the waits time out otherwise).
        infos = await asyncio.gather(*(n.wait_for_tx(r.tx_id, 30) for n in nodes
                                       for r in results))
        assert all(i is not None for i in infos)
        # ... exactly once: 300 distinct (height, index) slots.
        assert len({(i["height"], i["index"]) for i in infos[:300]}) == 300
        target = min(n.latest_height for n in nodes)
        for h in range(1, target + 1):
            _agree(nodes, h)
        assert nodes[3].app.query("/key", b"k7").value == b"v7"
        await _rpc_checks(nodes[2])

    run(main())


async def _rpc_checks(node):
    url = node.rpc.url
    key = crypto.SigningKey.generate()
    async with aiohttp.ClientSession() as http:
        env = tx.encode_tx(key, 1, b"wait=commit", CHAIN)
        async with http.post(f"{url}/tx?wait=commit&timeout_ms=20000", data=env) as r:
            assert r.status == 200, await r.text()
            committed = await r.json()
        # Re-sending it with wait=commit answers with the committed transaction, not a 409.
        async with http.post(f"{url}/tx?wait=commit", data=env) as r:
            assert r.status == 200 and (await r.json())["tx_id"] == committed["tx_id"]
        async with http.get(f"{url}/tx/{committed['tx_id']}") as r:
            assert r.status == 200
            info = await r.json()
        async with http.get(f"{url}/block/{info['height']}") as r:
            block = await r.json()
        assert committed["tx_id"] in block["tx_ids"]
        # GET /blocks: the same ids, from the height on; a long poll past the tip answers
        # when the next block is committed (or with nothing when the wait runs out).
        async with http.get(f"{url}/blocks?from={info['height']}&limit=2") as r:
            listed = await r.json()
        first = listed["blocks"][0]
        assert (first["height"], first["hash"], first["tx_ids"]) == \
            (block["height"], block["hash"], block["tx_ids"])
        assert len(listed["blocks"]) <= 2 and listed["latest_height"] >= info["height"]
        tip = listed["latest_height"]
        async with http.get(f"{url}/blocks?from={tip + 1000}&wait_ms=50") as r:
            assert (await r.json())["blocks"] == []
        async with http.get(f"{url}/blocks?from={tip + 1}&wait_ms=20000") as r:
            assert (await r.json())["blocks"][0]["height"] == tip + 1
        p = info["proof"]
        proof = MerkleProof(p["index"], p["size"], tuple(bytes.fromhex(x) for x in p["path"]))
        root = bytes.fromhex(block["tx_root"])
        assert hashing.verify_merkle_proof(root, env, proof)
        assert not hashing.verify_merkle_proof(root, env + b"x", proof)

        # A batch through POST /txs, one of them a duplicate of the committed one.
        batch = [tx.encode_tx(key, 100 + i, b"b%d=1" % i, CHAIN) for i in range(20)] + [env]
        async with http.post(f"{url}/txs", data=join_envelopes(batch)) as r:
            out = await r.json()
        assert out["accepted"] == 20 and out["rejected"] == 1
        assert out["errors"][0]["code"] == "duplicate"

        async with http.get(f"{url}/status") as r:
            status = await r.json()
        for field in ("chain_id", "node_id", "latest_height", "latest_block_hash",
                      "latest_app_hash", "peers"):
            assert field in status
        assert status["chain_id"] == CHAIN and len(status["peers"]) == 3
        async with http.get(f"{url}/validators") as r:
            assert len((await r.json())["validators"]) == 4
        async with http.get(f"{url}/metrics") as r:
            text = await r.text()
        assert "engine_height" in text and "engine_mempool_batch_size_bucket" in text
        # Thread CPU by stage (engine/node/stagecpu.py): every stage of the transactions'
        # path ran on this node (it verified, pooled, proposed or completed proposals, checked,
        # executed and stored blocks), and no stage is counted twice (their sum is within the
        # process's CPU, here four nodes').
        from engine.benchmarks.tps import parse_stage_counters
        from engine.node.stagecpu import STAGES

        counters = parse_stage_counters(text)
        assert all(counters[s] > 0 for s in STAGES), counters
        assert sum(counters[s] for s in STAGES) + counters["native_threads"] \
            <= counters["process"] + 1e-6
        assert counters["txs_committed"] >= 21
        # The phases of its heights (engine/node/phases.py): every stored height is decided and
        # committed, so those two phases are observed once per height; the others at most once
        # per height and at least once (a node started after the others decides its first
        # heights from their votes without casting its own, sometimes without the proposal:
        # those moments are left out, and their time falls in the next phase it has); and the
        # phases add up to the heights.
        from engine.node.phases import PHASES

        heights = counters["phase_count:height"]
        assert heights >= 2, counters
        assert counters["phase_count:decide"] == counters["phase_count:commit"] == heights
        assert all(1 <= counters[f"phase_count:{ph}"] <= heights for ph in PHASES), counters
        assert sum(counters[f"phase_sum:{ph}"] for ph in PHASES) == \
            pytest.approx(counters["phase_sum:height"])

        bad = [
            ("POST", "/tx", b"", 400), ("POST", "/tx", os.urandom(50), 400),
            ("POST", "/tx?wait=maybe", env, 400), ("POST", "/tx?timeout_ms=abc", env, 400),
            ("POST", "/tx?wait=commit&timeout_ms=0", env, 400),
            ("POST", "/tx", env, 409),  # already committed
            ("POST", "/txs", b"", 400), ("POST", "/txs", b"\x05\x00\x00\x00ab", 400),
            ("POST", "/txs", b"\x01", 400),
            ("GET", "/block/0", None, 400), ("GET", "/block/abc", None, 400),
            ("GET", "/block/-1", None, 400), ("GET", "/block/99999999", None, 404),
            ("GET", "/block/" + "9" * 30, None, 400),
            ("GET", "/blocks", None, 400), ("GET", "/blocks?from=0", None, 400),
            ("GET", "/blocks?from=x", None, 400), ("GET", "/blocks?from=1&wait_ms=-1", None, 400),
            ("GET", "/blocks?from=1&wait_ms=99999999", None, 400),
            ("GET", "/blocks?from=1&limit=0", None, 400),
            ("GET", "/tx/xyz", None, 400), ("GET", "/tx/" + "AB" * 32, None, 400),
            ("GET", "/tx/" + "00" * 32, None, 404), ("GET", "/nope", None, 404),
            ("DELETE", "/status", None, 405), ("GET", "/tx", None, 405),
        ]
        for method, path, body, status_code in bad:
            async with http.request(method, url + path, data=body) as r:
                assert r.status == status_code, (method, path, r.status, await r.text())
                err = await r.json()
                assert err["error"] and err["message"], (path, err)
        async with http.get(f"{url}/status") as r:
            assert r.status == 200  # still serving


def test_validator_down_then_catches_up_by_block_sync(tmp_path):
    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        nodes = await start_nodes(homes)
        try:
            await asyncio.gather(*(n.wait_for_height(2, 30) for n in nodes))
            await nodes[3].stop()
            # Three of four (75% > 2/3 of the power) keep committing.
            up = nodes[:3]
            await up[0].submit_txs(make_txs(CHAIN, 50, "down"))
            target = up[0].latest_height + 4
            await asyncio.gather(*(n.wait_for_height(target, 30) for n in up))
            # Random bytes to a live node's p2p port change nothing.
            for _ in range(3):
                _, w = await asyncio.open_connection("127.0.0.1", homes[0].config.p2p_port)
                w.write(os.urandom(500))
                await w.drain()
                w.close()
            restarted = Node(homes[3])
            nodes[3] = restarted
            await restarted.start()
            goal = up[0].latest_height + 1
            await restarted.wait_for_height(goal, 30)
            assert restarted.counters.get("blocks_synced", 0) >= 3
            await asyncio.gather(*(n.wait_for_height(goal, 30) for n in nodes))
            for h in range(1, goal + 1):
                _agree(nodes, h)
            assert up[0].peers.faults["handshake_refused"] >= 3
        finally:
            await _stop(nodes)

    run(main(), 120)


def test_embedding_api_single_validator(tmp_path):
    from engine import config

    home = config.init_home(str(tmp_path / "solo"), "solo", p2p_port=0, rpc_port=0)

    async def main():
        node = Node(home.path, rpc=False)
        await node.start()
        try:
            env = make_txs("solo", 1)[0]
            r = await node.submit_tx(env)
            assert r.ok
            info = await node.wait_for_tx(r.tx_id, 10)
            assert info is not None and info["height"] >= 1
            bad = await node.submit_tx(b"\x01" + os.urandom(120))
            assert bad.code == "bad_signature"
            with pytest.raises(TypeError):
                await node.submit_tx("text")
            h = node.latest_height
        finally:
            await node.stop()
        # Restart from the same home: the chain continues from where it was.
        again = Node(home.path, rpc=False)
        await again.start()
        try:
            assert again.latest_height == h
            await again.wait_for_height(h + 2, 10)
            # Replaying the WAL of the unfinished height re-used the persisted signatures:
            # nothing was refused by the double-sign guard.
            assert again.counters.get("persist_refused", 0) == 0
            assert again.counters.get("sign_refused", 0) == 0
        finally:
            await again.stop()

    run(main())


def test_authenticated_peer_sending_garbage_cannot_stop_the_chain(tmp_path):
    """A peer with an allowed key sends well-framed nonsense of every message kind: each is
    dropped and counted, the peer is eventually disconnected, the others keep committing."""
    from engine.net import codec
    from engine.net.secure import handshake

    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        nodes = await start_nodes(homes[:3])
        try:
            await asyncio.gather(*(n.wait_for_height(1, 30) for n in nodes))
            r, w = await asyncio.open_connection("127.0.0.1", homes[0].config.p2p_port)
            stream = await handshake(r, w, node_key=homes[3].node_key, chain_id=CHAIN,
                                     initiator=True, is_allowed=lambda k: True,
                                     frame_bytes_max=1 << 24)
            junk = [
                codec.encode(codec.VOTES, [os.urandom(113) for _ in range(5)]),
                codec.encode(codec.VOTES, [b"short"]),
                codec.encode(codec.PROPOSAL, os.urandom(116), os.urandom(300)),
                codec.encode(codec.BLOCKS, [[nodes[0].core.height, os.urandom(200),
                                             os.urandom(100)]]),
                codec.encode(codec.EVIDENCE, [os.urandom(226)]),
                codec.encode(codec.TXS, [os.urandom(150) for _ in range(10)]),
                codec.encode(codec.GET_BLOCKS, 1, 10**9),
                codec.encode(codec.STATUS, 2**63, bytes(32)),
                b"\x93\x01\x02",
            ]
            try:
                for _ in range(4):
                    for m in junk:
                        await stream.send(m)
            except Exception:  # noqa: BLE001, S110 - the node may hang up on us, as it should
                pass
            goal = nodes[0].latest_height + 3
            await asyncio.gather(*(n.wait_for_height(goal, 30) for n in nodes))
            faults = nodes[0].peers.faults
            assert faults["disconnect_faults"] >= 1, faults
            assert sum(v for k, v in faults.items() if k.startswith("invalid_")) >= 5, faults
            assert homes[3].node_key.public_key not in nodes[0].peers.connected()
            assert nodes[0].mempool.rejected.get("bad_signature", 0) >= 10
            for h in range(1, goal + 1):
                _agree(nodes, h)
        finally:
            await _stop(nodes)

    run(main(), 90)


def test_failing_application_halts_the_node_loudly(tmp_path):
    from engine import config
    from engine.app import KVStoreApp

    class Broken(KVStoreApp):
        def finalize_block(self, height, txs):
            if height == 2:
                raise RuntimeError("application bug")
            return super().finalize_block(height, txs)

    home = config.init_home(str(tmp_path / "solo"), "solo", p2p_port=0, rpc_port=0)

    async def main():
        node = Node(home.path, app=Broken(), rpc=False)
        await node.start()
        try:
            await node.wait_for_height(1, 10)
            for _ in range(100):
                if node.halted:
                    break
                await asyncio.sleep(0.05)
            assert node.halted and "cannot commit block 2" in node.halted
            assert node.latest_height == 1
        finally:
            await node.stop()
        assert node.store is None

    run(main())


def test_equivocating_validator_is_caught_and_evidence_committed(tmp_path):
    """Validator 3 signs two different prevotes at one (height, round): every node builds
    duplicate-vote evidence and a later block carries it."""
    from engine import consensus as cs
    from engine.net import codec
    from engine.net.secure import handshake

    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        nodes = await start_nodes(homes[:3])
        try:
            await asyncio.gather(*(n.wait_for_height(1, 30) for n in nodes))
            key = homes[3].validator_key
            chain = CHAIN.encode()
            streams = []
            for home in homes[:3]:
                rd, wr = await asyncio.open_connection("127.0.0.1", home.config.p2p_port)
                streams.append(await handshake(rd, wr, node_key=homes[3].node_key,
                                               chain_id=CHAIN, initiator=True,
                                               is_allowed=lambda k: True,
                                               frame_bytes_max=1 << 24))
            # The next height, chosen once the connections are up (an idle chain cuts a block
            # every block interval, and handshakes on a loaded machine take longer than
            # that): votes one height ahead are buffered and stepped when it starts, or are
            # for the current height if it starts meanwhile. Two ahead would be dropped: that
            # height's validator set is not known before the current block commits.
            h, r = max(n.core.height for n in nodes) + 1, 0
            votes = []
            for block_hash in (os.urandom(32), os.urandom(32)):
                sig = key.sign(cs.vote_sign_bytes(chain, cs.VoteType.PREVOTE, h, r, block_hash))
                votes.append(cs.Vote(cs.VoteType.PREVOTE, h, r, block_hash, 3, sig).encode())
            await asyncio.gather(*(st.send(codec.encode(codec.VOTES, votes)) for st in streams))
            found = None
            for _ in range(200):
                for height in range(h + 1, nodes[0].latest_height + 1):
                    info = nodes[0].block_info(height)
                    if info and info["evidence"]:
                        found = height
                        break
                if found:
                    break
                await asyncio.sleep(0.05)
            assert found is not None, ("no block carried the evidence", h,
                                       [n.counters.values for n in nodes])
            await asyncio.gather(*(n.wait_for_height(found, 30) for n in nodes))
            assert all(n.block_info(found)["evidence"] == 1 for n in nodes)
            assert all(n.counters.get("evidence", 0) >= 1 for n in nodes)
            _agree(nodes, found)
        finally:
            await _stop(nodes)

    run(main(), 90)


def test_whole_network_restarts_and_continues(tmp_path):
    """All four validators stop mid-height and start again from their stores: each replays its
    WAL, nobody's double-sign guard refuses anything, and the chain goes on in agreement."""
    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        nodes = await start_nodes(homes)
        try:
            await nodes[0].submit_txs(make_txs(CHAIN, 100, "before"))
            await asyncio.gather(*(n.wait_for_height(3, 30) for n in nodes))
            # Stop as soon as the next height has consensus inputs in some node's WAL.
            for _ in range(200):
                if any(n.store.wal_replay(n.latest_height + 1) for n in nodes):
                    break
                await asyncio.sleep(0.005)
        finally:
            # All at once: no node goes on deciding (and dropping its WAL) alone.
            await asyncio.gather(*(n.stop() for n in nodes))
        heights = [n.latest_height for n in nodes]
        nodes = await start_nodes(homes)
        try:
            # Nothing committed is lost. A node may be ahead of where it stopped: its replay can
            # complete the height it was in (its WAL held the precommits), and the first nodes
            # up may commit with each other before the last one starts.
            after = [n.latest_height for n in nodes]
            assert all(a >= h for a, h in zip(after, heights)), (heights, after)
            assert sum(n.counters.get("wal_records_replayed", 0) for n in nodes) > 0
            results = await nodes[2].submit_txs(make_txs(CHAIN, 100, "after"))
            infos = await asyncio.gather(*(n.wait_for_tx(r.tx_id, 30) for n in nodes
                                           for r in results))
            assert all(i is not None for i in infos)
            for n in nodes:
                assert n.counters.get("persist_refused", 0) == 0
                assert n.counters.get("sign_refused", 0) == 0
            for h in range(1, min(n.latest_height for n in nodes) + 1):
                _agree(nodes, h)
        finally:
            await _stop(nodes)

    run(main(), 90)


def test_every_input_before_an_own_signature_is_durable_when_it_is_sent(tmp_path):
    """WAL records are buffered, but persist-before-send still covers them: whenever a node
    hands a message it signed to its outbox, no stepped input is still waiting in memory, the
    signature's own WAL record is in the store, and the signer record is at or past it.

    The check runs in an outbox wrapper (the node's seam for exactly this) and only *records*
    what it sees: a failed check is asserted after the run, in the test's own frame, so no
    handler, timer or task can swallow it. Proven to fail: with the driver sending before it
    persists (make mutate: send_before_persist), every first send of a vote misses its record.
    """
    import msgpack

    from engine.node import NodeSeams
    from engine.node.wal import SIGNED

    homes = make_testnet(tmp_path, 4, CHAIN)
    nodes: list[Node] = []
    violations: list[str] = []
    checked = {"votes": 0, "proposal": 0}

    sent: set[bytes] = set()

    def durable(node: Node, height: int, signature: bytes) -> str | None:
        """Why sending this own signature now would break persist-before-send, or None. A
        first send needs every input stepped so far on disk (they led to the signature); a
        re-send (reconnect, stall) needs only the signature's own record."""
        driver, store = node.driver, node.store
        if driver is None or store is None:
            return "node not running"
        first = signature not in sent
        sent.add(signature)
        if first and driver.journal.pending:
            return f"{len(driver.journal.pending)} stepped inputs not yet durable"
        signed = [r for r in store.wal_replay(height) if msgpack.unpackb(r)[0] == SIGNED]
        if not any(signature in r for r in signed):
            return f"no durable WAL record of the signature at height {height}"
        record = store.signer_record()
        if record is None or record.height < height:
            return "signer record is behind the signature"
        return None

    class CheckingOutbox:
        def __init__(self, inner, node_index):
            self.inner, self.i = inner, node_index

        def votes(self, votes, to=None):
            node = nodes[self.i]
            own = node.core.own_index
            for v in votes:
                if v.validator_index == own and v.height == node.core.height:
                    problem = durable(node, v.height, v.signature)
                    if problem:
                        violations.append(f"node {self.i} vote {v.height}/{v.round}: {problem}")
            checked["votes"] += 1
            self.inner.votes(votes, to)

        def proposal(self, proposal, block, to=None):
            node = nodes[self.i]
            if proposal.proposer_index == node.core.own_index:
                problem = durable(node, proposal.height, proposal.signature)
                if problem:
                    violations.append(f"node {self.i} proposal {proposal.height}: {problem}")
                checked["proposal"] += 1
            self.inner.proposal(proposal, block, to)

    def seams(i):
        return NodeSeams(wrap_outbox=lambda inner, peers, counters: CheckingOutbox(inner, i))

    async def main():
        nodes.extend(Node(h, seams=seams(i)) for i, h in enumerate(homes))
        for n in nodes:
            await n.start()
        try:
            await nodes[0].submit_txs(make_txs(CHAIN, 200))
            await asyncio.gather(*(n.wait_for_height(n.latest_height + 3, 30) for n in nodes))
        finally:
            await _stop(nodes)

    run(main())
    assert not violations, violations[:5]
    # At least one send of own votes per node and height (a step's votes may leave together).
    assert checked["votes"] >= 4 * 3 and checked["proposal"] >= 3, checked
    for n in nodes:
        assert n.counters.get("internal_error") == 0, n.config.moniker
        assert n.peers is not None and n.peers.faults.get("handler_error", 0) == 0


def test_signatures_of_one_step_share_one_durable_write(tmp_path):
    """Issue 14, item 3: a single validator proposes, prevotes and precommits in one step; the
    three signatures become durable in one synced transaction, so a height costs one durable
    write (three before: one per signature). Persist-before-send with batches is checked by
    the test above, on four nodes whose proposers batch their proposal and prevote."""
    from engine import config

    home = config.init_home(str(tmp_path / "solo"), "solo", p2p_port=0, rpc_port=0)

    async def main():
        node = Node(home.path, rpc=False)
        await node.start()
        try:
            start_h, start_flushes = node.latest_height, node.store.flushes_durable
            for envs in (make_txs("solo", 40)[i::8] for i in range(8)):
                results = await node.submit_txs(envs)
                assert all(r.ok for r in results)
                for r in results:
                    assert await node.wait_for_tx(r.tx_id, 10) is not None
            heights = node.latest_height - start_h
            durable = node.store.flushes_durable - start_flushes
            together = node.counters.get("signatures_persisted_together", 0)
        finally:
            await node.stop()
        return heights, durable, together

    heights, durable, together = run(main())
    print(f"\n{heights} heights, {durable} durable writes, {together} signatures batched")
    assert heights >= 8
    # One durable write per height, give or take the height in progress at either end.
    assert heights - 1 <= durable <= heights + 1, (heights, durable)
    assert together >= 3 * (heights - 1)
