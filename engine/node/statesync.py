"""State sync: a new node joins from a peer's snapshot instead of replaying every block.

Runs before the node's normal start, only when ``state_sync = true`` and the store is empty,
over its own short-lived peer set (same key and port; only the snapshot and block messages are
answered, everything else is ignored). Steps:

1. **Discover**: ask every connected peer for its snapshots (``GET_SNAPSHOTS``). An offer whose
   hash is not the hash of its fields is a protocol fault (the peer is penalised).
2. **Verify** (:func:`verify_snapshot_header`): for the best candidate (highest height at or
   above ``state_sync_trust_height``) fetch the trusted block, the snapshot's block ``H`` and
   block ``H + 1`` with their certificates. Each certificate must verify (one batch call each)
   against the trusted validator set; the trusted block must hash to ``state_sync_trust_hash``;
   block ``H + 1`` must link to ``H``; and the app hash ``H + 1``'s header carries (the state
   after ``H``) must be the snapshot's. A snapshot failing this is refused, with its peers.
3. **Fetch**: chunks from every peer offering that snapshot, a few in flight; each chunk's hash
   must match the snapshot's list on arrival, otherwise the chunk is dropped, the peer
   penalised and dropped from this snapshot, and the chunk asked from another peer.
4. **Restore**: the application turns each chunk into state entries
   (``Application.apply_snapshot_chunk``), and :meth:`engine.store.Store.restore_from_snapshot`
   writes the state and block ``H`` as the chain tip in **one** durable transaction. A crash
   before it leaves an empty store, and the next start runs state sync again; after it, the
   node starts at ``H`` and block-syncs the rest like any node behind.

Only the app hash of the snapshot is checked against the chain: an application whose app hash
does not commit to its state (the built-in kvstore chains its writes instead) cannot tell a
well-formed forged state from the real one (docs/state-sync.md, "Trust").
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine import consensus as cs
from engine import limits
from engine.app import Application
from engine.block import Block
from engine.errors import ProtocolError
from engine.net import codec
from engine.node.ports import Counters
from engine.node.validity import block_hash as hash_of_block
from engine.snapshot import Snapshot, chunk_hash
from engine.store import Store
from engine.suite import DEFAULT, Suite

log = logging.getLogger("engine.node.statesync")

__all__ = ["StateSyncFailed", "StateSyncer", "VerifiedHeight", "verify_snapshot_header"]


class StateSyncFailed(RuntimeError):
    """No snapshot could be restored in time (the reason says what was tried)."""


@dataclass(frozen=True)
class VerifiedHeight:
    """Block ``H`` of a snapshot, verified, with the app hash the chain certifies after it."""

    height: int
    block_hash: bytes
    block: Block
    certificate: bytes
    app_hash: bytes


def _certified(chain_id: bytes, validators: cs.ValidatorSet, verify_batch, height: int,
               raw: bytes, cert_raw: bytes, suite: Suite = DEFAULT) -> tuple[bytes, Block]:
    """(hash, block) of ``raw`` once its certificate at ``height`` verifies."""
    cert = cs.CommitCertificate.decode(cert_raw, len(validators))
    if cert.height != height:
        raise ProtocolError(f"certificate of height {cert.height} served for {height}")
    cert.verify(chain_id, validators, verify_batch)
    digest = hash_of_block(raw, suite)
    if cert.block_hash != digest:
        raise ProtocolError(f"block {height} is not the block its certificate signs")
    block = Block.decode(raw)
    if block.height != height:
        raise ProtocolError(f"block of height {block.height} served for {height}")
    return digest, block


def verify_snapshot_header(*, chain_id: bytes, validators: cs.ValidatorSet, verify_batch,
                           trust_height: int, trust_hash: bytes, snapshot: Snapshot,
                           blocks: dict[int, tuple[bytes, bytes]],
                           suite: Suite = DEFAULT) -> VerifiedHeight:
    """Check ``snapshot`` against the chain: ``blocks`` maps height -> (block bytes,
    certificate bytes) for the trusted height, the snapshot's height and the next one. Raises
    ProtocolError naming what failed. This is the one place the light client (engine/light/,
    with validator-set changes) replaces: today the validator set is the genesis set."""
    h = snapshot.height
    if h < trust_height:
        raise ProtocolError(f"snapshot height {h} is below the trusted height {trust_height}")
    for need in (trust_height, h, h + 1):
        if need not in blocks:
            raise ProtocolError(f"block {need} was not served")
    trusted, _ = _certified(chain_id, validators, verify_batch, trust_height,
                            *blocks[trust_height], suite)
    if trusted != trust_hash:
        raise ProtocolError(f"block {trust_height} hashes to {trusted.hex()}, not the trusted "
                            f"{trust_hash.hex()}")
    digest, block = _certified(chain_id, validators, verify_batch, h, *blocks[h], suite)
    _, next_block = _certified(chain_id, validators, verify_batch, h + 1,
                                 *blocks[h + 1], suite)
    if next_block.parent_hash != digest:
        raise ProtocolError(f"block {h + 1} does not link to block {h}")
    if next_block.app_hash != snapshot.app_hash:
        raise ProtocolError(f"snapshot app hash {snapshot.app_hash.hex()} is not the app hash "
                            f"{next_block.app_hash.hex()} certified after height {h}")
    return VerifiedHeight(h, digest, block, blocks[h][1], snapshot.app_hash)


class _Candidate:
    def __init__(self, snap: Snapshot):
        self.snap = snap
        self.peers: set[bytes] = set()


class StateSyncer:
    """The joining side of state sync; fed peer messages, driven by :meth:`run`."""

    def __init__(self, *, chain_id: bytes, validators: cs.ValidatorSet, app: Application,
                 store: Store, trust_height: int, trust_hash: bytes,
                 send: Callable[[bytes, bytes], bool], penalize: Callable[[bytes, str], None],
                 connected: Callable[[], list[bytes]], counters: Counters,
                 verify_batch: Callable | None = None, suite: Suite = DEFAULT):

        self.chain_id = chain_id
        self.validators = validators
        self.app = app
        self.store = store
        self.trust_height = trust_height
        self.trust_hash = trust_hash
        self.send = send
        self.penalize = penalize
        self.connected = connected
        self.counters = counters
        self.verify_batch = verify_batch or suite.verify_batch
        self.suite = suite
        self._candidates: dict[bytes, _Candidate] = {}
        self._refused: set[bytes] = set()
        self._asked: dict[bytes, float] = {}
        self._block_waiters: dict[int, tuple[bytes, asyncio.Future]] = {}
        self._chunk_waiters: dict[tuple[bytes, int], tuple[bytes, asyncio.Future]] = {}
        self._wake = asyncio.Event()

    # ---- messages -------------------------------------------------------------------------
    def on_connect(self, peer: bytes) -> None:
        self._ask_snapshots(peer)

    def on_message(self, peer: bytes, msg: codec.Message) -> None:
        try:
            if msg.kind == codec.SNAPSHOTS:
                self._on_snapshots(peer, msg.fields[0])
            elif msg.kind == codec.CHUNK:
                self._on_chunk(peer, *msg.fields)
            elif msg.kind == codec.BLOCKS:
                self._on_blocks(peer, msg.fields[0])
            elif msg.kind == codec.PRUNED:
                self._on_pruned(peer, *msg.fields)
        except ProtocolError as e:
            log.warning("state sync: dropped %s from %s: %s", msg.name, peer.hex()[:12], e)
            self.counters.add(f"state_sync_invalid_{msg.name}")
            self.penalize(peer, f"invalid_{msg.name}")

    def on_disconnect(self, peer: bytes) -> None:
        for cand in self._candidates.values():
            cand.peers.discard(peer)
        self._asked.pop(peer, None)

    def _ask_snapshots(self, peer: bytes) -> None:
        self._asked[peer] = time.monotonic()
        self.send(peer, codec.encode(codec.GET_SNAPSHOTS))

    def _on_snapshots(self, peer: bytes, items: list) -> None:
        for item in items[:limits.snapshots_offered_max]:
            snap = Snapshot.from_wire(item)
            if not snap.well_formed():
                raise ProtocolError("snapshot offer whose hash does not match its fields")
            if snap.hash in self._refused:
                continue
            cand = self._candidates.get(snap.hash)
            if cand is None:
                if len(self._candidates) >= limits.snapshots_offered_max * 64:
                    continue  # bounded: a peer inventing offers cannot grow this for ever
                cand = self._candidates[snap.hash] = _Candidate(snap)
            cand.peers.add(peer)
        self._wake.set()

    def _on_chunk(self, peer: bytes, snapshot_hash: bytes, index: int, chunk: bytes) -> None:
        waiting = self._chunk_waiters.get((snapshot_hash, index))
        if waiting is None or waiting[0] != peer or waiting[1].done():
            return  # late, or from a peer not asked: ignore
        cand = self._candidates.get(snapshot_hash)
        if not chunk:
            if cand is not None:
                cand.peers.discard(peer)
            waiting[1].set_result(None)
            return
        if cand is None or index >= cand.snap.chunks or \
                chunk_hash(chunk) != cand.snap.chunk_hashes[index]:
            if cand is not None:
                cand.peers.discard(peer)
            self.counters.add("state_sync_bad_chunk")
            waiting[1].set_result(None)
            raise ProtocolError(f"chunk {index} does not match its hash in the snapshot")
        waiting[1].set_result(chunk)

    def _on_blocks(self, peer: bytes, items: list) -> None:
        for height, raw, cert in items:
            waiting = self._block_waiters.get(height)
            if waiting is not None and waiting[0] == peer and not waiting[1].done():
                waiting[1].set_result((raw, cert))

    def _on_pruned(self, peer: bytes, start: int, earliest: int) -> None:
        waiting = self._block_waiters.get(start)
        if waiting is not None and waiting[0] == peer and not waiting[1].done():
            waiting[1].set_result(_Pruned(earliest))

    # ---- the run ------------------------------------------------------------------------
    async def run(self, timeout_s: float) -> VerifiedHeight:
        """Discover, verify, fetch and restore; returns the restored height's record."""
        deadline = time.monotonic() + timeout_s
        tried: list[str] = []
        while time.monotonic() < deadline:
            cand = await self._next_candidate(deadline)
            if cand is None:
                continue
            try:
                verified = await self._verify(cand, deadline)
                if not self.app.offer_snapshot(cand.snap, verified.app_hash):
                    raise ProtocolError("the application refused the snapshot")
                state = await self._fetch_and_apply(cand, deadline)
                # Chunk hashes only prove the chunks are the snapshot's; an app that commits
                # to its state (the kvstore's state tree) proves the entries are the state the
                # certified app hash stands for.
                got = self.app.snapshot_state_hash(state)
                if got is not None and got != verified.app_hash:
                    raise ProtocolError(f"the restored state hashes to {got.hex()}, not the "
                                        f"certified app hash {verified.app_hash.hex()}")
            except ProtocolError as e:
                tried.append(f"{cand.snap.height}/{cand.snap.hash.hex()[:12]}: {e}")
                log.warning("state sync: snapshot at height %d refused: %s", cand.snap.height, e)
                self.counters.add("state_sync_snapshot_refused")
                self._refuse(cand, str(e))
                continue
            except _NoPeer as e:  # not proven bad, but not servable: offers keep coming
                tried.append(f"{cand.snap.height}/{cand.snap.hash.hex()[:12]}: {e}")
                log.warning("state sync: snapshot at height %d abandoned: %s",
                            cand.snap.height, e)
                self.counters.add("state_sync_snapshot_abandoned")
                self._refuse(cand, str(e))
                continue
            self._restore(verified, state)
            return verified
        raise StateSyncFailed("no snapshot restored within the time allowed"
                              + (f"; tried {'; '.join(tried)}" if tried else
                                 " (no usable snapshot was offered)"))

    def _refuse(self, cand: _Candidate, why: str) -> None:
        self._refused.add(cand.snap.hash)
        self._candidates.pop(cand.snap.hash, None)

    async def _next_candidate(self, deadline: float) -> _Candidate | None:
        """The best offered snapshot, asking peers again now and then."""
        for peer in self.connected():
            asked = self._asked.get(peer)
            if asked is None or time.monotonic() - asked > 1.0:
                self._ask_snapshots(peer)
        usable = [c for c in self._candidates.values()
                  if c.peers and c.snap.height >= self.trust_height]
        if usable:
            return max(usable, key=lambda c: (c.snap.height, len(c.peers)))
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), min(1.0, max(0.01, deadline -
                                                                   time.monotonic())))
        except asyncio.TimeoutError:
            pass
        return None

    async def _block(self, height: int, peers: list[bytes],
                     deadline: float) -> tuple[bytes, bytes]:
        """Block ``height`` with a certificate that verifies, from the first peer that serves
        one (a peer serving a bad one is penalised and the next one asked)."""
        pruned: list[int] = []
        for peer in peers:
            fut = asyncio.get_running_loop().create_future()
            self._block_waiters[height] = (peer, fut)
            self.send(peer, codec.encode(codec.GET_BLOCKS, height, 1))
            try:
                got = await asyncio.wait_for(fut, self._timeout(deadline))
            except asyncio.TimeoutError:
                continue
            finally:
                self._block_waiters.pop(height, None)
            if isinstance(got, _Pruned):
                pruned.append(got.earliest)
                continue
            raw, cert = got
            try:
                _certified(self.chain_id, self.validators, self.verify_batch, height, raw, cert,
                           self.suite)
            except ProtocolError as e:
                log.warning("state sync: block %d from %s refused: %s", height,
                            peer.hex()[:12], e)
                self.counters.add("state_sync_bad_block")
                self.penalize(peer, "state_sync_bad_block")
                continue
            return raw, cert
        if height == self.trust_height and pruned and len(pruned) == len(peers):
            raise StateSyncFailed(f"state_sync_trust_height {height} is pruned on every peer "
                                  f"(the earliest they hold: {min(pruned)}): trust a more "
                                  f"recent block")
        raise _NoPeer(f"no peer served block {height} with a valid certificate"
                      + (f" ({len(pruned)} have pruned it)" if pruned else ""))

    def _timeout(self, deadline: float) -> float:
        return max(0.01, min(limits.state_sync_request_timeout_ms / 1000,
                             deadline - time.monotonic()))

    async def _verify(self, cand: _Candidate, deadline: float) -> VerifiedHeight:
        snap = cand.snap
        blocks: dict[int, tuple[bytes, bytes]] = {}
        peers = sorted(cand.peers)
        others = [p for p in self.connected() if p not in cand.peers]
        for height in sorted({self.trust_height, snap.height, snap.height + 1}):
            blocks[height] = await self._block(height, peers + others, deadline)
        trusted = hash_of_block(blocks[self.trust_height][0], self.suite)
        if trusted != self.trust_hash:  # certified by the validators: the config is wrong
            raise StateSyncFailed(f"the validators certified block {self.trust_height} "
                                  f"{trusted.hex()}, not state_sync_trust_hash "
                                  f"{self.trust_hash.hex()}")
        try:
            return verify_snapshot_header(
                chain_id=self.chain_id, validators=self.validators,
                verify_batch=self.verify_batch, suite=self.suite, trust_height=self.trust_height,
                trust_hash=self.trust_hash, snapshot=snap, blocks=blocks)
        except ProtocolError:
            # Every block here verified: the snapshot itself lies (its app hash).
            for peer in list(cand.peers):  # penalising may disconnect (and discard) it
                self.penalize(peer, "state_sync_bad_snapshot")
            raise

    async def _fetch_and_apply(self, cand: _Candidate,
                               deadline: float) -> list[tuple[bytes, bytes]]:
        snap = cand.snap
        chunks: dict[int, bytes] = {}
        todo = list(range(snap.chunks))
        in_flight: dict[int, asyncio.Task] = {}
        turn = 0
        while todo or in_flight:
            while todo and len(in_flight) < limits.state_sync_chunks_in_flight_max:
                peers = sorted(cand.peers)
                if not peers:
                    raise _NoPeer("every peer offering the snapshot failed or left")
                index = todo.pop(0)
                in_flight[index] = asyncio.ensure_future(
                    self._chunk(snap.hash, index, peers[turn % len(peers)], deadline))
                turn += 1
            done, _ = await asyncio.wait(in_flight.values(),
                                         return_when=asyncio.FIRST_COMPLETED)
            for index, task in list(in_flight.items()):
                if task in done:
                    del in_flight[index]
                    chunk = task.result()
                    if chunk is None:
                        todo.append(index)  # refetch, from the next peer in turn
                        self.counters.add("state_sync_chunk_refetched")
                    else:
                        chunks[index] = chunk
            if time.monotonic() > deadline:
                for task in in_flight.values():
                    task.cancel()
                raise _NoPeer("time ran out fetching chunks")
        return self._apply(snap, chunks)

    async def _chunk(self, snapshot_hash: bytes, index: int, peer: bytes,
                     deadline: float) -> bytes | None:
        fut = asyncio.get_running_loop().create_future()
        self._chunk_waiters[(snapshot_hash, index)] = (peer, fut)
        self.send(peer, codec.encode(codec.GET_CHUNK, snapshot_hash, index))
        try:
            return await asyncio.wait_for(fut, self._timeout(deadline))
        except asyncio.TimeoutError:
            cand = self._candidates.get(snapshot_hash)
            if cand is not None:
                cand.peers.discard(peer)
            return None
        finally:
            self._chunk_waiters.pop((snapshot_hash, index), None)

    def _apply(self, snap: Snapshot, chunks: dict[int, bytes]) -> list[tuple[bytes, bytes]]:
        """Every chunk through the application, in order; the entries must ascend across
        chunks too (each key once)."""
        state: list[tuple[bytes, bytes]] = []
        total = 0
        for index in range(snap.chunks):
            try:
                entries = self.app.apply_snapshot_chunk(index, chunks[index])
            except ValueError as e:
                raise ProtocolError(f"chunk {index}: {e}") from None
            if entries and state and entries[0][0] <= state[-1][0]:
                raise ProtocolError(f"chunk {index} does not continue the key order")
            total += sum(len(k) + len(v) for k, v in entries)
            if total > limits.snapshot_bytes_max:
                raise ProtocolError(f"snapshot state exceeds {limits.snapshot_bytes_max} bytes")
            state.extend(entries)
        return state

    def _restore(self, verified: VerifiedHeight, state: list[tuple[bytes, bytes]]) -> None:
        block = verified.block
        self.store.restore_from_snapshot(
            verified.height, verified.block_hash, block.head(self.suite), list(block.txs),
            verified.certificate, parent_hash=block.parent_hash, app_hash=verified.app_hash,
            state=state)
        self.counters.add("state_sync_restored")
        log.info("state sync: restored height %d (%d state entries)", verified.height,
                 len(state))


@dataclass(frozen=True)
class _Pruned:
    earliest: int


class _NoPeer(Exception):
    """Nobody could serve what a candidate needs (not the snapshot's fault)."""
