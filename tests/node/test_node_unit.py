"""Parts of the node's assembly (engine/node/node.py) taken apart, for what the network tests
only see as a whole: the housekeeping loop (status to peers every interval; own messages
relayed again once a height has stalled for RESEND_AFTER_MS, and again each time after; never
while the chain moves or the driver is stopped), the metrics of a node without a mempool or
peers yet, the WAL repair's report, queries (a height the application cannot answer, the
proof only when asked), the status's pool and catching-up, and waiting for a height already
reached. Written against the survivors of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import asyncio
import logging
import random
from types import SimpleNamespace

import pytest

from engine.node import node as node_mod
from engine.node.node import Node
from engine.node.ports import Counters
from engine.node.tip import ChainTip

STATUS_MS, RESEND_MS, RUN_S = 20, 120, 0.62


class _Recorder:
    def __init__(self):
        self.broadcasts: list[float] = []
        self.relays: list[float] = []
        self.running = True
        self.t0 = 0.0

    # wire
    def broadcast(self, message: bytes) -> None:
        assert message == b"status"
        self.broadcasts.append(asyncio.get_running_loop().time() - self.t0)

    # sync
    def status_message(self) -> bytes:
        return b"status"

    # driver
    def relay_on_stall(self, votes_max: int) -> None:
        assert votes_max == 17
        self.relays.append(asyncio.get_running_loop().time() - self.t0)


def _housekeeping(monkeypatch, progress: bool, running: bool = True) -> _Recorder:
    monkeypatch.setattr(node_mod, "STATUS_INTERVAL_MS", STATUS_MS)
    monkeypatch.setattr(node_mod, "RESEND_AFTER_MS", RESEND_MS)
    tip = ChainTip()
    tip.height = 5
    fake = SimpleNamespace(tip=tip, _net_limits=SimpleNamespace(votes_per_message_max=17))
    rec = _Recorder()
    rec.running = running

    async def main():
        rec.t0 = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(Node._housekeeping(fake, rec, rec, rec))  # type: ignore[arg-type]
        end = rec.t0 + RUN_S
        while asyncio.get_running_loop().time() < end:
            await asyncio.sleep(STATUS_MS / 2000)
            if progress:
                tip.height += 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return rec


def test_status_goes_out_every_interval(monkeypatch):
    rec = _housekeeping(monkeypatch, progress=True)
    ideal = RUN_S * 1000 / STATUS_MS  # 31
    assert ideal * 0.5 <= len(rec.broadcasts) <= ideal + 1, rec.broadcasts
    assert rec.broadcasts[0] >= STATUS_MS / 1000 * 0.9  # after an interval, not at once


def test_a_stalled_height_relays_after_the_resend_delay_and_each_delay_after(monkeypatch):
    rec = _housekeeping(monkeypatch, progress=False)
    # The first relay once the height has stood still for RESEND_AFTER_MS, then once per
    # RESEND_AFTER_MS (not at every status tick): 0.62 s / 0.12 s = 5 at most, 3 at least.
    assert rec.relays and rec.relays[0] >= RESEND_MS / 1000, rec.relays
    assert 3 <= len(rec.relays) <= 5, rec.relays
    gaps = [b - a for a, b in zip(rec.relays, rec.relays[1:])]
    assert all(g >= RESEND_MS / 1000 * 0.95 for g in gaps), gaps


def test_no_relay_while_the_chain_moves_or_the_driver_is_stopped(monkeypatch):
    assert _housekeeping(monkeypatch, progress=True).relays == []
    rec = _housekeeping(monkeypatch, progress=False, running=False)
    assert rec.relays == [] and rec.broadcasts  # status still goes out


def test_metrics_of_a_node_without_mempool_peers_or_core_are_zeros():
    tip = ChainTip()
    tip.height = 3
    fake = SimpleNamespace(tip=tip, core=None, mempool=None, peers=None, counters=Counters(),
                           stage_cpu=SimpleNamespace(snapshot=dict),
                           _chaos_counts=dict)
    state = Node._metrics_state(fake)  # type: ignore[arg-type]
    assert (state.height, state.round, state.mempool_txs, state.mempool_bytes, state.peers) == \
        (3, 0, 0, 0, 0)
    assert state.peer_faults == {} and state.mempool_rejected == {}


def test_a_repaired_wal_is_reported_from_its_first_dropped_record(tmp_path, caplog):
    from engine.faults.walfault import damage_wal
    from engine.store import Store

    (tmp_path / "store").mkdir()
    with Store(str(tmp_path / "store")) as st:
        for i in range(6):
            st.wal_append(3, bytes([i]) * 50)
    # One byte of entry 2 flipped (this seed): entries 2..5 go, 0 and 1 stay.
    done = damage_wal(str(tmp_path), "corrupt", 250, random.Random(0), 1)
    assert done["flipped"] == ["3/2@47"], done
    fake = SimpleNamespace(counters=Counters())
    with Store(str(tmp_path / "store")) as st, caplog.at_level(logging.ERROR):
        Node._repair_wal(fake, st)  # type: ignore[arg-type]
        kept = len(st.wal_replay(3))
    dropped = fake.counters.get("wal_records_dropped")
    assert (dropped, kept) == (4, 2)
    (record,) = [r for r in caplog.records if "WAL damaged" in r.getMessage()]
    # Named by the first record it dropped: the one right after those it kept.
    assert record.getMessage() == (f"WAL damaged: dropped {dropped} records from height 3 "
                                   f"entry {kept} on")


def test_takes_height_reads_the_signature_and_is_false_when_there_is_none():
    import math

    from engine.node.node import _takes_height

    assert _takes_height(lambda path, data, height: None) is True
    assert _takes_height(lambda path, data: None) is False
    assert _takes_height(math.log) is False  # a builtin without a signature (ValueError)
    assert _takes_height(42) is False  # not callable (TypeError)


def _query_node(takes_height: bool, answer=None):
    tip = ChainTip()
    tip.height = 300

    class App:
        def query(self, path, data, *rest):
            return answer

    return SimpleNamespace(tip=tip, _query_takes_height=takes_height, app=App(),
                           counters=Counters())


def test_a_past_height_an_application_cannot_answer_is_refused_with_code_1():
    fake = _query_node(False)
    got = Node.query(fake, "/key", b"k", 7)  # type: ignore[arg-type]
    assert (got["code"], got["codespace"], got["height"], got["value"]) == (1, "engine", 7, None)
    assert "state at height 7 is not kept" in got["log"]


def test_the_proof_is_given_only_when_asked_for():
    answer = SimpleNamespace(code=0, log="", value=b"v", height=None, proof={"p": 1})
    fake = _query_node(True, answer)
    asked = Node.query(fake, "/key", b"k", prove=True)  # type: ignore[arg-type]
    plain = Node.query(fake, "/key", b"k")  # type: ignore[arg-type]
    assert asked["proof"] == {"p": 1} and plain["proof"] is None
    assert asked["height"] == plain["height"] == 300 and plain["value"] == b"v".hex()


def test_status_counts_the_pool_and_asks_block_sync_whether_it_catches_up():
    tip = ChainTip()
    tip.height = 4

    class Pool:
        size_bytes = 750

        def __len__(self):
            return 3

    fake = SimpleNamespace(
        home=SimpleNamespace(genesis=SimpleNamespace(chain_id="c"),
                             validator_key=SimpleNamespace(public_key=b"\1" * 32)),
        suite=SimpleNamespace(name="ed25519-blake3"), genesis_hash=b"\2" * 32,
        node_key=SimpleNamespace(public_key=b"\3" * 32),
        config=SimpleNamespace(moniker="m"), tip=tip, earliest_height=1, core=None,
        peers=None, mempool=Pool(), _sync=SimpleNamespace(catching_up=lambda: True),
        halted=None, app=SimpleNamespace(info=dict))
    status = Node.status(fake)  # type: ignore[arg-type]
    assert status["mempool"] == {"txs": 3, "bytes": 750} and status["catching_up"] is True
    fake.mempool, fake._sync = None, None
    status = Node.status(fake)  # type: ignore[arg-type]
    assert status["mempool"] == {"txs": 0, "bytes": 0} and status["catching_up"] is False


def test_waiting_for_a_height_already_reached_returns_at_once_above_256():
    tip = ChainTip()
    tip.height = 300

    class Queries:
        async def wait_for_height(self, height, timeout_s):
            raise AssertionError("waited for a height already committed")

    fake = SimpleNamespace(tip=tip, _started_queries=Queries)
    assert asyncio.run(Node.wait_for_height(fake, int("300"))) == 300  # type: ignore[arg-type]
