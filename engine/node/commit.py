"""Committing a decided block: execute it through the application, store everything about it in
one write transaction, then let the rest of the node know.

Order: the application's ``finalize_block`` computes results and state writes; the store saves
block, certificate, results, state changes and tx index in one transaction (which also drops the
height's WAL); then the application commits, the mempool forgets the block's transactions, the
evidence pool its evidence, the tip moves, waiters wake and ``after_commit`` hooks run (status to
peers, cache resets). Any exception rises to the driver, which halts the node.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgpack

from engine import consensus as cs
from engine import tx as txmod
from engine.app import Application
from engine.mempool import Mempool
from engine.nonces import RESERVED_PREFIX, NonceTable
from engine.node.evidence import EvidencePool
from engine.node.metrics import NodeMetrics
from engine.node.ports import Counters
from engine.node.queries import RecentBlocks, Waiters
from engine.node.tip import ChainTip
from engine.node.validity import BlockValidator
from engine.store import Store

__all__ = ["BlockCommitter"]


class BlockCommitter:
    def __init__(self, *, app: Application, store: Store, mempool: Mempool, tip: ChainTip,
                 validator: BlockValidator, evidence: EvidencePool, metrics: NodeMetrics,
                 recent: RecentBlocks, waiters: Waiters, counters: Counters,
                 nonces: NonceTable | None = None):
        self.app = app
        self.store = store
        self.mempool = mempool
        self.tip = tip
        self.validator = validator
        self.evidence = evidence
        self.metrics = metrics
        self.recent = recent
        self.waiters = waiters
        self.counters = counters
        self.nonces = nonces
        #: Called with the committed height after everything else (status gossip, resets).
        self.after_commit: list[Callable[[int], None]] = []
        self._last_commit_time = time.monotonic()
        self._compaction_pending = False

    def commit(self, decide: cs.Decide) -> None:
        block, tx_ids = self.validator.decoded(decide.block_hash, decide.block)
        pooled = self.mempool.decoded
        txs = [pooled(i) or txmod.decode_tx(t, tx_id=i) for i, t in zip(tx_ids, block.txs)]
        result = self.app.finalize_block(decide.height, txs)
        if len(result.tx_results) != len(txs):
            raise RuntimeError("application returned a result count different from the txs")
        changes = list(result.writes.items())
        if self.nonces is not None:
            # Nonces are consumed whatever the app's result; the engine's records are state
            # keys the application may not write (its writes there are dropped).
            reserved = [k for k, _ in changes if k.startswith(RESERVED_PREFIX)]
            if reserved:
                self.counters.add("app_reserved_writes_dropped", len(reserved))
                changes = [(k, v) for k, v in changes if not k.startswith(RESERVED_PREFIX)]
            changes += self.nonces.apply_block((t.sender, t.nonce) for t in txs)
        self.store.save_block(
            decide.height, decide.block_hash, block.header(), list(block.txs),
            decide.certificate.encode(), parent_hash=block.parent_hash, app_hash=result.app_hash,
            results=_packed_results(result.tx_results), state_changes=changes,
            tx_ids=tx_ids)
        if self.nonces is not None:
            self.nonces.committed()
        self._schedule_index_compaction()
        self.app.commit()
        self.mempool.remove_committed(tx_ids)
        if self.nonces is not None:
            self.mempool.evict_stale_nonces([t.sender for t in txs])
        self.evidence.on_committed(list(block.evidence))
        now = time.monotonic()
        self.metrics.observe_block(now - self._last_commit_time, len(tx_ids))
        self._last_commit_time = now
        tip = self.tip
        tip.height, tip.block_hash = decide.height, decide.block_hash
        tip.app_hash, tip.block_time_ms = result.app_hash, block.time_ms
        self.validator.clear()
        self.counters.add("txs_committed", len(tx_ids))
        self.recent.add(decide.height, decide.block_hash, tx_ids)
        self.waiters.committed(decide.height, tx_ids)
        for hook in self.after_commit:
            hook(decide.height)

    def _schedule_index_compaction(self) -> None:
        """Merge the tx index runs of recent blocks once the loop has handled what is queued
        (the block's own save stays short; lookups give the same answers either way)."""
        if self._compaction_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # replay at start-up runs outside the loop: compact later
            return
        self._compaction_pending = True
        loop.call_soon(self._compact_index)

    def _compact_index(self) -> None:
        self._compaction_pending = False
        if not self.store.closed:
            self.store.compact_index()


def _packed_results(tx_results: list) -> list[bytes]:
    """Each result as msgpack ``[code, log, data]``. Most results are identical (code 0), often
    one shared object: pack each once."""
    packed: dict[tuple, bytes] = {}
    by_object: dict[int, bytes] = {}  # the results list keeps every object alive
    out = []
    for r in tx_results:
        raw = by_object.get(id(r))
        if raw is None:
            k = (r.code, r.log, r.data)
            raw = by_object[id(r)] = packed.get(k) or packed.setdefault(k, msgpack.packb(list(k)))
        out.append(raw)
    return out
