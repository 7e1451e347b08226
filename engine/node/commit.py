"""Committing a decided block: execute it through the application, store everything about it in
one write transaction, then let the rest of the node know.

Order: the application's ``finalize_block`` computes results and state writes (given a
:class:`engine.app.BlockContext` when its signature takes a third ``context`` argument); the
store saves block, certificate, results (with their events), state changes and tx index in one
transaction (which also drops the height's WAL); then the application commits, the mempool
forgets the block's transactions, the evidence pool its evidence, the tip moves, waiters wake,
subscribers get the block's events and ``after_commit`` hooks run (status to peers, cache
resets, mempool recheck). Any exception rises to the driver, which halts the node.

Optimistic execution: when the driver has sent this validator's precommit for a block and the
application allows it (``Application.optimistic_execution``), :meth:`BlockCommitter.speculate`
has the block executed right after (``finalize_block``, the result kept in memory only); the
decision then reuses that result if it is the same block, and executes the decided block
otherwise (the application's second call replaces the first).
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import NamedTuple, cast

import msgpack

from engine import consensus as cs
from engine import tx as txmod
from engine.app import STATE_KEY_BYTES_MAX, Application, BlockContext, BlockResult
from engine.block import Block
from engine.mempool import Mempool
from engine.node.events import EventBus
from engine.node.evidence import EvidencePool
from engine.node.metrics import NodeMetrics
from engine.node.ports import Counters
from engine.node.queries import RecentBlocks, Waiters
from engine.node.stagecpu import no_stage
from engine.node.tip import ChainTip
from engine.node.validity import BlockValidator
from engine.node.valset import ValidatorHistory
from engine.nonces import RESERVED_PREFIX, NonceTable
from engine.store import Store

__all__ = ["BlockCommitter", "takes_context"]

log = logging.getLogger("engine.node.commit")

#: A Tx's (sender, nonce) and sender, read by position in one C-level pass over a block
#: (engine.tx.Tx's fields 1 and 2; tests/node/test_block.py holds them there).
_SENDER_NONCE = operator.itemgetter(1, 2)
_SENDER = operator.itemgetter(1)


class _Executed(NamedTuple):
    """A block executed through the application, not yet stored."""

    height: int
    block_hash: bytes
    block: Block
    tx_ids: list[bytes]
    txs: list[txmod.Tx]
    result: BlockResult


def takes_context(method: Callable) -> bool:
    """Whether ``finalize_block`` takes a third argument (the block context): the two-argument
    form of existing applications keeps working."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params) \
        or any(p.name == "context" for p in params)


class BlockCommitter:
    def __init__(self, *, app: Application, store: Store, mempool: Mempool, tip: ChainTip,
                 validator: BlockValidator, evidence: EvidencePool, metrics: NodeMetrics,
                 recent: RecentBlocks, waiters: Waiters, counters: Counters,
                 chain_id: str = "", validators: cs.ValidatorSet | None = None,
                 events: EventBus | None = None, nonces: NonceTable | None = None,
                 history: ValidatorHistory | None = None):
        self.app = app
        #: The validator-set history the block's ``validator_updates`` extend.
        self.history = history
        self.chain_id = chain_id
        self.validators = validators
        self.events = events if events is not None else EventBus()
        self._with_context = takes_context(app.finalize_block)
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
        #: Called with ("decided" | "stored", envelopes) for each block (engine/node/txtrace.py).
        self.trace: Callable[[str, Sequence[bytes]], None] | None = None
        self._last_commit_time = time.monotonic()
        #: Thread CPU by stage (engine/node/stagecpu.py): execution, storage, the rest.
        self.stage_cpu: Callable[[str, float], None] = no_stage
        self._compaction_pending = False
        #: Runs a callable once the current input is handled (the node: ``call_soon`` on the
        #: event loop, after the peer writers' wake-ups already queued); None (the default):
        #: no optimistic execution.
        self.defer: Callable[[Callable[[], None]], object] | None = None
        #: The block executed before its decision (at most one: the latest precommitted).
        self._speculation: _Executed | None = None

    # ---- optimistic execution ---------------------------------------------------------------
    def speculate(self, height: int, block_hash: bytes, block: bytes) -> None:
        """The driver sent this node's precommit for ``block_hash`` at ``height``: when the
        application allows it (``optimistic_execution``) and the node gave a ``defer``, the
        block is executed once the current input is handled (its votes are on their way
        first), and :meth:`commit` reuses the result if this block is decided. Nothing durable
        comes of it: a crash loses it, another decided block is executed again."""
        if self.defer is None or self.tip.height != height - 1:
            return
        held = self._speculation
        if held is not None and held.height == height and held.block_hash == block_hash:
            return  # precommitted again for the same block in a later round: executed already
        if not getattr(self.app, "optimistic_execution", False):
            return
        self.defer(partial(self._speculate, height, block_hash, block))

    def _speculate(self, height: int, block_hash: bytes, block: bytes) -> None:
        if self.tip.height != height - 1:
            return  # decided (and committed) before its turn came
        held = self._speculation
        if held is not None and held.height == height and held.block_hash == block_hash:
            return
        self._speculation = None
        t0 = time.thread_time()
        try:
            self._speculation = self._execute(height, block_hash, block)
            self.counters.add("optimistic_executions")
        except Exception as e:  # noqa: BLE001 - it runs again if decided, and halts there
            log.warning("optimistic execution of block %d failed (%r); it runs again if it "
                        "is decided", height, e)
            self.counters.add("optimistic_failed")
        self.stage_cpu("execution", time.thread_time() - t0)

    def _execute(self, height: int, block_hash: bytes, raw: bytes) -> _Executed:
        block, tx_ids = self.validator.decoded(block_hash, raw)
        pooled = self.mempool.decoded_many(tx_ids)  # pooled ones are decoded already
        txs: list[txmod.Tx] = cast("list[txmod.Tx]", pooled) if None not in pooled else [
            t if t is not None else txmod.decode_tx(env, tx_id=i)
            for t, i, env in zip(pooled, tx_ids, block.txs)]
        if self._with_context:
            context = self._context(height, block_hash, block)
            result = self.app.finalize_block(height, txs, context)  # type: ignore[call-arg]
        else:
            result = self.app.finalize_block(height, txs)
        _check_result(result, len(txs))
        return _Executed(height, block_hash, block, tx_ids, txs, result)

    # ---- the decision ------------------------------------------------------------------------
    def commit(self, decide: cs.Decide) -> None:
        clock = time.thread_time
        t0 = clock()
        held, self._speculation = self._speculation, None
        if held is not None and held.height == decide.height \
                and held.block_hash == decide.block_hash:
            self.counters.add("optimistic_reused")
            executed = held
        else:
            if held is not None:
                self.counters.add("optimistic_discarded")
            executed = self._execute(decide.height, decide.block_hash, decide.block)
        block, tx_ids, txs, result = executed.block, executed.tx_ids, executed.txs, \
            executed.result
        trace = self.trace
        if trace is not None:
            trace("decided", block.txs)
        change = self._validator_change(decide.height, result)
        changes = list(result.writes.items())
        if self.nonces is not None:
            # Nonces are consumed whatever the app's result; the engine's records are state
            # keys the application may not write (its writes there are dropped).
            reserved = [k for k, _ in changes if k.startswith(RESERVED_PREFIX)]
            if reserved:
                self.counters.add("app_reserved_writes_dropped", len(reserved))
                changes = [(k, v) for k, v in changes if not k.startswith(RESERVED_PREFIX)]
            changes += self.nonces.apply_block(map(_SENDER_NONCE, txs),
                                               block_id=decide.block_hash)
        t1 = clock()
        self.store.save_block(
            decide.height, decide.block_hash, block.head(self.validator.suite), list(block.txs),
            decide.certificate.encode(), parent_hash=block.parent_hash, app_hash=result.app_hash,
            results=_packed_results(result.tx_results), state_changes=changes,
            tx_ids=tx_ids,
            validator_set=None if change is None else (change[0], change[1].encode()))
        t2 = clock()
        if trace is not None:
            trace("stored", block.txs)
        if self.history is not None:
            if change is not None:
                self.history.record(*change)
                self.counters.add("validator_set_changes")
            self.history.committed(decide.height)
        if self.nonces is not None:
            self.nonces.committed()
        self._schedule_index_compaction()
        self.app.commit()
        self.mempool.remove_committed(tx_ids)
        if self.nonces is not None:
            self.mempool.evict_stale_nonces(list(map(_SENDER, txs)))
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
        if self.events:
            self.events.publish(decide.height, decide.block_hash, tx_ids, result.tx_results,
                                getattr(result, "events", ()))
        for hook in self.after_commit:
            hook(decide.height)
        stage = self.stage_cpu
        stage("execution", t1 - t0)
        stage("storage", t2 - t1)
        stage("commit_other", clock() - t2)

    def _validator_change(self, height: int,
                          result: BlockResult) -> tuple[int, cs.ValidatorSet] | None:
        """The set record the block's ``validator_updates`` make (engine/valset.py); a refused
        batch raises ValueError naming the problem (the driver halts: every node got the same
        batch from the same deterministic application)."""
        updates = list(getattr(result, "validator_updates", ()) or ())
        if not updates:
            return None
        if self.history is None:
            raise RuntimeError("finalize_block returned validator updates, but this node "
                               "keeps no validator-set history")
        try:
            return self.history.next_change(height, updates)
        except (TypeError, ValueError) as e:
            raise ValueError(f"finalize_block({height}) returned refused validator updates: "
                             f"{e}") from e

    def _set_at(self, height: int) -> cs.ValidatorSet | None:
        if self.history is not None:
            return self.history.at(height)
        return self.validators

    def _context(self, height: int, block_hash: bytes, block) -> BlockContext:
        own = self._set_at(height)
        keys = [v.public_key for v in own.validators] if own else []
        signers: tuple[bytes, ...] = ()
        parent = self._set_at(height - 1) if height > 1 else None
        if block.last_commit and parent is not None:
            pkeys = [v.public_key for v in parent.validators]
            cert = cs.CommitCertificate.decode(block.last_commit, len(pkeys))
            signers = tuple(pkeys[i] for i in cert.signer_indices())
        return BlockContext(
            chain_id=self.chain_id, height=height, time_ms=block.time_ms,
            block_hash=block_hash,
            proposer=keys[block.proposer_index] if block.proposer_index < len(keys) else b"",
            proposer_index=block.proposer_index,
            evidence=tuple(cs.DuplicateVoteEvidence.decode(e) for e in block.evidence),
            last_commit_signers=signers, next_validators=self._set_at(height + 1))

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


#: What a state write's value may be (None deletes the key).
_VALUE_TYPES = {bytes, type(None)}


def _check_result(result: BlockResult, count: int) -> None:
    """What the application returned, checked with a clear message before the store sees it
    (any object with the attributes of a BlockResult will do)."""
    for name in ("tx_results", "app_hash", "writes"):
        if not hasattr(result, name):
            raise TypeError(f"finalize_block must return a BlockResult, not "
                            f"{type(result).__name__} (no {name!r})")
    if len(result.tx_results) != count:
        raise RuntimeError("application returned a result count different from the txs")
    writes = result.writes
    if not isinstance(writes, Mapping):
        raise TypeError("BlockResult.writes must be a Mapping of bytes to bytes or None")
    if type(writes) is dict and set(map(type, writes)) <= {bytes} \
            and set(map(type, writes.values())) <= _VALUE_TYPES \
            and (not writes or (min(map(len, writes)) > 0
                                and max(map(len, writes)) <= STATE_KEY_BYTES_MAX)):
        return  # the usual case, checked in C-level passes; else the loop names the culprit
    for key, value in writes.items():
        if type(key) is not bytes or not 0 < len(key) <= STATE_KEY_BYTES_MAX:
            raise ValueError(f"BlockResult.writes key {key!r:.80} must be 1.."
                             f"{STATE_KEY_BYTES_MAX} bytes (engine.app.STATE_KEY_BYTES_MAX)")
        if value is not None and type(value) is not bytes:
            raise TypeError(f"BlockResult.writes value of key {key!r:.80} must be bytes or "
                            f"None, not {type(value).__name__}")


def _packed_results(tx_results: list) -> list[bytes]:
    """Each result as msgpack ``[code, log, data]``, or ``[code, log, data, events]`` when it
    has events (``events`` = ``[[type, [[key, value], ...]], ...]``; docs/formats.md). Most
    results are identical (code 0), often one shared object: pack each once."""
    if len(tx_results) > 1 and all(map(operator.is_, tx_results, itertools.repeat(tx_results[0]))):
        return _packed_results(tx_results[:1]) * len(tx_results)  # one object, packed once
    packed: dict[tuple, bytes] = {}
    by_object: dict[int, bytes] = {}  # the results list keeps every object alive
    out = []
    for r in tx_results:
        raw = by_object.get(id(r))
        if raw is None:
            events = getattr(r, "events", ())  # results of older apps may have none
            if events:
                raw = by_object[id(r)] = msgpack.packb(
                    [r.code, r.log, r.data,
                     [[e.type, [[k, v] for k, v in e.attributes.items()]] for e in events]])
            else:
                k = (r.code, r.log, r.data)
                raw = by_object[id(r)] = packed.get(k) or packed.setdefault(
                    k, msgpack.packb(list(k)))
        out.append(raw)
    return out

