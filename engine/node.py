"""The node driver: one asyncio loop per node turning sockets, timers and RPC calls into
consensus events, and executing the core's actions in order.

Theory of operation
-------------------
Every input to consensus goes through :meth:`Node._input`: its WAL record (for its height) is
buffered, then it is given to ``ConsensusCore.step``, and the returned actions are executed at
once, in order, before the next input is taken (the loop is single-threaded, so no input can
slip in between). Buffered records reach the store in the durable transaction of the next own
signature, or on their own after at most ``WAL_FLUSH_MS`` (one flush per batch instead of one
synced LMDB transaction per vote). Actions:

- ``BroadcastProposal`` / ``BroadcastVote``: **persist before send** — the signer state (and,
  in the same LMDB transaction, every WAL record written so far) is made durable with
  ``Store.sign_guarded``; only then are the bytes queued to peers.
- ``ScheduleTimeout``: a loop timer that feeds ``TimeoutFired`` back through ``_input``.
- ``RequestValue``: cut a block from the mempool and feed ``ValueReady``, once
  ``block_interval_ms`` has passed since the previous block's time: blocks are at least that
  far apart, so an idle chain does not spin, while under load (a height taking longer than the
  interval, transactions gathering meanwhile) the next block is cut at once.
- ``Decide``: execute the block through the application, store block + certificate + results +
  state changes in one write transaction (which also drops the height's WAL), then tell the
  application to commit, clear the mempool of the block's transactions and wake waiters.

Restart is replay: the core is rebuilt at ``latest height + 1`` with the persisted signer state,
and the WAL of that height is fed through ``step`` again (DESIGN.md section 1).

Catch-up: peers exchange ``STATUS`` (their last committed height) on connect, after each commit
and every ``status_interval_ms``. A node that sees a peer ahead asks it for blocks with their
certificates and feeds them as ``CommitReceived``; the core verifies each certificate with one
batch signature call before deciding. Own messages of the current height are re-sent to a peer
that (re)connects and periodically while a height makes no progress, so a lost message never
stalls a round.

Block validity (injected into the core as ``is_valid``): chain id and height, parent hash,
the app hash of the parent state, the parent's commit certificate (one batch verification),
the transaction root, no transaction twice or already committed, every signature valid (only
those this node has not verified at admission are checked, in one batch), evidence valid.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import msgpack

from engine import consensus as cs
from engine import crypto
from engine import limits as cs_limits
from engine.app import Application, load_app
from engine.block import Block, tx_root_of, with_txs
from engine.config import Home, load_home
from engine.hashing import blake3_many, merkle_proof
from engine.mempool import AddResult, Mempool, MempoolLimits
from engine.net import codec
from engine.net.errors import ProtocolError as NetProtocolError
from engine.net.limits import NetLimits
from engine.net.peers import PeerAddress, PeerSet
from engine.node_metrics import NodeMetrics
from engine.store import Store, store_path

log = logging.getLogger("engine.node")

#: Blocks requested from a peer per round trip during catch-up.
SYNC_BLOCKS_PER_REQUEST = 16
#: Bytes of blocks sent in one BLOCKS reply (well under NetLimits.frame_bytes_max).
SYNC_REPLY_BYTES_MAX = 4 << 20
SYNC_REQUEST_TIMEOUT_MS = 3000
STATUS_INTERVAL_MS = 1000
#: Re-send own current-height messages after this long without a new height.
RESEND_AFTER_MS = 2000
EVIDENCE_PENDING_MAX = 256
#: Evidence older than this many heights is refused (bounds what a restarted node, which has
#: forgotten what was committed, could be tricked into proposing again).
EVIDENCE_AGE_HEIGHTS_MAX = 1000
RPC_BATCH_TXS_MAX = 50_000
#: Peer inputs wait at most this long in memory before their WAL records are flushed on their
#: own (a signature flushes them sooner, in its own durable transaction).
WAL_FLUSH_MS = 200
#: ... or until this many bytes of records are waiting.
WAL_PENDING_BYTES_MAX = 16 << 20
#: Recent blocks whose transaction ids are kept in memory for GET /block and GET /blocks.
RECENT_BLOCKS_MAX = 64
#: Blocks one GET /blocks answer carries at most.
BLOCKS_PER_ANSWER_MAX = 32

__all__ = ["Node", "run_node_forever"]

# WAL record kinds (msgpack arrays). _W_SIGNED records what this node signed at the height; it
# is written by Store.sign_guarded in the same durable transaction as the signer state, and on
# restart rebuilds the signer's history instead of being stepped. _W_RESUME is the Resume fed
# after a replay that left the core behind its signer record (a damaged WAL).
_W_PROPOSAL, _W_VOTE, _W_TIMEOUT, _W_VALUE, _W_COMMIT, _W_SIGNED, _W_RESUME = range(1, 8)


class Node:
    """A validator (or observer) node. Embed it in an asyncio program::

        node = Node("/path/to/home", app=MyApp())
        await node.start()
        result = await node.submit_tx(envelope)       # AddResult(code, tx_id, log)
        await node.wait_for_height(5)
        await node.stop()
    """

    rpc_batch_txs_max = RPC_BATCH_TXS_MAX

    def __init__(self, home: str | Home, app: Application | None = None, *, rpc: bool = True,
                 store_sync: bool = True, net_limits: NetLimits | None = None):
        self.home = home if isinstance(home, Home) else load_home(home)
        cfg = self.home.config
        self.config = cfg
        self.chain_id = self.home.genesis.chain_id.encode()
        self.validators = cs.ValidatorSet([cs.Validator(v.public_key, v.power)
                                           for v in self.home.genesis.validators])
        self.app = app if app is not None else load_app(cfg.app)
        if not isinstance(self.app, Application):
            raise TypeError("app must be an engine.app.Application")
        self.node_key = self.home.node_key
        self._rpc_enabled = rpc
        self._store_sync = store_sync
        self._net_limits = net_limits or NetLimits()
        self.store: Store | None = None
        self.core: cs.ConsensusCore | None = None
        self.peers: PeerSet | None = None
        self.mempool: Mempool | None = None
        self.rpc: Any = None  # engine.rpc.RpcServer once started
        self._executor: ThreadPoolExecutor | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task] = set()
        self._height_waiters: list[tuple[int, asyncio.Future]] = []
        self._tx_waiters: dict[bytes, list[asyncio.Future]] = {}
        self._preverified: set[tuple[bytes, bytes, bytes]] = set()
        self._valid_cache: dict[bytes, bool] = {}
        self._block_cache: dict[bytes, tuple[Block, list[bytes]]] = {}
        self._cert_ok: dict[bytes, bool] = {}
        self._own_messages: list[bytes] = []
        #: Evidence waiting for a block: hash -> (height of the offence, encoded evidence).
        self._evidence: dict[bytes, tuple[int, bytes]] = {}
        self._committed_evidence: set[bytes] = set()
        self._peer_heights: dict[bytes, int] = {}
        self._sync_pending: dict[bytes, float] = {}
        self._last_commit_time = time.monotonic()
        self._last_block_time_ms = 0
        self._replaying = False
        self._running = False
        self._persisted: set[tuple[int, int, int, bytes]] = set()  # (h, r, step, signature)
        #: WAL records (height, entry) of inputs already stepped but not yet written.
        self._wal_pending: list[tuple[int, bytes]] = []
        self._wal_pending_bytes = 0
        self._wal_flush_timer: asyncio.TimerHandle | None = None
        #: height -> (block hash, tx ids) of the last RECENT_BLOCKS_MAX commits.
        self._recent_blocks: dict[int, tuple[bytes, list[bytes]]] = {}
        self._compaction_pending = False
        #: Why the node stopped itself (a broken invariant), or None while healthy.
        self.halted: str | None = None
        self._halted_event: asyncio.Event | None = None
        self.counters: dict[str, int] = {}
        self.latest_height = 0
        self.latest_block_hash = bytes(32)
        self.latest_app_hash = bytes(32)
        self.genesis_app_hash = bytes(32)
        self.metrics = NodeMetrics(self)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Open the store, replay the WAL, start p2p, RPC and the consensus core. On failure
        (e.g. a port in use) whatever was started is stopped again before the error rises."""
        if self._running or self.store is not None:
            raise RuntimeError("node is already running")
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.config
        os.makedirs(self.home.path, exist_ok=True)
        self.store = Store(store_path(self.home.path), sync=self._store_sync)
        self._repair_wal()
        self.app.state = _StoreState(self.store)
        self.app.info()
        self.genesis_app_hash = self.app.init_chain(self.home.genesis.chain_id,
                                                    dict(self.home.genesis.app_state))
        self._load_chain_tip()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="engine-verify")
        self.mempool = Mempool(
            chain_id=self.chain_id, check_tx=self.app.check_tx,
            find_committed=self._find_committed,
            limits=MempoolLimits(txs_max=cfg.mempool_txs_max, bytes_max=cfg.mempool_bytes_max,
                                 tx_bytes_max=self._net_limits.tx_bytes_max,
                                 batch_txs_max=cfg.mempool_batch_txs_max,
                                 batch_wait_ms=cfg.mempool_batch_wait_ms),
            executor=self._executor, verify_threads=cfg.verify_threads or None,
            on_admitted=self._gossip_txs)
        self.mempool.observe_batch = self.metrics.observe_batch
        self.mempool.start()
        self._running = True
        self._halted_event = asyncio.Event()
        self._build_core()
        self.peers = PeerSet(
            node_key=self.node_key, chain_id=self.home.genesis.chain_id,
            listen_host=cfg.p2p_host, listen_port=cfg.p2p_port,
            peers=[PeerAddress(bytes.fromhex(p.node_key), p.host, p.port) for p in cfg.peers],
            on_message=self._on_message, on_connect=self._on_connect,
            on_disconnect=self._on_disconnect, limits=self._net_limits)
        if os.environ.get("ENGINE_TEST_FAULTS") == "1":
            # Test-only fault injection (chaos transport, Byzantine behaviour, signature log),
            # active only with HOME/testing.toml as well: engine/testnet/hooks.py.
            from engine.testnet.hooks import install as install_test_hooks

            install_test_hooks(self)
        await self.peers.start()
        if self._rpc_enabled:
            from engine.rpc import RpcServer

            self.rpc = RpcServer(self, cfg.rpc_host, cfg.rpc_port)
            await self.rpc.start()
        self._spawn(self._housekeeping())
        self._replay_and_start()
        log.info("node %s started at height %d", self.config.moniker, self.latest_height + 1)

    async def stop(self) -> None:
        if self.store is None:
            return  # never started, or already stopped
        self._running = False
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.rpc is not None:
            await self.rpc.stop()
        if self.peers is not None:
            await self.peers.stop()
        if self.mempool is not None:
            await self.mempool.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        for _, fut in self._height_waiters:
            if not fut.done():
                fut.cancel()
        for futs in self._tx_waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.cancel()
        if self.store is not None:
            try:
                self._flush_wal()
            except Exception as e:  # noqa: BLE001 - a disk error must not keep the store open
                log.error("could not flush the WAL at stop: %s", e)
            self.store.close()
            self.store = None

    async def wait_for_height(self, height: int, timeout_s: float | None = None) -> int:
        """Wait until a block at ``height`` (or above) is committed; returns the latest height."""
        if self.latest_height >= height:
            return self.latest_height
        fut = asyncio.get_running_loop().create_future()
        self._height_waiters.append((height, fut))
        return await asyncio.wait_for(fut, timeout_s)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _repair_wal(self) -> None:
        """A torn or corrupted WAL tail (crash, bad disk) loses its damaged records instead of
        stopping the node from ever starting; the signer record still guards every signature."""
        from engine.store.wal_repair import repair_wal

        assert self.store is not None
        dropped = repair_wal(self.store)
        if dropped:
            log.error("WAL damaged: dropped %d records from %s on", len(dropped), dropped[0])
            self._count("wal_records_dropped", len(dropped))

    def _load_chain_tip(self) -> None:
        assert self.store is not None
        h = self.store.latest_height()
        self.latest_height = h
        if h:
            stored = self.store.load_block(h)
            if stored is None:
                raise RuntimeError(f"store reports height {h} but holds no block there")
            self.latest_block_hash = stored.block_hash
            self.latest_app_hash = stored.app_hash
            self._last_block_time_ms = Block.decode(stored.header, header_only=True).time_ms
        else:
            self.latest_app_hash = self.genesis_app_hash
        self.app.last_app_hash = self.latest_app_hash

    def _find_committed(self, tx_ids: list[bytes]) -> list[bool]:
        assert self.store is not None
        return [loc is not None for loc in self.store.find_txs(tx_ids)]

    def _build_core(self) -> None:
        assert self.store is not None
        own = self.home.validator_key
        signer = None
        if self.validators.index_of(own.public_key) is not None:
            signer = cs.SignerGuard(own, self._restore_signer_state())
        cfg = self.config
        timeouts = cs.TimeoutConfig(
            propose_ms=cfg.timeout_propose_ms, propose_delta_ms=cfg.timeout_delta_ms,
            prevote_ms=cfg.timeout_prevote_ms, prevote_delta_ms=cfg.timeout_delta_ms,
            precommit_ms=cfg.timeout_precommit_ms, precommit_delta_ms=cfg.timeout_delta_ms)
        self.core = cs.ConsensusCore(self.chain_id, self.validators, signer,
                                     height=self.latest_height + 1, is_valid=self._is_valid,
                                     verify=self._verify, timeouts=timeouts)

    def _restore_signer_state(self) -> cs.SignerState | None:
        """The persisted signer state, with the history of the height rebuilt from the WAL."""
        assert self.store is not None
        stored = self.store.signer_state()
        if stored is None:
            return None
        history = []
        for raw in self.store.wal_replay(stored.height):
            rec = msgpack.unpackb(raw, raw=False)
            if rec[0] == _W_SIGNED:
                _, r, step, sign_bytes, sig = rec
                history.append((r, step, sign_bytes, sig))
                self._persisted.add((stored.height, r, step, sig))
        self._persisted.add((stored.height, stored.round, stored.step, stored.signature))
        if (stored.round, stored.step) not in {(r, s) for r, s, _, _ in history}:
            # Its WAL record was lost with a damaged tail; the signer record still has it.
            history.append((stored.round, stored.step, stored.sign_bytes, stored.signature))
        return cs.SignerState(stored.height, stored.round, stored.step, stored.sign_bytes,
                              stored.signature, tuple(history))

    def _replay_and_start(self) -> None:
        """Start the height, then feed its WAL back through the core (recovery is replay).
        A replayed decision moves to the next height, whose WAL (if any) is replayed next."""
        assert self.store is not None and self.core is not None
        self._replaying = True
        try:
            while True:
                height = self.core.height
                self._execute(self.core.step(cs.Start(height)))
                entries = self.store.wal_replay(height)
                for raw in entries:
                    try:
                        event = self._decode_wal(raw)
                        if event is not None:
                            self._execute(self.core.step(event))
                    except (cs.ProtocolError, NetProtocolError, ValueError) as e:
                        log.warning("skipping WAL record that no longer applies: %s", e)
                if entries:
                    self._count("wal_records_replayed", len(entries))
                    log.info("replayed %d WAL records at height %d", len(entries), height)
                if self.core.height == height:
                    break
        finally:
            self._replaying = False
        self._resume()
        self._resend_own()

    def _resume(self) -> None:
        """A WAL that lost its tail leaves the core behind its signer record: it would sign
        nothing until the rounds it had signed in were over, and peers that need its messages
        (for a quorum, or f+1 to skip to a later round) would wait for ever. Resume puts it
        back at its last signed (round, step), with its lock and its votes, which are re-sent
        as they were signed (same bytes, same signatures)."""
        assert self.core is not None
        resume = self.core.resume_event()
        if resume is None:
            return
        log.warning("WAL is behind the signer record at height %d: resuming at (round, step) "
                    "%s with %d own signed messages", resume.height,
                    max((r, s) for r, s, _, _ in resume.signed), len(resume.signed))
        self._count("resumed_from_signer")
        self._input(resume, resume.height)

    # ------------------------------------------------------------------ inputs
    def _input(self, event: Any, wal_height: int) -> None:
        """WAL, then step, then execute the actions (the only path into the core)."""
        assert self.core is not None and self.store is not None
        if not self._running:
            return
        self._wal_buffer(wal_height, self._encode_wal(event))
        actions = self.core.step(event)
        self._execute(actions)

    # WAL records are buffered rather than each written in its own synced transaction: the
    # records an own signature depends on are written in that signature's durable transaction
    # (Store.sign_guarded(wal_before=...)), so persist-before-send still covers every input
    # that led to a signed message. A crash can only lose inputs received after the last
    # signature (and at most WAL_FLUSH_MS old): to recovery that looks like messages lost in
    # the network, which peers re-send (own messages are re-sent on reconnect and on stalls).

    def _wal_buffer(self, height: int, entry: bytes) -> None:
        self._wal_pending.append((height, entry))
        self._wal_pending_bytes += len(entry)
        if self._wal_pending_bytes > WAL_PENDING_BYTES_MAX:
            self._flush_wal()
        elif self._wal_flush_timer is None:
            self._wal_flush_timer = asyncio.get_running_loop().call_later(
                WAL_FLUSH_MS / 1000, self._flush_wal)

    def _flush_wal(self) -> None:
        """Write the buffered WAL records in one transaction."""
        if self._wal_flush_timer is not None:
            self._wal_flush_timer.cancel()
            self._wal_flush_timer = None
        if self._wal_pending and self.store is not None:
            self.store.wal_append_many(self._wal_pending)
        self._wal_written()

    def _wal_written(self) -> None:
        self._wal_pending = []
        self._wal_pending_bytes = 0

    def _wal_drop_decided(self, height: int) -> None:
        """save_block dropped the WAL of ``height`` and below: so do the buffered records."""
        kept = [(h, e) for h, e in self._wal_pending if h > height]
        if len(kept) != len(self._wal_pending):
            self._wal_pending = kept
            self._wal_pending_bytes = sum(len(e) for _, e in kept)

    def _on_timer(self, handle_ref: list, event: cs.TimeoutFired) -> None:
        self._timers.discard(handle_ref[0])
        core = self.core
        if core is None or (event.height, event.round) != (core.height, core.round):
            return  # stale: the core would ignore it; keep it out of the WAL
        self._input(event, event.height)

    # ------------------------------------------------------------------ actions
    def _execute(self, actions: list) -> None:
        votes: list[bytes] = []
        decided = None
        for action in actions:
            if isinstance(action, cs.BroadcastVote):
                v = action.vote
                if self._persist_signature(v.height, v.round, int(v.type) + 1,
                                           v.sign_bytes(self.chain_id), v.signature):
                    votes.append(v.encode())
            elif isinstance(action, cs.BroadcastProposal):
                p = action.proposal
                if self._persist_signature(p.height, p.round, int(cs.Step.PROPOSE),
                                           p.sign_bytes(self.chain_id), p.signature):
                    self._flush_votes(votes)
                    msg = codec.encode(codec.PROPOSAL, action.proposal.encode(), action.block)
                    self._own_messages.append(msg)
                    self._broadcast(msg)
            elif isinstance(action, cs.ScheduleTimeout):
                self._schedule(action)
            elif isinstance(action, cs.RequestValue):
                self._spawn(self._propose(action.height, action.round))
            elif isinstance(action, cs.Decide):
                self._flush_votes(votes)
                try:
                    self._commit(action)
                except Exception as e:
                    # The core has moved on but the block is not stored: going on could only
                    # produce signatures on a state we do not have. Halt loudly instead.
                    self._halt(f"cannot commit block {action.height}: {e!r}")
                    raise
                decided = action.height
            elif isinstance(action, cs.ReportEvidence):
                self._add_evidence(action.evidence, gossip=True)
            elif isinstance(action, cs.MessageDropped):
                self._count(f"dropped:{action.reason.split(' ')[0]}")
            elif isinstance(action, cs.SignRefused):
                if not self._replaying:
                    log.error("double-sign guard refused to sign at (%d, %d, %s): %s",
                              action.height, action.round, action.step.name, action.reason)
                self._count("sign_refused")
        self._flush_votes(votes)
        if decided is not None and self.core is not None and not self._replaying:
            # The block is stored, so validity at the next height can be judged: start it.
            self._execute(self.core.step(cs.Start(decided + 1)))

    def _halt(self, reason: str) -> None:
        log.critical("halting node %s: %s", self.config.moniker, reason)
        self.halted = reason
        self._running = False
        if self._halted_event is not None:
            self._halted_event.set()

    def _flush_votes(self, votes: list[bytes]) -> None:
        if votes:
            msg = codec.encode(codec.VOTES, list(votes))
            self._own_messages.append(msg)
            self._broadcast(msg)
            votes.clear()

    def _persist_signature(self, height: int, round: int, step: int, sign_bytes: bytes,
                           signature: bytes) -> bool:
        """Make the signature durable — signer record, a WAL record of it, and every WAL record
        written before, in one synced transaction — before it may be sent. A signature that
        is already on disk (re-sent after a replay) needs nothing more."""
        assert self.store is not None
        key = (height, round, step, signature)
        if key in self._persisted:
            return True
        try:
            self.store.sign_guarded(
                height, round, step, sign_bytes, lambda _: signature,
                wal_entry=lambda sig: msgpack.packb([_W_SIGNED, round, step, sign_bytes, sig],
                                                    use_bin_type=True),
                wal_before=self._wal_pending)
        except Exception as e:  # noqa: BLE001 - DoubleSignRefused or disk error: never send
            log.error("not sending signature at (%d, %d, %d): %s", height, round, step, e)
            self._count("persist_refused")
            return False
        self._wal_written()
        if len(self._persisted) > 64:  # only the current height's signatures matter
            self._persisted = {k for k in self._persisted if k[0] >= height}
        self._persisted.add(key)
        return True

    def _broadcast(self, message: bytes) -> None:
        if self.peers is not None and not self._replaying:
            self.peers.broadcast(message)

    def _schedule(self, action: cs.ScheduleTimeout) -> None:
        event = cs.TimeoutFired(action.height, action.round, action.step)
        ref: list = []
        handle = asyncio.get_running_loop().call_later(action.duration_ms / 1000, self._on_timer,
                                                       ref, event)
        ref.append(handle)
        self._timers.add(handle)

    async def _propose(self, height: int, round: int) -> None:
        """Answer RequestValue: wait until the block interval since the previous block's time
        has passed, then cut a block."""
        interval_s = self.config.block_interval_ms / 1000
        # Capped by the interval itself: the previous time comes from another node's clock.
        wait_s = min(interval_s, self._last_block_time_ms / 1000 + interval_s - time.time())
        # The interval only exists to let transactions gather; a full block need not wait.
        full = self.mempool is not None and len(self.mempool) >= self.config.block_txs_max
        if wait_s > 0 and not full:
            await asyncio.sleep(wait_s)
        if not self.config.create_empty_blocks and round == 0:
            deadline = time.monotonic() + self.config.timeout_propose_ms / 2000
            while self.mempool is not None and not len(self.mempool) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        core = self.core
        if core is None or (core.height, core.round) != (height, round) or not self._running:
            return
        block = self._make_block(height)
        self._valid_cache[blake3_many([block])[0]] = True
        self._input(cs.ValueReady(height, round, block), height)

    def _make_block(self, height: int) -> bytes:
        assert self.store is not None and self.mempool is not None and self.core is not None
        cfg = self.config
        txs = self.mempool.reap(cfg.block_txs_max, cfg.block_bytes_max)
        last_commit = self.store.load_certificate(height - 1) if height > 1 else b""
        # Evidence can only go into a block above the height of the offence.
        evidence = [e for h, e in self._evidence.values() if h < height][:16]
        time_ms = max(int(time.time() * 1000), self._last_block_time_ms)
        own = self.core.own_index if self.core.own_index is not None else 0
        return Block.make(chain_id=self.chain_id, height=height, time_ms=time_ms,
                          parent_hash=self.latest_block_hash, app_hash=self.latest_app_hash,
                          proposer_index=own, last_commit=last_commit or b"",
                          evidence=evidence, txs=txs).encode()

    def _commit(self, decide: cs.Decide) -> None:
        """Execute a decided block and store everything about it in one write transaction."""
        assert self.store is not None and self.mempool is not None
        from engine import tx as txmod

        block, tx_ids = self._decoded_block(decide.block_hash, decide.block)
        pooled = self.mempool.decoded
        txs = [pooled(i) or txmod.decode_tx(t, tx_id=i) for i, t in zip(tx_ids, block.txs)]
        result = self.app.finalize_block(decide.height, txs)
        if len(result.tx_results) != len(txs):
            raise RuntimeError("application returned a result count different from the txs")
        # Most results are identical (code 0), often one shared object: pack each once.
        packed: dict[tuple, bytes] = {}
        by_object: dict[int, bytes] = {}  # the results list keeps every object alive
        results = []
        for r in result.tx_results:
            raw = by_object.get(id(r))
            if raw is None:
                k = (r.code, r.log, r.data)
                raw = by_object[id(r)] = packed.get(k) or packed.setdefault(
                    k, msgpack.packb(list(k)))
            results.append(raw)
        self.store.save_block(
            decide.height, decide.block_hash, block.header(), list(block.txs),
            decide.certificate.encode(), parent_hash=block.parent_hash, app_hash=result.app_hash,
            results=results, state_changes=list(result.writes.items()), tx_ids=tx_ids)
        self._wal_drop_decided(decide.height)
        self._schedule_index_compaction()
        self.app.commit()
        self.mempool.remove_committed(tx_ids)
        for e in block.evidence:
            eh = blake3_many([e])[0]
            self._evidence.pop(eh, None)
            self._committed_evidence.add(eh)
        now = time.monotonic()
        self.metrics.observe_block(now - self._last_commit_time, len(tx_ids))
        self._last_commit_time = now
        self._last_block_time_ms = block.time_ms
        self.latest_height = decide.height
        self.latest_block_hash = decide.block_hash
        self.latest_app_hash = result.app_hash
        self._own_messages = []
        self._valid_cache.clear()
        self._block_cache.clear()
        self._preverified.clear()
        self._count("txs_committed", len(tx_ids))
        self._recent_blocks[decide.height] = (decide.block_hash, tx_ids)
        if len(self._recent_blocks) > RECENT_BLOCKS_MAX:
            del self._recent_blocks[min(self._recent_blocks)]
        self._wake_waiters(decide.height, tx_ids)
        if not self._replaying:
            self._broadcast(self._status_message())

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
        if self.store is not None:
            self.store.compact_index()

    def _wake_waiters(self, height: int, tx_ids: list[bytes]) -> None:
        keep = []
        for h, fut in self._height_waiters:
            if h <= height:
                if not fut.done():
                    fut.set_result(height)
            else:
                keep.append((h, fut))
        self._height_waiters = keep
        if self._tx_waiters:
            for i, tx_id in enumerate(tx_ids):
                for fut in self._tx_waiters.pop(tx_id, ()):
                    if not fut.done():
                        fut.set_result((height, i))

    # ------------------------------------------------------------------ validity
    def _verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """The core's verify: answers from the last batch verification when it covered this
        signature, else one native verification."""
        key = (public_key, message, signature)
        if key in self._preverified:
            self._preverified.discard(key)
            return True
        return crypto.verify(public_key, message, signature)

    def _is_valid(self, height: int, raw: bytes) -> bool:
        key = blake3_many([raw])[0]
        ok = self._valid_cache.get(key)
        if ok is None:
            try:
                self._check_block(height, raw, key)
                ok = True
            except (NetProtocolError, cs.ProtocolError, ValueError) as e:
                log.warning("invalid block at height %d: %s", height, e)
                self._count("invalid_block")
                ok = False
            self._valid_cache[key] = ok
        return ok

    def _decoded_block(self, block_hash: bytes, raw: bytes) -> tuple[Block, list[bytes]]:
        """A block and its transaction ids, decoded once between validation and commit."""
        hit = self._block_cache.get(block_hash)
        if hit is not None:
            return hit
        b = Block.decode(raw)
        out = (b, blake3_many(list(b.txs)) if b.txs else [])
        if len(self._block_cache) >= 8:  # proposals of a few rounds at most
            self._block_cache.clear()
        self._block_cache[block_hash] = out
        return out

    def _check_block(self, height: int, raw: bytes, block_hash: bytes) -> None:
        assert self.store is not None and self.mempool is not None
        cfg = self.config
        b, ids = self._decoded_block(block_hash, raw)
        if b.chain_id != self.chain_id or b.height != height:
            raise NetProtocolError(f"block is for {b.chain_id!r} height {b.height}")
        if height != self.latest_height + 1:
            raise NetProtocolError(f"block {height} does not follow our tip {self.latest_height}")
        if b.parent_hash != self.latest_block_hash:
            raise NetProtocolError("parent hash is not our last block")
        if b.app_hash != self.latest_app_hash:
            raise NetProtocolError("app hash differs from our state after the parent")
        if len(b.txs) > cfg.block_txs_max or len(raw) > cfg.block_bytes_max + (1 << 20):
            raise NetProtocolError("block exceeds the configured size limits")
        self._check_last_commit(height, b.last_commit)
        if tx_root_of(ids) != b.tx_root:
            raise NetProtocolError("tx root does not match the transactions")
        if len(set(ids)) != len(ids):
            raise NetProtocolError("a transaction appears twice")
        # A pooled transaction is known to be uncommitted (commits leave the pool), so only
        # the others need the store's index: one batched lookup.
        unknown = [t for t in ids if t not in self.mempool]
        if unknown and any(self._find_committed(unknown)):
            raise NetProtocolError("the block holds an already committed transaction")
        if ids and not all(self.mempool.verify_block_txs(list(b.txs), ids)):
            raise NetProtocolError("a transaction signature does not verify")
        for e in b.evidence:
            ev = cs.DuplicateVoteEvidence.decode(e)
            if not height - EVIDENCE_AGE_HEIGHTS_MAX <= ev.height < height \
                    or blake3_many([e])[0] in self._committed_evidence:
                raise NetProtocolError("evidence is too old, from the future or already "
                                       "committed")
            ev.verify(self.chain_id, self.validators, crypto.verify)

    def _check_last_commit(self, height: int, raw: bytes) -> None:
        if height == 1:
            if raw:
                raise NetProtocolError("block 1 cannot carry a last commit")
            return
        ok = self._cert_ok.get(raw)
        if ok is None:
            cert = cs.CommitCertificate.decode(raw, len(self.validators))
            if cert.height != height - 1 or cert.block_hash != self.latest_block_hash:
                raise NetProtocolError("last commit is not for the parent block")
            cert.verify(self.chain_id, self.validators)
            if len(self._cert_ok) > 64:
                self._cert_ok.clear()
            self._cert_ok[raw] = ok = True

    # ------------------------------------------------------------------ peers
    def _on_connect(self, peer: bytes) -> None:
        assert self.peers is not None
        self.peers.send(peer, self._status_message())
        for msg in self._own_messages:
            self.peers.send(peer, msg)

    def _resend_own(self) -> None:
        for msg in self._own_messages:
            self._broadcast(msg)

    def _relay_proof_of_lock(self) -> None:
        """On a stall, relay the prevotes that made the valid value valid (at most one per
        validator): a peer that lost them (a damaged WAL, a long partition) needs them to
        accept the value's re-proposal (l.28), and a Byzantine voter in them re-sends nothing."""
        core = self.core
        if core is None or core.valid_value is None:
            return
        votes = core.votes.votes_for(core.valid_round, cs.VoteType.PREVOTE, core.valid_value)
        if votes:
            votes = votes[:self._net_limits.votes_per_message_max]
            self._broadcast(codec.encode(codec.VOTES, [v.encode() for v in votes]))

    def _on_disconnect(self, peer: bytes) -> None:
        self._peer_heights.pop(peer, None)
        self._sync_pending.pop(peer, None)

    def _status_message(self) -> bytes:
        return codec.encode(codec.STATUS, self.latest_height,
                            self.latest_block_hash if self.latest_height else b"")

    def _on_message(self, peer: bytes, msg: codec.Message) -> None:
        if not self._running:
            return
        try:
            handler = self._handlers[msg.kind]
            handler(self, peer, *msg.fields)
        except (cs.ProtocolError, NetProtocolError) as e:
            log.debug("dropped %s from %s: %s", msg.name, peer.hex()[:12], e)
            assert self.peers is not None
            self.peers.penalize(peer, f"invalid_{msg.name}")

    def _on_status(self, peer: bytes, height: int, block_hash: bytes) -> None:
        self._peer_heights[peer] = height
        self._maybe_sync(peer)

    def _maybe_sync(self, peer: bytes) -> None:
        assert self.peers is not None
        if self._peer_heights.get(peer, 0) <= self.latest_height:
            return
        sent = self._sync_pending.get(peer)
        now = time.monotonic()
        if sent is not None and now - sent < SYNC_REQUEST_TIMEOUT_MS / 1000:
            return
        self._sync_pending[peer] = now
        self.peers.send(peer, codec.encode(codec.GET_BLOCKS, self.latest_height + 1,
                                           SYNC_BLOCKS_PER_REQUEST))

    # Peer input reaches the WAL only once it is known to be signed by a validator and to be
    # for a height the core keeps: otherwise a peer could grow our WAL with junk that the core
    # would refuse anyway. The signatures checked here are remembered, so the core's own
    # check (through _verify) costs a set lookup.

    def _height_kept(self, height: int) -> bool:
        assert self.core is not None
        return self.core.height <= height <= self.core.height + cs_limits.heights_ahead_max

    def _verify_and_remember(self, public_keys: Sequence[bytes], messages: Sequence[bytes],
                             signatures: Sequence[bytes]) -> list[bool]:
        verdicts = crypto.verify_batch(public_keys, messages, signatures)
        if len(self._preverified) > 100_000:  # bounded: unused entries of a stuck height
            self._preverified.clear()
        self._preverified.update(t for t, ok in zip(zip(public_keys, messages, signatures),
                                                    verdicts) if ok)
        return verdicts

    def _on_proposal(self, peer: bytes, proposal: bytes, block: bytes) -> None:
        p = cs.Proposal.decode(proposal)
        if not self._height_kept(p.height):
            return
        if not 0 <= p.proposer_index < len(self.validators) or not self._verify_and_remember(
                [self.validators.public_key(p.proposer_index)], [p.sign_bytes(self.chain_id)],
                [p.signature])[0]:
            raise cs.ProtocolError("proposal is not signed by a validator")
        todo = self._unverified_block_txs(block)
        if todo is None:
            self._input(cs.ProposalReceived(p, block), p.height)
        else:
            self._spawn(self._verify_then_input(p, block, *todo))

    def _unverified_block_txs(self, raw: bytes) -> tuple[list[bytes], list[bytes]] | None:
        """(envelopes, ids) of a proposed block's transactions this node has not verified yet,
        or None when there are none (or the block does not decode: the core judges it)."""
        assert self.mempool is not None
        try:
            block, ids = self._decoded_block(blake3_many([raw])[0], raw)
        except (NetProtocolError, ValueError):
            return None
        verified = self.mempool.is_verified
        todo = [i for i, t in enumerate(ids) if not verified(t)]
        if not todo:
            return None
        return [block.txs[i] for i in todo], [ids[i] for i in todo]

    async def _verify_then_input(self, p: cs.Proposal, block: bytes, envelopes: list[bytes],
                                 tx_ids: list[bytes]) -> None:
        """Transactions of a proposal that have not reached this node's mempool yet (their
        gossip is still in admission) are verified on a worker thread, so the event loop keeps
        serving votes and RPC meanwhile; the block check afterwards finds them verified."""
        assert self.mempool is not None
        await self.mempool.verify_ahead(envelopes, tx_ids)
        if self._running and self._height_kept(p.height):
            self._input(cs.ProposalReceived(p, block), p.height)

    def _on_votes(self, peer: bytes, raw_votes: list[bytes]) -> None:
        votes = [cs.Vote.decode(v) for v in raw_votes]
        live = [v for v in votes if self._height_kept(v.height)]
        known = [v for v in live if 0 <= v.validator_index < len(self.validators)]
        verdicts = self._verify_and_remember(
            [self.validators.public_key(v.validator_index) for v in known],
            [v.sign_bytes(self.chain_id) for v in known],
            [v.signature for v in known]) if known else []
        bad = len(live) - len(known) + verdicts.count(False)
        for v, ok in zip(known, verdicts):
            if not ok or not self._height_kept(v.height):
                continue
            try:
                self._input(cs.VoteReceived(v), v.height)
            except cs.ProtocolError:
                bad += 1
        if bad:
            raise cs.ProtocolError(f"{bad} invalid votes in a batch")

    def _on_evidence(self, peer: bytes, items: list[bytes]) -> None:
        for e in items:
            ev = cs.DuplicateVoteEvidence.decode(e)
            ev.verify(self.chain_id, self.validators, crypto.verify)
            self._add_evidence(ev, gossip=False)

    def _add_evidence(self, evidence: cs.DuplicateVoteEvidence, *, gossip: bool) -> None:
        encoded = evidence.encode()
        eh = blake3_many([encoded])[0]
        if eh in self._evidence or eh in self._committed_evidence \
                or evidence.height < self.latest_height + 1 - EVIDENCE_AGE_HEIGHTS_MAX:
            return
        if len(self._evidence) >= EVIDENCE_PENDING_MAX:
            self._count("evidence_dropped")
            return
        self._evidence[eh] = (evidence.height, encoded)
        self._count("evidence")
        if gossip:
            self._broadcast(codec.encode(codec.EVIDENCE, [encoded]))

    def _on_txs(self, peer: bytes, envelopes: list[bytes]) -> None:
        assert self.mempool is not None
        self.mempool.submit(envelopes, local=False)

    def _on_get_blocks(self, peer: bytes, start: int, count: int) -> None:
        assert self.store is not None and self.peers is not None
        items: list[list] = []
        total = 0
        for stored in self.store.blocks(start, start + count):
            raw = with_txs(Block.decode(stored.header, header_only=True), stored.txs).encode()
            if items and total + len(raw) > SYNC_REPLY_BYTES_MAX:
                break
            items.append([stored.height, raw, stored.certificate])
            total += len(raw)
        if items:
            self.peers.send(peer, codec.encode(codec.BLOCKS, items))

    def _on_blocks(self, peer: bytes, items: list) -> None:
        assert self.core is not None
        self._sync_pending.pop(peer, None)
        for height, raw, cert_raw in sorted(items):
            if height != self.core.height:
                continue
            cert = cs.CommitCertificate.decode(cert_raw, len(self.validators))
            if cert.height != height:
                raise NetProtocolError("certificate height differs from the block's")
            # One batch verification of the certificate before it may enter the WAL.
            cert.verify(self.chain_id, self.validators, self._verify_and_remember)
            self._input(cs.CommitReceived(raw, cert), height)
            self._count("blocks_synced")
        self._maybe_sync(peer)

    _handlers: ClassVar[dict] = {codec.STATUS: _on_status, codec.PROPOSAL: _on_proposal,
                                 codec.VOTES: _on_votes, codec.EVIDENCE: _on_evidence,
                                 codec.TXS: _on_txs, codec.GET_BLOCKS: _on_get_blocks,
                                 codec.BLOCKS: _on_blocks}

    def _gossip_txs(self, envelopes: list[bytes]) -> None:
        """Locally submitted transactions go to every peer, in batches (the mesh is full, so
        peers do not relay what they receive)."""
        count_max = self._net_limits.txs_per_message_max
        bytes_max = self._net_limits.frame_bytes_max // 2  # room for msgpack framing
        batch: list[bytes] = []
        size = 0
        for env in envelopes:
            if batch and (len(batch) >= count_max or size + len(env) > bytes_max):
                self._broadcast(codec.encode(codec.TXS, batch))
                batch, size = [], 0
            batch.append(env)
            size += len(env) + 5
        if batch:
            self._broadcast(codec.encode(codec.TXS, batch))

    async def _housekeeping(self) -> None:
        """Periodic status to peers, and re-sending own messages when a height stalls."""
        last_height, stalled_since = self.latest_height, time.monotonic()
        while True:
            await asyncio.sleep(STATUS_INTERVAL_MS / 1000)
            self._broadcast(self._status_message())
            now = time.monotonic()
            if self.latest_height != last_height:
                last_height, stalled_since = self.latest_height, now
            elif now - stalled_since > RESEND_AFTER_MS / 1000:
                self._resend_own()
                self._relay_proof_of_lock()
                stalled_since = now

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # ------------------------------------------------------------------ WAL records
    def _encode_wal(self, event: Any) -> bytes:
        if isinstance(event, cs.ProposalReceived):
            rec = [_W_PROPOSAL, event.proposal.encode(), event.block]
        elif isinstance(event, cs.VoteReceived):
            rec = [_W_VOTE, event.vote.encode()]
        elif isinstance(event, cs.TimeoutFired):
            rec = [_W_TIMEOUT, event.height, event.round, int(event.step)]
        elif isinstance(event, cs.ValueReady):
            rec = [_W_VALUE, event.height, event.round, event.block]
        elif isinstance(event, cs.CommitReceived):
            rec = [_W_COMMIT, event.block, event.certificate.encode()]
        elif isinstance(event, cs.Resume):
            rec = [_W_RESUME, event.height, [list(e) for e in event.signed]]
        else:
            raise TypeError(f"no WAL record for {type(event).__name__}")
        return msgpack.packb(rec, use_bin_type=True)

    def _decode_wal(self, raw: bytes) -> Any:
        rec = msgpack.unpackb(raw, raw=False)
        kind = rec[0]
        if kind == _W_PROPOSAL:
            return cs.ProposalReceived(cs.Proposal.decode(rec[1]), rec[2])
        if kind == _W_VOTE:
            return cs.VoteReceived(cs.Vote.decode(rec[1]))
        if kind == _W_TIMEOUT:
            return cs.TimeoutFired(rec[1], rec[2], cs.Step(rec[3]))
        if kind == _W_VALUE:
            return cs.ValueReady(rec[1], rec[2], rec[3])
        if kind == _W_COMMIT:
            return cs.CommitReceived(rec[1], cs.CommitCertificate.decode(rec[2],
                                                                         len(self.validators)))
        if kind == _W_SIGNED:
            return None  # restores the signer's history (see _restore_signer_state)
        if kind == _W_RESUME:
            signed = tuple((r, s, sb, sig) for r, s, sb, sig in rec[2])
            # Signatures in a durable record are on disk: re-sending them needs no new write.
            self._persisted.update((rec[1], r, s, sig) for r, s, _, sig in signed)
            return cs.Resume(rec[1], signed)
        raise ValueError(f"unknown WAL record kind {kind}")

    # ------------------------------------------------------------------ API (RPC, embedding)
    async def submit_tx(self, envelope: bytes) -> AddResult:
        """Admit one signed envelope into the mempool (gossiped to peers when accepted)."""
        if not isinstance(envelope, (bytes, bytearray)):
            raise TypeError(f"envelope must be bytes, not {type(envelope).__name__}")
        assert self.mempool is not None, "node is not started"
        return await self.mempool.add(bytes(envelope))

    async def submit_txs(self, envelopes: list[bytes]) -> list[AddResult]:
        assert self.mempool is not None, "node is not started"
        return await self.mempool.add_many(envelopes)

    async def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> dict | None:
        """Wait until ``tx_id`` is committed; its ``tx_info``, or None on timeout."""
        info = self.tx_info(tx_id)
        if info is not None:
            return info
        fut = asyncio.get_running_loop().create_future()
        self._tx_waiters.setdefault(tx_id, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._tx_waiters.get(tx_id)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._tx_waiters[tx_id]
        return self.tx_info(tx_id)

    def status(self) -> dict[str, Any]:
        core = self.core
        return {
            "chain_id": self.home.genesis.chain_id,
            "node_id": self.node_key.public_key.hex(),
            "moniker": self.config.moniker,
            "validator": self.home.validator_key.public_key.hex(),
            "latest_height": self.latest_height,
            "latest_block_hash": self.latest_block_hash.hex(),
            "latest_app_hash": self.latest_app_hash.hex(),
            "latest_block_time_ms": self._last_block_time_ms,
            "consensus": {"height": core.height, "round": core.round,
                          "step": core.step_name} if core else None,
            "peers": [p.hex() for p in (self.peers.connected() if self.peers else [])],
            "mempool": {"txs": len(self.mempool) if self.mempool else 0,
                        "bytes": self.mempool.size_bytes if self.mempool else 0},
            "catching_up": max(self._peer_heights.values(), default=0) > self.latest_height,
            "app": self.app.info(),
        }

    def block_info(self, height: int) -> dict[str, Any] | None:
        assert self.store is not None
        stored = self.store.load_block(height)
        if stored is None:
            return None
        b = Block.decode(stored.header, header_only=True)
        cert = cs.CommitCertificate.decode(stored.certificate, len(self.validators))
        return {
            "height": stored.height, "hash": stored.block_hash.hex(),
            "parent_hash": stored.parent_hash.hex(), "time_ms": b.time_ms,
            "app_hash": b.app_hash.hex(), "result_app_hash": stored.app_hash.hex(),
            "tx_root": stored.tx_root.hex(), "proposer_index": b.proposer_index,
            "num_txs": len(stored.txs),
            "tx_ids": [t.hex() for t in self._block_tx_ids(height, stored.txs)],
            "evidence": len(b.evidence),
            "certificate": {"round": cert.round, "signers": cert.signer_indices()},
        }

    def _block_tx_ids(self, height: int, txs: list[bytes]) -> list[bytes]:
        """The ids of a stored block's transactions: kept from the commit for recent blocks,
        hashed again (one batch call) for older ones."""
        recent = self._recent_blocks.get(height)
        if recent is not None:
            return recent[1]
        return blake3_many(txs) if txs else []

    async def wait_for_blocks(self, from_height: int, timeout_s: float,
                              count_max: int = BLOCKS_PER_ANSWER_MAX) -> list[dict[str, Any]]:
        """Committed blocks from ``from_height`` on (at most ``count_max``), waiting up to
        ``timeout_s`` for the first of them: height, hash, tx count and tx ids of each.
        An empty list when nothing was committed in time (a long poll for followers)."""
        if type(from_height) is not int or from_height < 1:
            raise ValueError(f"from_height must be a positive int, not {from_height!r}")
        if self.latest_height < from_height:
            try:
                await self.wait_for_height(from_height, timeout_s)
            except asyncio.TimeoutError:
                # Timed-out waits would otherwise stay listed until their height comes.
                self._height_waiters = [(h, f) for h, f in self._height_waiters
                                        if not f.done()]
                return []
        out = []
        for h in range(from_height, min(self.latest_height, from_height + count_max - 1) + 1):
            recent = self._recent_blocks.get(h)
            if recent is not None:
                block_hash, ids = recent
            else:
                assert self.store is not None
                stored = self.store.load_block(h)
                if stored is None:  # pruned
                    continue
                block_hash, ids = stored.block_hash, self._block_tx_ids(h, stored.txs)
            out.append({"height": h, "hash": block_hash.hex(), "num_txs": len(ids),
                        "tx_ids": [t.hex() for t in ids]})
        return out

    def tx_info(self, tx_id: bytes) -> dict[str, Any] | None:
        assert self.store is not None
        loc = self.store.find_tx(tx_id)
        stored = self.store.load_block(loc.height) if loc is not None else None
        if loc is None or stored is None:
            return None
        # One block load serves the proof (against the stored tx root) and the result.
        proof = merkle_proof(stored.txs, loc.index)
        code, log_text = 0, ""
        if loc.index < len(stored.results):
            code, log_text, _ = msgpack.unpackb(stored.results[loc.index])
        return {
            "tx_id": tx_id.hex(), "height": loc.height, "index": loc.index,
            "tx": loc.tx.hex(), "result": {"code": code, "log": log_text},
            "block_hash": stored.block_hash.hex(),
            "proof": {"root": stored.tx_root.hex(), "index": proof.index, "size": proof.size,
                      "path": [p.hex() for p in proof.path]},
        }

    def validators_info(self) -> dict[str, Any]:
        return {"total_power": self.validators.total_power,
                "validators": [{"index": i, "name": gv.name, "public_key": v.public_key.hex(),
                                "power": v.power}
                               for i, (v, gv) in enumerate(zip(self.validators.validators,
                                                               self.home.genesis.validators))]}


class _StoreState:
    """The application's read view of committed state."""

    def __init__(self, store: Store):
        self._store = store

    def get(self, key: bytes) -> bytes | None:
        return self._store.state_get(key) if key else None


def _install_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_node_forever(home: str, *, app_spec: str | None = None,
                     log_level: str = "WARNING") -> int:
    """`engine start`: run until SIGINT/SIGTERM, then shut down cleanly."""
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loaded = load_home(home)
    app = load_app(app_spec or loaded.config.app)
    _install_loop_policy()

    async def main() -> int:
        node = Node(loaded, app=app)
        await node.start()
        print(f"node {loaded.config.moniker} running: p2p {loaded.config.p2p_host}:"
              f"{loaded.config.p2p_port}, rpc {loaded.rpc_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        assert node._halted_event is not None
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(node._halted_event.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        await node.stop()
        return 1 if node.halted else 0

    return asyncio.run(main())
