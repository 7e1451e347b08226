"""Block production piece by piece (engine/node/production.py) over fakes: when a height may
start without empty blocks (a transaction, a new app hash to carry, the empty-block interval,
and not once the height moved on), how long a proposer waits before cutting a block (the rest
of the interval since the previous block, never more than the interval, nothing for a full
block, up to half the propose timeout for a first transaction in round 0 only), a request that
went stale, and what a block is made of. Written against a mutation run over the module
(docs/mutation.md)."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from engine import consensus as cs
from engine.block import Block
from engine.config import NodeConfig
from engine.node.production import BlockProducer, EmptyBlockGate
from engine.node.tip import ChainTip
from engine.suite import DEFAULT
from tests.node.helpers import run

CHAIN = b"production-unit"


class _Pool:
    def __init__(self, txs: list[bytes] | None = None) -> None:
        self.txs = list(txs or [])
        self.reaps: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.txs)

    def reap(self, count_max: int, bytes_max: int) -> list[bytes]:
        self.reaps.append((count_max, bytes_max))
        return self.txs[:count_max]


class _Core:
    def __init__(self, height: int, round: int = 0, own_index: int | None = 2) -> None:
        self.height, self.round, self.own_index = height, round, own_index
        self.started = False


class _Driver:
    def __init__(self, height: int, round: int = 0, own_index: int | None = 2) -> None:
        self.core = _Core(height, round, own_index)
        self.running = True
        self.started: list[int] = []
        self.inputs: list[tuple[object, int]] = []
        self.start_gate = None

    def start_height(self, height: int) -> None:
        self.started.append(height)
        self.core.started = True

    def input(self, event, height: int) -> None:
        self.inputs.append((event, height))


def _config(**changes) -> NodeConfig:
    return dataclasses.replace(NodeConfig(), **changes)




# --- no empty blocks: when a height starts ----------------------------------------------------

def _gate(pool: _Pool, tip: ChainTip, carried: bytes, **cfg):
    spawned: list = []
    gate = EmptyBlockGate(config=_config(create_empty_blocks=False, **cfg), tip=tip,
                          mempool=pool, spawn=spawned.append,  # type: ignore[arg-type]
                          carried_app_hash=carried)
    driver = _Driver(300)
    gate.bind(driver)  # type: ignore[arg-type]
    assert driver.start_gate == gate.gate
    return gate, driver, spawned


def test_the_gate_starts_at_once_for_a_pooled_transaction():
    gate, driver, spawned = _gate(_Pool([b"tx"]), ChainTip(app_hash=b"a" * 32), b"a" * 32)
    gate.gate(300)
    assert driver.started == [300] and spawned == []


@pytest.mark.parametrize("new,carried", [(b"b", b"a"), (b"a", b"b")])  # either order
def test_the_gate_starts_at_once_for_a_new_app_hash_to_carry_and_then_only_once(new, carried):
    tip = ChainTip(app_hash=new * 32)
    gate, driver, spawned = _gate(_Pool(), tip, carried * 32)
    gate.gate(300)  # the last block changed the state: the next header must carry it
    assert driver.started == [300] and spawned == []
    driver.core.started = False
    gate.gate(301)  # carried now, nothing pooled: wait
    assert driver.started == [300] and len(spawned) == 1
    spawned[0].close()


def test_a_waiting_gate_starts_when_a_transaction_arrives():
    pool = _Pool()
    gate, driver, spawned = _gate(pool, ChainTip(), bytes(32))

    async def main():
        gate.gate(int("300"))  # the driver's height by value (another int object above 256)
        task = asyncio.ensure_future(spawned[0])
        await asyncio.sleep(0.05)
        assert driver.started == []
        pool.txs.append(b"tx")
        await asyncio.wait_for(task, 2)
        assert driver.started == [300]

    run(main())


def test_a_waiting_gate_starts_an_empty_block_after_the_interval():
    gate, driver, spawned = _gate(_Pool(), ChainTip(), bytes(32),
                                  create_empty_blocks_interval_ms=200)

    async def main():
        t0 = time.monotonic()
        gate.gate(300)
        await asyncio.sleep(0.1)
        assert driver.started == []  # 200 ms, not 0.2 ms
        await asyncio.wait_for(spawned[0], 3)
        assert driver.started == [300]
        assert 0.18 <= time.monotonic() - t0 < 2.5

    run(main())


def test_without_an_interval_a_gate_waits_for_a_transaction_only_and_does_not_spin():
    gate, driver, spawned = _gate(_Pool(), ChainTip(), bytes(32),
                                  create_empty_blocks_interval_ms=0)

    async def main():
        gate.gate(300)
        task = asyncio.ensure_future(spawned[0])
        cpu = time.thread_time()
        await asyncio.sleep(0.3)
        assert time.thread_time() - cpu < 0.1  # polling every 10 ms, not a busy loop
        assert driver.started == [] and not task.done()
        task.cancel()

    run(main())


@pytest.mark.parametrize("moved", ["height", "started", "stopped"])
def test_a_waiting_gate_gives_up_once_the_height_moved_on(moved):
    pool = _Pool()
    gate, driver, spawned = _gate(pool, ChainTip(), bytes(32))

    async def main():
        gate.gate(300)
        task = asyncio.ensure_future(spawned[0])
        await asyncio.sleep(0.03)
        if moved == "height":
            driver.core.height = 301  # a peer's message started it, and it was decided
        elif moved == "started":
            driver.core.started = True  # a peer's message of that height started it
        else:
            driver.running = False
        await asyncio.wait_for(task, 1)  # the loop ends by itself
        pool.txs.append(b"tx")
        await asyncio.sleep(0.03)
        assert driver.started == []

    run(main())


def test_an_unbound_gate_starts_nothing():
    gate = EmptyBlockGate(config=_config(create_empty_blocks=False), tip=ChainTip(),
                          mempool=_Pool([b"tx"]),  # type: ignore[arg-type]
                          spawn=lambda c: c.close(), carried_app_hash=bytes(32))
    gate.gate(1)  # no driver yet: nothing to start, nothing raised
    assert gate.driver is None


# --- the proposer ---------------------------------------------------------------------------

class _Validator:
    suite = DEFAULT

    def __init__(self) -> None:
        self.remembered: list[tuple[bytes, bool]] = []

    def block_hash(self, raw: bytes) -> bytes:
        return Block.decode(raw).hash()

    def remember(self, key: bytes, valid: bool) -> None:
        self.remembered.append((key, valid))

    def validator_hashes(self, height: int) -> tuple[bytes, bytes]:
        return bytes([height % 256]) * 32, bytes([(height + 1) % 256]) * 32


class _Store:
    def __init__(self, certs: dict[int, bytes]) -> None:
        self.certs = certs
        self.asked: list[int] = []

    def load_certificate(self, height: int) -> bytes | None:
        self.asked.append(height)
        return self.certs.get(height)


class _Evidence:
    def for_block(self, height: int) -> list[bytes]:
        return [b"evidence for %d" % height]


def _producer(pool: _Pool, tip: ChainTip, driver: _Driver | None = None,
              certs: dict[int, bytes] | None = None, prepare=None, **cfg):
    spawned: list = []
    p = BlockProducer(chain_id=CHAIN, config=_config(**cfg), tip=tip,
                      mempool=pool, store=_Store(certs or {}),  # type: ignore[arg-type]
                      evidence=_Evidence(), validator=_Validator(),  # type: ignore[arg-type]
                      spawn=spawned.append, prepare=prepare)
    stages: list[tuple[str, float]] = []
    p.stage_cpu = lambda stage, s: stages.append((stage, s))
    if driver is not None:
        p.bind(driver)  # type: ignore[arg-type]
    return p, spawned, stages


def _now_ms() -> int:
    return int(time.time() * 1000)


def _propose_time(tip_time_ms: int, pool: _Pool, round: int = 0, **cfg) -> tuple[float, _Driver]:
    driver = _Driver(300, round)
    p, spawned, _ = _producer(pool, ChainTip(block_time_ms=tip_time_ms), driver, **cfg)

    async def main():
        p.request(300, round)
        t0 = time.monotonic()
        await spawned[0]
        return time.monotonic() - t0

    return run(main()), driver


def test_a_block_is_cut_the_rest_of_the_interval_after_the_previous_one():
    took, driver = _propose_time(_now_ms() - 1_000, _Pool([b"tx"]), block_interval_ms=1_500)
    assert 0.4 <= took < 1.2, took  # 1.5 s after a block made 1 s ago: 0.5 s, not 1.5 s
    assert len(driver.inputs) == 1


def test_the_wait_is_capped_by_the_interval_when_the_previous_time_is_ahead():
    # The previous block's time came from a clock 10 s ahead: the wait is the interval at most.
    took, driver = _propose_time(_now_ms() + 10_000, _Pool([b"tx"]), block_interval_ms=300)
    assert 0.25 <= took < 2.0, took
    assert len(driver.inputs) == 1


def test_no_wait_once_the_interval_has_passed_or_for_a_full_block():
    took, _ = _propose_time(_now_ms() - 5_000, _Pool([b"tx"]), block_interval_ms=2_000)
    assert took < 0.5, took
    full = _Pool([b"a", b"b", b"c"])
    took, driver = _propose_time(_now_ms(), full, block_interval_ms=2_000, block_txs_max=3)
    assert took < 0.5, took  # a mempool holding a full block cuts it at once
    block = Block.decode(driver.inputs[0][0].block)  # type: ignore[attr-defined]
    assert list(block.txs) == [b"a", b"b", b"c"]
    took, _ = _propose_time(_now_ms(), _Pool([b"a", b"b", b"c", b"d"]),
                            block_interval_ms=2_000, block_txs_max=3)
    assert took < 0.5, took  # more than a full block: at once too
    took, _ = _propose_time(_now_ms(), _Pool([b"a", b"b"]), block_interval_ms=300,
                            block_txs_max=3)
    assert took >= 0.25, took  # one short of a full block: the interval applies


def test_round_0_without_empty_blocks_waits_for_a_first_transaction_up_to_half_the_timeout():
    took, driver = _propose_time(0, _Pool(), create_empty_blocks=False, block_interval_ms=1,
                                 timeout_propose_ms=600)
    assert 0.28 <= took < 1.5, took  # 300 ms: half of 600
    assert len(driver.inputs) == 1  # then an empty block anyway
    took, _ = _propose_time(0, _Pool(), round=1, create_empty_blocks=False,
                            block_interval_ms=1, timeout_propose_ms=600)
    assert took < 0.2, took  # a later round does not wait again
    took, _ = _propose_time(0, _Pool(), create_empty_blocks=True, block_interval_ms=1,
                            timeout_propose_ms=600)
    assert took < 0.2, took


def test_round_0_stops_waiting_when_a_transaction_arrives():
    pool = _Pool()
    driver = _Driver(300)
    p, spawned, _ = _producer(pool, ChainTip(), driver, create_empty_blocks=False,
                              block_interval_ms=1, timeout_propose_ms=4_000)

    async def main():
        p.request(300, 0)
        task = asyncio.ensure_future(spawned[0])
        cpu = time.thread_time()
        await asyncio.sleep(0.3)
        assert time.thread_time() - cpu < 0.1  # polling every 10 ms, not a busy loop
        assert driver.inputs == []
        pool.txs.append(b"tx")
        t0 = time.monotonic()
        await asyncio.wait_for(task, 3)
        return time.monotonic() - t0

    assert run(main()) < 0.5  # polled every 10 ms, not once a second
    assert list(Block.decode(driver.inputs[0][0].block).txs) == [b"tx"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("what", ["height", "round", "stopped", "unbound"])
def test_a_request_that_went_stale_proposes_nothing(what):
    driver = _Driver(300, 1)
    p, spawned, stages = _producer(_Pool([b"tx"]), ChainTip(), None if what == "unbound"
                                   else driver, block_interval_ms=1)
    if what == "height":
        driver.core.height = 301
    elif what == "round":
        driver.core.round = 2
    elif what == "stopped":
        driver.running = False
    p.request(300, 1)
    run(spawned[0])
    assert driver.inputs == [] and stages == []
    assert p.validator.remembered == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("own_index", [3, None])
def test_a_proposal_is_made_remembered_as_valid_and_handed_to_the_driver(own_index):
    driver = _Driver(300, 1, own_index=own_index)
    p, spawned, stages = _producer(_Pool([b"tx1", b"tx2"]), ChainTip(), driver,
                                   certs={299: b"cert 299"}, block_interval_ms=1)
    p.request(300, 1)
    run(spawned[0])
    ((event, height),) = driver.inputs
    assert height == 300 and isinstance(event, cs.ValueReady)
    assert (event.height, event.round) == (300, 1)
    block = Block.decode(event.block)
    assert block.proposer_index == (own_index or 0)
    assert p.validator.remembered == [(block.hash(), True)]  # type: ignore[attr-defined]
    assert [s for s, _ in stages] == ["proposal"] and 0 <= stages[0][1] < 5


def test_what_a_block_is_made_of():
    tip = ChainTip(height=299, block_hash=b"p" * 32, app_hash=b"s" * 32,
                   block_time_ms=_now_ms() + 60_000)  # the previous time is ahead of ours
    pool = _Pool([b"tx1", b"tx2", b"tx3"])
    traced: list = []
    p, _, _ = _producer(pool, tip, certs={299: b"certificate of 299"},
                        prepare=lambda h, txs: [t for t in reversed(txs) if t != b"tx2"],
                        block_txs_max=3, block_bytes_max=12345)
    p.trace = lambda what, txs: traced.append((what, list(txs)))
    block = Block.decode(p.make_block(300, 1))
    assert pool.reaps == [(3, 12345)]
    assert list(block.txs) == [b"tx3", b"tx1"]  # the application's choice
    assert traced == [("proposed", [b"tx3", b"tx1"])]
    assert (block.chain_id, block.height, block.proposer_index) == (CHAIN, 300, 1)
    assert (block.parent_hash, block.app_hash) == (b"p" * 32, b"s" * 32)
    assert block.last_commit == b"certificate of 299"
    assert p.store.asked == [299]  # type: ignore[attr-defined]
    assert block.time_ms == tip.block_time_ms  # never before the previous block
    assert list(block.evidence) == [b"evidence for 300"]
    assert (block.validators_hash, block.next_validators_hash) == \
        (bytes([300 % 256]) * 32, bytes([301 % 256]) * 32)


def test_block_time_is_now_when_the_previous_block_is_older():
    p, _, _ = _producer(_Pool(), ChainTip(block_time_ms=1_000))
    before = _now_ms()
    block = Block.decode(p.make_block(2, 0))
    assert before <= block.time_ms <= _now_ms()


def test_the_first_block_carries_no_certificate_and_asks_the_store_for_none():
    p, _, _ = _producer(_Pool([b"tx"]), ChainTip(), certs={0: b"never"})
    block = Block.decode(p.make_block(1, 0))
    assert block.last_commit == b"" and p.store.asked == []  # type: ignore[attr-defined]
    p2, _, _ = _producer(_Pool([b"tx"]), ChainTip())  # a height whose parent cert is missing
    assert Block.decode(p2.make_block(7, 0)).last_commit == b""
    assert p2.store.asked == [6]  # type: ignore[attr-defined]

