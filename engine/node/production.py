"""Block production: the node's answer to ``RequestValue``.

A block is cut once ``block_interval_ms`` has passed since the previous block's time: blocks are
at least that far apart, so an idle chain does not spin, while under load (a height taking longer
than the interval, transactions gathering meanwhile) the next block is cut at once, and a full
mempool never waits. With ``create_empty_blocks = false`` a height does not even start until
there is a transaction (:class:`EmptyBlockGate`), and round 0 still waits (up to half the
propose timeout) for a first transaction.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from engine import consensus as cs
from engine.block import Block
from engine.config import NodeConfig
from engine.mempool import Mempool
from engine.node.driver import ConsensusDriver
from engine.node.evidence import EvidencePool
from engine.node.stagecpu import no_stage
from engine.node.tip import ChainTip
from engine.node.validity import BlockValidator
from engine.store import Store

__all__ = ["BlockProducer", "EmptyBlockGate"]

#: How often a waiting height looks at the mempool (no empty blocks).
EMPTY_BLOCKS_POLL_MS = 10


class EmptyBlockGate:
    """``create_empty_blocks = false``: a height is started only when there is something to
    put in its block: a pooled transaction, a new app hash to carry (the block after one that
    changed the app state records it in its header), ``create_empty_blocks_interval_ms`` since
    the last block (0: never), or a peer's message of that height (a peer started it)."""

    def __init__(self, *, config: NodeConfig, tip: ChainTip, mempool: Mempool,
                 spawn: Callable[[Coroutine[Any, Any, None]], Any], carried_app_hash: bytes):
        self.config = config
        self.tip = tip
        self.mempool = mempool
        self.spawn = spawn
        self.driver: ConsensusDriver | None = None
        #: The app hash the last block's header carries (the state after its parent).
        self._carried_app_hash = carried_app_hash

    def bind(self, driver: ConsensusDriver) -> None:
        self.driver = driver
        driver.start_gate = self.gate

    def gate(self, height: int) -> None:
        changed = self.tip.app_hash != self._carried_app_hash
        self._carried_app_hash = self.tip.app_hash
        if changed or len(self.mempool):
            self._start(height)
        else:
            self.spawn(self._wait(height))

    def _start(self, height: int) -> None:
        if self.driver is not None:
            self.driver.start_height(height)

    async def _wait(self, height: int) -> None:
        interval_ms = self.config.create_empty_blocks_interval_ms
        deadline = time.monotonic() + interval_ms / 1000 if interval_ms else None
        driver = self.driver
        while driver is not None and driver.running and driver.core.height == height \
                and not driver.core.started:
            if len(self.mempool) or (deadline is not None and time.monotonic() >= deadline):
                self._start(height)
                return
            await asyncio.sleep(EMPTY_BLOCKS_POLL_MS / 1000)


class BlockProducer:
    def __init__(self, *, chain_id: bytes, config: NodeConfig, tip: ChainTip, mempool: Mempool,
                 store: Store, evidence: EvidencePool, validator: BlockValidator,
                 spawn: Callable[[Coroutine[Any, Any, None]], Any],
                 prepare: Callable[[int, list[bytes]], list[bytes]] | None = None):
        self.chain_id = chain_id
        self.config = config
        self.tip = tip
        self.mempool = mempool
        self.store = store
        self.evidence = evidence
        self.validator = validator
        self.spawn = spawn
        #: The application's ``prepare_proposal`` (engine/node/apphooks.py).
        self.prepare = prepare
        #: Thread CPU by stage (engine/node/stagecpu.py): making this node's proposals.
        self.stage_cpu: Callable[[str, float], None] = no_stage
        #: Called with ("proposed", envelopes) for each block made (engine/node/txtrace.py).
        self.trace: Callable[[str, Sequence[bytes]], None] | None = None
        self.driver: ConsensusDriver | None = None

    def bind(self, driver: ConsensusDriver) -> None:
        self.driver = driver

    def request(self, height: int, round: int) -> None:
        self.spawn(self._propose(height, round))

    async def _propose(self, height: int, round: int) -> None:
        cfg = self.config
        interval_s = cfg.block_interval_ms / 1000
        # Capped by the interval itself: the previous time comes from another node's clock.
        wait_s = min(interval_s, self.tip.block_time_ms / 1000 + interval_s - time.time())
        # The interval only exists to let transactions gather; a full block need not wait.
        if wait_s > 0 and len(self.mempool) < cfg.block_txs_max:
            await asyncio.sleep(wait_s)
        if not cfg.create_empty_blocks and round == 0:
            deadline = time.monotonic() + cfg.timeout_propose_ms / 2000
            while not len(self.mempool) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        driver = self.driver
        if driver is None or not driver.running \
                or (driver.core.height, driver.core.round) != (height, round):
            return
        t0 = time.thread_time()
        block = self.make_block(height, driver.core.own_index or 0)
        self.validator.remember(self.validator.block_hash(block), True)
        self.stage_cpu("proposal", time.thread_time() - t0)
        driver.input(cs.ValueReady(height, round, block), height)

    def make_block(self, height: int, proposer_index: int) -> bytes:
        cfg = self.config
        txs = self.mempool.reap(cfg.block_txs_max, cfg.block_bytes_max)
        if self.prepare is not None:
            txs = self.prepare(height, txs)
        if self.trace is not None:
            self.trace("proposed", txs)
        last_commit = self.store.load_certificate(height - 1) if height > 1 else b""
        time_ms = max(int(time.time() * 1000), self.tip.block_time_ms)
        vhash, next_vhash = self.validator.validator_hashes(height)
        return Block.make(chain_id=self.chain_id, height=height, time_ms=time_ms,
                          parent_hash=self.tip.block_hash, app_hash=self.tip.app_hash,
                          proposer_index=proposer_index, last_commit=last_commit or b"",
                          evidence=self.evidence.for_block(height), txs=txs,
                          validators_hash=vhash, next_validators_hash=next_vhash,
                          suite=self.validator.suite).encode(self.validator.suite)
