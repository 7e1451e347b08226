"""The node: the composition root that builds the parts, starts them in order and stops them.

Boot order (:meth:`Node.start`): open the store and repair a damaged WAL tail; let the
application see its state and genesis; read the chain tip; start the mempool; build the parts
(validity, evidence, block production, commit, queries, block sync, routing) and the consensus
core with the signer state restored from the store; wire them to the driver through its ports;
start p2p and RPC; then replay the WAL (recovery is replay) and go. Every part gets what it needs
through its constructor; none holds a reference to the node.

Where things live (engine/node/): ``driver.py`` (WAL first, step, execute, persist before send),
``wal.py`` (the record codec and the journal), ``ports.py`` (the driver's I/O interfaces and the
seams for test tooling), ``wire.py`` (real ports: peer outbox, loop timers), ``validity.py``,
``production.py``, ``commit.py``, ``evidence.py``, ``signatures.py``, ``router.py``,
``blocksync.py``, ``queries.py``, ``metrics.py``, ``check.py`` (the node's half of
``engine store check``), ``run.py`` (``engine start``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from engine import consensus as cs
from engine.app import Application, InitResult, load_app
from engine.block import Block
from engine.config import Home, load_home
from engine.errors import NodeHalted
from engine.mempool import HALTED, AddResult, Mempool, MempoolLimits
from engine.net.limits import NetLimits
from engine.net.peers import PeerAddress, PeerSet
from engine.node.apphooks import AppHooks
from engine.node.blocksync import BlockSync
from engine.node.commit import BlockCommitter
from engine.node.driver import ConsensusDriver
from engine.node.events import EventBus, Subscription
from engine.node.evidence import EvidencePool
from engine.node.metrics import MetricsState, NodeMetrics
from engine.node.phases import HeightPhases
from engine.node.ports import Counters, NodeSeams, NullObserver
from engine.node.production import BlockProducer, EmptyBlockGate
from engine.node.pruning import Pruner
from engine.node.queries import NodeQueries, RecentBlocks, Waiters
from engine.node.router import PeerRouter, TxGossip
from engine.node.signatures import VerifiedSignatures
from engine.node.snapshots import SnapshotManager
from engine.node.stagecpu import StageCpu, native_threads_cpu
from engine.node.tip import ChainTip
from engine.node.txtrace import TxTrace
from engine.node.validity import BlockValidator
from engine.node.valset import PeerFollower, ValidatorHistory
from engine.node.wal import Journal
from engine.node.wire import LoopTimers, PeerOutbox, PeerWire
from engine.nonces import NonceTable
from engine.rpc.api import QueryInfo, StatusInfo, TxInfo
from engine.store import Store, store_path

log = logging.getLogger("engine.node")
_T = TypeVar("_T")

__all__ = ["Node"]

#: STATUS to every peer this often.
STATUS_INTERVAL_MS = 1000
#: Re-send own current-height messages after this long without a new height.
RESEND_AFTER_MS = 2000
#: A state sync that restored nothing by then fails the start (the node exits, saying why).
STATE_SYNC_TIMEOUT_S = 600


class Node:
    """A validator (or observer) node. Embed it in an asyncio program::

        node = Node("/path/to/home", app=MyApp())
        await node.start()
        result = await node.submit_tx(envelope)       # AddResult(code, tx_id, log)
        await node.wait_for_height(5)
        await node.stop()
    """

    def __init__(self, home: str | Home, app: Application | None = None, *, rpc: bool = True,
                 store_sync: bool = True, net_limits: NetLimits | None = None,
                 seams: NodeSeams | None = None):
        self.home = home if isinstance(home, Home) else load_home(home)
        self.config = self.home.config
        self.chain_id = self.home.genesis.chain_id.encode()
        #: The chain's crypto suite (genesis.json ``crypto``), handed to every part that hashes
        #: or verifies for the chain.
        self.suite = self.home.genesis.suite
        self.genesis_hash = self.home.genesis.hash()
        self.validators = cs.ValidatorSet([cs.Validator(v.public_key, v.power)
                                           for v in self.home.genesis.validators])
        self.app = app if app is not None else load_app(self.config.app)
        if not isinstance(self.app, Application):
            raise TypeError("app must be an engine.app.Application")
        self.node_key = self.home.node_key
        self._rpc_enabled = rpc
        self._store_sync = store_sync
        self._net_limits = net_limits or NetLimits()
        self._seams = seams or NodeSeams()
        self.counters = Counters()
        self.tip = ChainTip()
        self.store: Store | None = None
        #: Which validator set signs each height (engine/node/valset.py), once started.
        self.history: ValidatorHistory | None = None
        self.core: cs.ConsensusCore | None = None
        self.driver: ConsensusDriver | None = None
        #: ``trace_txs = true``: the sampled transactions' steps (engine/node/txtrace.py).
        self._trace: TxTrace | None = None
        self.peers: PeerSet | None = None
        self.mempool: Mempool | None = None
        self.rpc: Any = None  # engine.rpc.RpcServer once started
        self._queries: NodeQueries | None = None
        self._sync: BlockSync | None = None
        self.snapshots: SnapshotManager | None = None
        #: How long the state sync of this start took (None: the node did not state-sync).
        self.state_sync_seconds: float | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._timers: LoopTimers | None = None
        self._tasks: set[asyncio.Task] = set()
        self._waiters = Waiters()
        self._halted = asyncio.Event()
        self.events = EventBus()
        self._query_takes_height = _takes_height(self.app.query)
        #: Thread CPU by stage of the transaction path (engine/node/stagecpu.py, /metrics).
        self.stage_cpu = StageCpu()
        self.metrics = NodeMetrics(self._metrics_state)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Open the store, replay the WAL, start p2p, RPC and the consensus core. On failure
        (e.g. a port in use) whatever was started is stopped again before the error rises."""
        if self.store is not None:
            raise RuntimeError("node is already running")
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg, limits = self.config, self._net_limits
        os.makedirs(self.home.path, exist_ok=True)
        store = self.store = Store(store_path(self.home.path), sync=self._store_sync,
                                   suite=self.suite)
        self._repair_wal(store)
        self.app.crypto = self.suite.name  # before state sync: it hashes restored state
        if cfg.state_sync and store.latest_height() == 0 and store.genesis_app_hash() is None:
            await self._state_sync(store)
        self.app.state = _StoreState(store)
        self.app.home = self.home.path
        self.app.settings = dict(cfg.app_settings)
        self.app.info()
        self._load_tip(store, self._open_app(store))
        history = self.history = ValidatorHistory(self.validators, store.validator_sets(),
                                                  committed_height=self.tip.height)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="engine-verify")
        wire = PeerWire()
        hooks = AppHooks(self.app, self.counters, self.suite)
        nonces = NonceTable(store.state_get)
        mempool = self.mempool = Mempool(
            chain_id=self.chain_id, check_tx=self.app.check_tx,
            find_committed=self._find_committed,
            limits=MempoolLimits(txs_max=cfg.mempool_txs_max, bytes_max=cfg.mempool_bytes_max,
                                 tx_bytes_max=limits.tx_bytes_max,
                                 batch_txs_max=cfg.mempool_batch_txs_max,
                                 batch_wait_ms=cfg.mempool_batch_wait_ms),
            executor=self._executor, verify_threads=cfg.verify_threads or None,
            on_admitted=TxGossip(wire, limits), check_tx_pending=hooks.check_tx_pending,
            check_txs=hooks.check_txs,
            nonces=nonces, suite=self.suite)
        hooks.mempool = mempool
        mempool.observe_batch = self.metrics.observe_batch
        mempool.stage_cpu = self.stage_cpu.add
        mempool.start()

        observer = self._seams.observer or NullObserver()
        signatures = VerifiedSignatures(observer, self.suite)
        evidence = EvidencePool(chain_id=self.chain_id, validators=self.validators, tip=self.tip,
                                wire=wire, counters=self.counters, suite=self.suite,
                                history=history)
        validity = BlockValidator(
            chain_id=self.chain_id, validators=self.validators, tip=self.tip, mempool=mempool,
            find_committed=self._find_committed, evidence_committed=evidence.is_committed,
            block_txs_max=cfg.block_txs_max, block_bytes_max=cfg.block_bytes_max,
            counters=self.counters, app_accepts=hooks.process if hooks.processes else None,
            nonces=nonces, suite=self.suite, history=history)
        producer = BlockProducer(chain_id=self.chain_id, config=cfg, tip=self.tip,
                                 mempool=mempool, store=store, evidence=evidence,
                                 validator=validity, spawn=self._spawn,
                                 prepare=hooks.prepare if hooks.prepares else None)
        validity.stage_cpu = producer.stage_cpu = self.stage_cpu.add
        recent = RecentBlocks()
        committer = BlockCommitter(app=self.app, store=store, mempool=mempool, tip=self.tip,
                                   validator=validity, evidence=evidence, metrics=self.metrics,
                                   recent=recent, waiters=self._waiters, counters=self.counters,
                                   chain_id=self.home.genesis.chain_id,
                                   validators=self.validators, events=self.events,
                                   nonces=nonces, history=history)
        committer.stage_cpu = self.stage_cpu.add
        if cfg.trace_txs:
            self._trace = TxTrace.in_home(self.home.path)
            mempool.trace = producer.trace = committer.trace = self._trace.mark
        self._queries = NodeQueries(store=store, tip=self.tip, genesis=self.home.genesis,
                                    validators=self.validators, recent=recent,
                                    waiters=self._waiters, history=history)
        sync = self._sync = BlockSync(chain_id=self.chain_id, validators=self.validators,
                                      tip=self.tip, store=store, wire=wire,
                                      signatures=signatures, counters=self.counters)

        self._timers = LoopTimers(self._internal_error)
        if cfg.optimistic_execution:
            # After what is ready now (the wake-ups of the peer writers the precommit was just
            # queued for, inputs already read). Measured against a zero-delay timer instead:
            # with a costly application the local p50 was 8-15 ms higher (docs/performance.md).
            committer.defer = self._timers.call_soon
        journal = Journal(store, self._timers)
        core = self.core = self._build_core(journal, validity, signatures)
        outbox: Any = PeerOutbox(wire, compact=cfg.compact_proposals, suite=self.suite)
        if self._seams.wrap_outbox is not None:
            outbox = self._seams.wrap_outbox(outbox, wire.connected, self.counters)
        driver = self.driver = ConsensusDriver(
            core, journal=journal, outbox=outbox, timers=self._timers, values=producer,
            committer=committer, evidence=evidence, observer=observer, counters=self.counters)
        driver.on_halt = lambda _reason: self._halted.set()
        driver.on_mark = HeightPhases(self.metrics.observe_phase).mark
        producer.bind(driver)
        if not cfg.create_empty_blocks:
            EmptyBlockGate(config=cfg, tip=self.tip, mempool=mempool, spawn=self._spawn,
                           carried_app_hash=self._header_app_hash(store)).bind(driver)
        sync.bind(driver)
        signatures_clear = signatures.clear

        def after_commit(height: int) -> None:
            signatures_clear()
            if not driver.replaying:
                wire.broadcast(sync.status_message())

        committer.after_commit.append(after_commit)
        follower = PeerFollower(history, [(bytes.fromhex(p.node_key),
                                           bytes.fromhex(p.validator) if p.validator else None)
                                          for p in cfg.peers], self.node_key.public_key,
                                 self.home.validator_key.public_key)

        def follow_validators(height: int) -> None:
            if self.peers is not None:
                self.peers.follow(*follower.plan(height + 1))

        committer.after_commit.append(follow_validators)
        committer.after_commit.append(hooks.recheck)
        snapshots = self.snapshots = SnapshotManager(
            store=store, app=self.app, home=self.home.path, interval=cfg.snapshot_interval,
            keep=cfg.snapshot_keep, wire=wire, counters=self.counters, spawn=self._spawn)
        committer.after_commit.append(snapshots.after_commit)
        pruner = Pruner(store=store, retain_blocks=cfg.retain_blocks, counters=self.counters,
                        snapshot_height=snapshots.oldest_height)
        committer.after_commit.append(pruner.after_commit)
        router = PeerRouter(chain_id=self.chain_id, validators=self.validators, driver=driver,
                            mempool=mempool, validator=validity, evidence=evidence, sync=sync,
                            signatures=signatures, wire=wire, spawn=self._spawn,
                            counters=self.counters, snapshots=snapshots)
        router.stage_cpu = self.stage_cpu.add
        self.peers = wire.peers = PeerSet(
            node_key=self.node_key, chain_id=self.home.genesis.chain_id,
            listen_host=cfg.p2p_host, listen_port=cfg.p2p_port,
            peers=[PeerAddress(bytes.fromhex(p.node_key), p.host, p.port) for p in cfg.peers],
            on_message=router.on_message, on_connect=router.on_connect,
            on_disconnect=router.on_disconnect, limits=limits,
            genesis_hash=self.genesis_hash, suite=self.suite,
            # Just state-synced: peers dropped our sync connections and back off before
            # dialling again; dial them at once to block-sync the rest.
            dial_all=self.state_sync_seconds is not None)
        if self._seams.chaos is not None:
            self.peers.chaos = self._seams.chaos
        await self.peers.start()
        follow_validators(self.tip.height)
        if self._rpc_enabled:
            from engine.rpc.server import RpcServer

            self.rpc = RpcServer(self, cfg.rpc_host, cfg.rpc_port)
            await self.rpc.start()
        self._spawn(self._housekeeping(wire, sync, driver))
        driver.replay_and_start()
        log.info("node %s started at height %d", cfg.moniker, self.tip.height + 1)

    async def stop(self) -> None:
        if self.store is None:
            return  # never started, or already stopped
        if self.driver is not None:
            self.driver.running = False
        if self._timers is not None:
            self._timers.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.events.close_all("node stopped")  # before RPC: open subscriptions end first
        if self.rpc is not None:
            await self.rpc.stop()
        if self.peers is not None:
            await self.peers.stop()
        if self.mempool is not None:
            await self.mempool.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self.snapshots is not None:
            self.snapshots.close()
        self._waiters.cancel_all()
        if self.driver is not None:
            try:
                self.driver.journal.flush()
            except Exception as e:  # noqa: BLE001 - a disk error must not keep the store open
                log.error("could not flush the WAL at stop: %s", e)
        self.store.close()
        self.store = None
        if self._trace is not None:
            self._trace.close()
            self._trace = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._internal_error(task.exception())

    def _internal_error(self, error: BaseException | None) -> None:
        """A bug of ours in a timer callback or a background task: counted and logged with its
        traceback (asyncio would only log it), so tests can require that none happened."""
        self.counters.add("internal_error")
        log.error("internal error in %s", self.config.moniker, exc_info=error)

    def _repair_wal(self, store: Store) -> None:
        """A torn or corrupted WAL tail (crash, bad disk) loses its damaged records instead of
        stopping the node from ever starting; the signer record still guards every signature."""
        from engine.store.wal_repair import repair_wal

        dropped = repair_wal(store)
        if dropped:
            log.error("WAL damaged: dropped %d records from %s on", len(dropped), dropped[0])
            self.counters.add("wal_records_dropped", len(dropped))

    async def _state_sync(self, store: Store) -> None:
        """Join from a peer's snapshot (engine/node/statesync.py) over a peer set of its own,
        stopped again before the node's own starts on the same port."""
        from engine.node.statesync import StateSyncer

        cfg = self.config
        peers: PeerSet | None = None

        def send(peer: bytes, message: bytes) -> bool:
            return peers.send(peer, message) if peers is not None else False

        def penalize(peer: bytes, reason: str) -> None:
            if peers is not None:
                peers.penalize(peer, reason)

        syncer = StateSyncer(
            chain_id=self.chain_id, validators=self.validators, app=self.app, store=store,
            trust_height=cfg.state_sync_trust_height,
            trust_hash=bytes.fromhex(cfg.state_sync_trust_hash), send=send, penalize=penalize,
            connected=lambda: peers.connected() if peers is not None else [],
            counters=self.counters, suite=self.suite)
        peers = PeerSet(
            node_key=self.node_key, chain_id=self.home.genesis.chain_id,
            listen_host=cfg.p2p_host, listen_port=cfg.p2p_port,
            peers=[PeerAddress(bytes.fromhex(p.node_key), p.host, p.port) for p in cfg.peers],
            on_message=syncer.on_message, on_connect=syncer.on_connect,
            on_disconnect=syncer.on_disconnect, limits=self._net_limits,
            genesis_hash=self.genesis_hash, dial_all=True, suite=self.suite)
        if self._seams.chaos is not None:
            peers.chaos = self._seams.chaos
        log.info("node %s: state sync from height %d on", cfg.moniker,
                 cfg.state_sync_trust_height)
        started = time.monotonic()
        await peers.start()
        try:
            verified = await syncer.run(STATE_SYNC_TIMEOUT_S)
        finally:
            await peers.stop()
        self.state_sync_seconds = time.monotonic() - started
        log.info("node %s: state synced to height %d in %.1fs", cfg.moniker, verified.height,
                 self.state_sync_seconds)

    def _open_app(self, store: Store) -> bytes:
        """``init_chain`` once at height 0 (its genesis writes and app hash saved in one store
        transaction, then ``commit``); on every later start ``restore(height, app_hash)``.
        Returns the genesis app hash."""
        app, latest, genesis = self.app, store.latest_height(), store.genesis_app_hash()
        if latest == 0 and genesis is None:
            result = app.init_chain(self.home.genesis.chain_id, dict(self.home.genesis.app_state))
            if isinstance(result, InitResult):
                genesis, writes = result.app_hash, list(result.writes.items())
            else:
                genesis, writes = result, []
            store.save_genesis(genesis, writes)
            app.commit()
            app.last_app_hash = genesis
            return genesis
        app_hash = store.app_hash() if latest else genesis
        assert app_hash is not None
        app.restore(latest, app_hash)
        return genesis if genesis is not None else app_hash

    def _load_tip(self, store: Store, genesis_app_hash: bytes) -> None:
        h = store.latest_height()
        tip = self.tip
        tip.height = h
        if h:
            stored = store.load_block(h)
            if stored is None:
                raise RuntimeError(f"store reports height {h} but holds no block there")
            tip.block_hash, tip.app_hash = stored.block_hash, stored.app_hash
            tip.block_time_ms = Block.decode(stored.header, header_only=True).time_ms
        else:
            tip.app_hash = genesis_app_hash
        self.app.last_app_hash = tip.app_hash

    def _header_app_hash(self, store: Store) -> bytes:
        """The app hash the latest block's header carries (the tip's own at genesis)."""
        stored = store.load_block(self.tip.height) if self.tip.height else None
        if stored is None:
            return self.tip.app_hash
        return Block.decode(stored.header, header_only=True).app_hash

    def _find_committed(self, tx_ids: list[bytes]) -> list[bool]:
        assert self.store is not None
        return [loc is not None for loc in self.store.find_txs(tx_ids)]

    def _build_core(self, journal: Journal, validity: BlockValidator,
                    signatures: VerifiedSignatures) -> cs.ConsensusCore:
        # Every node holds its signer: the set of a height says whether it signs there (a node
        # outside it follows the chain as a full node, and starts signing once it is added).
        own = self.home.validator_key
        signer = cs.SignerGuard(own, journal.restore_signer_state())
        history = self.history
        assert history is not None
        cfg = self.config
        timeouts = cs.TimeoutConfig(
            propose_ms=cfg.timeout_propose_ms, propose_delta_ms=cfg.timeout_delta_ms,
            prevote_ms=cfg.timeout_prevote_ms, prevote_delta_ms=cfg.timeout_delta_ms,
            precommit_ms=cfg.timeout_precommit_ms, precommit_delta_ms=cfg.timeout_delta_ms)
        return cs.ConsensusCore(self.chain_id, history.set_at(self.tip.height + 1), signer,
                                height=self.tip.height + 1, is_valid=validity.is_valid,
                                verify=signatures.verify, timeouts=timeouts,
                                hash_block=validity.block_hash, validators_at=history.at)

    async def _housekeeping(self, wire: PeerWire, sync: BlockSync,
                            driver: ConsensusDriver) -> None:
        """Periodic status to peers, and re-sending own messages when a height stalls."""
        last_height, stalled_since = self.tip.height, time.monotonic()
        while True:
            await asyncio.sleep(STATUS_INTERVAL_MS / 1000)
            wire.broadcast(sync.status_message())
            now = time.monotonic()
            if self.tip.height != last_height:
                last_height, stalled_since = self.tip.height, now
            elif now - stalled_since > RESEND_AFTER_MS / 1000 and driver.running:
                driver.relay_on_stall(self._net_limits.votes_per_message_max)
                stalled_since = now

    def _metrics_state(self) -> MetricsState:
        core, mempool, peers = self.core, self.mempool, self.peers
        return MetricsState(
            height=self.tip.height, round=core.round if core else 0,
            mempool_txs=len(mempool) if mempool else 0,
            mempool_bytes=mempool.size_bytes if mempool else 0,
            peers=len(peers.connected()) if peers else 0,
            peer_faults=dict(peers.faults) if peers else {},
            mempool_rejected=dict(mempool.rejected) if mempool else {},
            events={**self.counters.values, **self._chaos_counts()},
            stage_cpu=self.stage_cpu.snapshot(), process_cpu=time.process_time(),
            native_cpu=native_threads_cpu())

    def _chaos_counts(self) -> dict[str, int]:
        """What the chaos transport did (test tooling, when a seam installed it)."""
        chaos = self.peers.chaos if self.peers is not None else None
        return {f"chaos:{k}": v for k, v in chaos.counts.items()} if chaos is not None else {}

    # ------------------------------------------------------------------ API (RPC, embedding)
    @property
    def latest_height(self) -> int:
        return self.tip.height

    @property
    def earliest_height(self) -> int:
        """The lowest height whose block this node holds (0 before the first block)."""
        return self.store.base_height() if self.store is not None else 0

    @property
    def latest_block_hash(self) -> bytes:
        return self.tip.block_hash

    @property
    def latest_app_hash(self) -> bytes:
        return self.tip.app_hash

    @property
    def halted(self) -> str | None:
        """Why the node stopped itself (a broken invariant), or None while healthy."""
        return self.driver.halted if self.driver is not None else None

    async def wait_halted(self) -> str:
        """Wait until the node halts; returns the reason."""
        await self._halted.wait()
        return self.halted or ""

    async def submit_tx(self, envelope: bytes) -> AddResult:
        """Admit one signed envelope into the mempool (gossiped to peers when accepted)."""
        if not isinstance(envelope, (bytes, bytearray)):
            raise TypeError(f"envelope must be bytes, not {type(envelope).__name__}")
        mempool = self._started_mempool()
        if self.halted:
            return self._refused_halted(envelope)
        return await mempool.add(bytes(envelope))

    async def submit_txs(self, envelopes: list[bytes]) -> list[AddResult]:
        mempool = self._started_mempool()
        if self.halted:
            return [self._refused_halted(e) for e in envelopes]
        return await mempool.add_many(envelopes)

    def _refused_halted(self, envelope: bytes) -> AddResult:
        """A halted node commits nothing more: accepting a transaction would be a lie."""
        return AddResult(HALTED, self.suite.hash(bytes(envelope)), f"node halted: {self.halted}")

    def _started_mempool(self) -> Mempool:
        if self.mempool is None:
            raise RuntimeError("node is not started")
        return self.mempool

    def _started_queries(self) -> NodeQueries:
        if self._queries is None:
            raise RuntimeError("node is not started")
        return self._queries

    async def wait_for_height(self, height: int, timeout_s: float | None = None) -> int:
        """Wait until a block at ``height`` (or above) is committed; returns the latest height.
        Raises :class:`engine.errors.NodeHalted` if the node halts first."""
        queries = self._started_queries()
        if self.tip.height >= height:
            return self.tip.height
        return await self._unless_halted(queries.wait_for_height(height, timeout_s))

    async def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> TxInfo | None:
        """Wait until ``tx_id`` is committed; its ``tx_info``, or None on timeout. Raises
        :class:`engine.errors.NodeHalted` if the node halts first (it would never come)."""
        queries = self._started_queries()
        info = queries.tx_info(tx_id)
        if info is not None:  # committed before any halt: answered, halted or not
            return info
        return await self._unless_halted(queries.wait_for_tx(tx_id, timeout_s))

    async def _unless_halted(self, wait: Coroutine[Any, Any, _T]) -> _T:
        task = asyncio.ensure_future(wait)
        if self.halted is None:
            halted = asyncio.ensure_future(self._halted.wait())
            try:
                await asyncio.wait([task, halted], return_when=asyncio.FIRST_COMPLETED)
            finally:
                halted.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise NodeHalted(self.halted or "")

    async def wait_for_blocks(self, from_height: int, timeout_s: float,
                              count_max: int | None = None) -> list[dict[str, Any]]:
        """Committed blocks from ``from_height`` on (at most ``count_max``), waiting up to
        ``timeout_s`` for the first of them: height, hash, tx count and tx ids of each.
        An empty list when nothing was committed in time (a long poll for followers)."""
        q = self._started_queries()
        if count_max is None:
            return await q.wait_for_blocks(from_height, timeout_s)
        return await q.wait_for_blocks(from_height, timeout_s, count_max)

    def block_info(self, height: int) -> dict[str, Any] | None:
        return self._started_queries().block_info(height)

    def tx_info(self, tx_id: bytes) -> TxInfo | None:
        return self._started_queries().tx_info(tx_id)

    def validators_info(self, height: int | None = None) -> dict[str, Any]:
        return self._started_queries().validators_info(height)

    def validator_set_at(self, height: int) -> cs.ValidatorSet:
        """The validator set that signs ``height`` (the store's set history); ValueError when
        ``height`` < 1 or beyond what is known (latest committed + 2)."""
        return self._started_queries().validator_set_at(height)

    def light_block(self, height: int) -> dict[str, Any] | None:
        """Header, certificate and signing set of ``height`` (``GET /light_block/{h}``)."""
        return self._started_queries().light_block(height)

    def subscribe(self, filters: list[str] | tuple[str, ...] = (),
                  queue_max: int | None = None) -> Subscription:
        """Events of committed transactions and blocks matching every filter (``type`` or
        ``type.key=value``): ``await sub.get()`` until it returns None (``sub.reason``)."""
        if queue_max is None:
            return self.events.subscribe(list(filters))
        return self.events.subscribe(list(filters), queue_max)

    def query(self, path: str, data: bytes, height: int | None = None,
              prove: bool = False) -> QueryInfo:
        """Ask the application (on the loop thread, like every app call): ``{code, codespace,
        log, value (hex or None), height, proof}``. ``codespace`` is ``"app"`` for the app's
        own answer, ``"engine"`` when the node refused (bad arguments, a height whose state is
        not kept, an exception in the app). ``proof`` is None until the state has a commitment
        to prove against (docs/application.md)."""
        if not isinstance(path, str) or not isinstance(data, (bytes, bytearray)):
            raise TypeError("query takes path: str and data: bytes")
        latest = self.tip.height
        if height is not None and (type(height) is not int or height < 0):
            raise ValueError(f"height must be a non-negative int, not {height!r}")
        at = latest if height is None else height
        if at != latest and not self._query_takes_height:
            return _query_answer(1, "engine", f"state at height {at} is not kept: "
                                 f"this application answers at the latest height ({latest})",
                                 None, at)
        try:
            if self._query_takes_height:
                r = self.app.query(path, bytes(data), at)  # type: ignore[call-arg]
            else:
                r = self.app.query(path, bytes(data))
            code, log_text, value = int(r.code), str(r.log), r.value
        except Exception as e:  # noqa: BLE001 - app code must not break the caller
            self.counters.add("app_query_error")
            return _query_answer(2, "engine", f"query raised {type(e).__name__}: {e}", None, at)
        answered = getattr(r, "height", None)
        return _query_answer(code, "app", log_text, value,
                             answered if answered is not None else at,
                             getattr(r, "proof", None) if prove else None)

    def metrics_text(self) -> bytes:
        return self.metrics.text()

    def status(self) -> StatusInfo:
        core, tip = self.core, self.tip
        return {
            "chain_id": self.home.genesis.chain_id,
            "crypto": self.suite.name,
            "genesis_hash": self.genesis_hash.hex(),
            "node_id": self.node_key.public_key.hex(),
            "moniker": self.config.moniker,
            "validator": self.home.validator_key.public_key.hex(),
            "latest_height": tip.height,
            "earliest_height": self.earliest_height,
            "latest_block_hash": tip.block_hash.hex(),
            "latest_app_hash": tip.app_hash.hex(),
            "latest_block_time_ms": tip.block_time_ms,
            "consensus": {"height": core.height, "round": core.round,
                          "step": core.step_name} if core else None,
            "peers": [p.hex() for p in (self.peers.connected() if self.peers else [])],
            "mempool": {"txs": len(self.mempool) if self.mempool else 0,
                        "bytes": self.mempool.size_bytes if self.mempool else 0},
            "catching_up": self._sync.catching_up() if self._sync else False,
            "halted": self.halted,
            "app": self.app.info(),
        }


def _takes_height(method: Any) -> bool:
    """Whether an application's ``query`` takes a third ``height`` argument."""
    import inspect

    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "height" in params


def _query_answer(code: int, codespace: str, log_text: str, value: bytes | None, height: int,
                  proof: Any = None) -> QueryInfo:
    return {"code": code, "codespace": codespace, "log": log_text,
            "value": None if value is None else bytes(value).hex(), "height": height,
            "proof": proof.hex() if isinstance(proof, (bytes, bytearray)) else proof}


class _StoreState:
    """The application's read view of committed state."""

    def __init__(self, store: Store):
        self._store = store

    def get(self, key: bytes) -> bytes | None:
        return self._store.state_get(key) if key else None

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """``[get(k) for k in keys]`` in one store read."""
        if all(keys):
            return self._store.state_get_many(keys)
        return [self.get(k) for k in keys]

    def items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        return self._store.state_items(prefix)
