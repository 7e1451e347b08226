"""Catch-up: peers exchange ``STATUS`` (their last committed height) on connect, after each
commit and every ``STATUS_INTERVAL_MS``. A node that sees a peer ahead asks it for blocks with
their certificates (``GET_BLOCKS``) and feeds each as ``CommitReceived``; its certificate is
verified with one batch call before it may enter the WAL, and the core decides on it.

Catch-up is windowed: up to ``limits.sync_requests_in_flight_max`` requests are out at once,
each for its own range of ``limits.sync_blocks_per_request`` heights and each to the least
busy peer that claims those heights, so several peers serve at once. Each block's certificate is
verified on arrival (one batch call), the block waits in a bounded buffer, and blocks enter the
core strictly in height order.

A block above the validator-set horizon (more than two heights past the tip: the set that signs
it is not decided yet, engine/node/valset.py) cannot be verified on arrival. It is held, its
certificate unread, in the same window, and verified the moment the core reaches its height,
before it may enter the WAL; one that fails then is dropped, its sender penalised and no longer
asked for those heights, and the height asked again of another peer. (Dropping such blocks
instead would waste all but two blocks of every reply, and have the whole window asked again
after each one.)

A peer asked for heights it has pruned answers ``PRUNED`` with the earliest height it holds; it
is not asked for those again, and when no peer holds the next height the node says it should
join by state sync.

A peer's claimed height is a claim: it decides whom we ask for blocks, but it changes what the
node reports (``catching_up``) only while the peer backs it, i.e. once it has served a block
whose certificate verified, and until a request to it goes unanswered for
``SYNC_REQUEST_TIMEOUT_MS``. A peer that claims height 2^63-1 and serves nothing costs one
small request every few seconds, and the node keeps reporting that it is up to date.
"""
from __future__ import annotations

import logging
import time

from engine import consensus as cs
from engine import limits
from engine.block import Block, with_txs
from engine.errors import ProtocolError
from engine.net import codec
from engine.node.driver import ConsensusDriver
from engine.node.ports import Counters
from engine.node.signatures import VerifiedSignatures
from engine.node.tip import ChainTip
from engine.node.wire import PeerWire
from engine.store import Store

log = logging.getLogger("engine.node.blocksync")

__all__ = ["SYNC_REQUEST_TIMEOUT_MS", "BlockSync"]

#: A block request unanswered for this long may be sent again.
SYNC_REQUEST_TIMEOUT_MS = 3000


class BlockSync:
    def __init__(self, *, chain_id: bytes, validators: cs.ValidatorSet, tip: ChainTip,
                 store: Store, wire: PeerWire, signatures: VerifiedSignatures,
                 counters: Counters):
        self.chain_id = chain_id
        self.validators = validators
        self.tip = tip
        self.store = store
        self.wire = wire
        self.signatures = signatures
        self.counters = counters
        self.driver: ConsensusDriver | None = None
        self._peer_heights: dict[bytes, int] = {}  # claims, from STATUS
        self._peer_bases: dict[bytes, int] = {}  # earliest heights, from PRUNED
        self._backed: set[bytes] = set()  # peers whose claim a verified block backs
        #: Requests out: first height -> (peer, sent at, count).
        self._inflight: dict[int, tuple[bytes, float, int]] = {}
        #: Verified blocks above the next height: height -> (block bytes, certificate, peer).
        self._buffer: dict[int, tuple[bytes, cs.CommitCertificate, bytes]] = {}
        #: Blocks above the set horizon, not verifiable yet: height -> (block, certificate
        #: bytes, peer); verified when the core reaches them.
        self._held: dict[int, tuple[bytes, bytes, bytes]] = {}
        self._pruned_warned = 0

    def bind(self, driver: ConsensusDriver) -> None:
        self.driver = driver

    def status_message(self) -> bytes:
        tip = self.tip
        return codec.encode(codec.STATUS, tip.height, tip.block_hash if tip.height else b"")

    def catching_up(self) -> bool:
        """True while a peer that has served verified blocks claims to be ahead of us."""
        tip = self.tip.height
        return any(self._peer_heights.get(p, 0) > tip for p in self._backed)

    def on_disconnect(self, peer: bytes) -> None:
        self._peer_heights.pop(peer, None)
        self._peer_bases.pop(peer, None)
        self._backed.discard(peer)
        for start in [s for s, (p, _, _) in self._inflight.items() if p == peer]:
            del self._inflight[start]

    def on_status(self, peer: bytes, height: int, block_hash: bytes) -> None:
        self._peer_heights[peer] = height
        self._schedule()

    def _next_height(self) -> int:
        return self.tip.height + 1

    def _expire(self, now: float) -> None:
        """Requests unanswered too long: their peer no longer backs its claim."""
        for start, (peer, sent, _) in list(self._inflight.items()):
            if now - sent >= SYNC_REQUEST_TIMEOUT_MS / 1000:
                del self._inflight[start]
                if peer in self._backed:  # it could not serve what it claims
                    self._backed.discard(peer)
                    self.counters.add("sync_claim_unbacked")
                self._peer_heights[peer] = min(self._peer_heights.get(peer, 0), start - 1)

    def _schedule(self) -> None:
        """Fill the window: ranges from the next height on, each to the least busy peer that
        claims it and has not pruned it."""
        now = time.monotonic()
        self._expire(now)
        per = limits.sync_blocks_per_request
        nxt = self._next_height()
        for h in [h for h in self._buffer if h < nxt]:
            del self._buffer[h]
        for h in [h for h in self._held if h < nxt]:
            del self._held[h]
        for h, (_, _, count) in list(self._inflight.items()):
            if h + count <= nxt:  # everything it asked for is applied already
                del self._inflight[h]
        top = max(self._peer_heights.values(), default=0)
        window_end = nxt + min(limits.sync_requests_in_flight_max * per,
                               limits.sync_blocks_buffered_max)
        h = nxt
        while h <= top and h < window_end and \
                len(self._inflight) < limits.sync_requests_in_flight_max:
            covered = self._covered_until(h)
            if covered is not None:
                h = covered
                continue
            if h in self._buffer or h in self._held:
                h += 1
                continue
            peer = self._pick(h)
            if peer is None:
                self._warn_pruned(h)  # or every peer holding it is busy: later
                break
            count = min(per, top - h + 1)
            later = [s for s in self._inflight if s > h]
            if later:  # never ask twice for the same heights
                count = min(count, min(later) - h)
            self._inflight[h] = (peer, now, count)
            self.wire.send(peer, codec.encode(codec.GET_BLOCKS, h, count))
            h += count

    def _covered_until(self, height: int) -> int | None:
        """The end of the in-flight request covering ``height``, or None."""
        for start, (_, _, count) in self._inflight.items():
            if start <= height < start + count:
                return start + count
        return None

    def _pick(self, start: int) -> bytes | None:
        busy: dict[bytes, int] = {}
        for peer, _, _ in self._inflight.values():
            busy[peer] = busy.get(peer, 0) + 1
        able = [p for p, h in self._peer_heights.items()
                if h >= start and self._peer_bases.get(p, 0) <= start
                and busy.get(p, 0) < limits.sync_requests_per_peer_max]
        if not able:
            return None
        return min(able, key=lambda p: (busy.get(p, 0), p not in self._backed, p))

    def _warn_pruned(self, height: int) -> None:
        claimed = [p for p, h in self._peer_heights.items() if h >= height]
        if claimed and all(self._peer_bases.get(p, 0) > height for p in claimed) and \
                self._pruned_warned != height:
            self._pruned_warned = height
            self.counters.add("sync_all_peers_pruned")
            earliest = min(self._peer_bases[p] for p in claimed)
            log.warning("every peer ahead has pruned height %d (earliest held: %d): this node "
                        "cannot catch up by block sync; join by state sync (state_sync = true)",
                        height, earliest)

    def on_get_blocks(self, peer: bytes, start: int, count: int) -> None:
        items: list[list] = []
        total = 0
        base = self.store.base_height()
        if start < base:
            self.counters.add("sync_pruned_asked")
            self.wire.send(peer, codec.encode(codec.PRUNED, start, base))
            return
        stop = min(start + count, self.tip.height + 1)  # nothing above our tip is stored
        if start >= stop:
            return
        for stored in self.store.blocks(start, stop):
            raw = with_txs(Block.decode(stored.header, header_only=True),
                           stored.txs).encode(self.store.suite)
            if items and total + len(raw) > limits.sync_reply_bytes_max:
                break
            items.append([stored.height, raw, stored.certificate])
            total += len(raw)
        if items:
            self.wire.send(peer, codec.encode(codec.BLOCKS, items))

    def on_pruned(self, peer: bytes, start: int, earliest: int) -> None:
        """``peer`` no longer holds heights below ``earliest``."""
        self._peer_bases[peer] = earliest
        self.counters.add("sync_peer_pruned")
        if start in self._inflight and self._inflight[start][0] == peer:
            del self._inflight[start]
        self._schedule()

    def _is_certified(self, height: int, raw: bytes, cert: cs.CommitCertificate,
                      peer: bytes) -> bool:
        """``raw`` is the block its (verified) certificate signs: its id is the certificate's
        block hash. A peer can pair a real certificate with another block (any header field
        changed, the app hash say): that block is its sender's fault, penalised like a failed
        certificate and the height asked again, and nothing in it is believed; above all not
        its app hash, which would otherwise halt the node as a divergence of the network."""
        assert self.driver is not None
        try:
            if self.driver.core.hash_block(raw) == cert.block_hash:
                return True
            why = "is not the block its certificate signs"
        except ProtocolError as e:
            why = f"does not decode: {e}"
        log.debug("block %d from %s refused: it %s", height, peer.hex()[:12], why)
        self.counters.add("sync_block_refused")
        self._backed.discard(peer)
        self._peer_heights[peer] = min(self._peer_heights.get(peer, 0), height - 1)
        self.wire.penalize(peer, "invalid_blocks")
        return False

    def _app_hash_diverged(self, height: int, raw: bytes) -> bool:
        """A certified block (:meth:`_is_certified`) that follows our tip but carries another
        app hash: more than 2/3 of the power computed another state after ``height - 1``.
        Waiting could never help (every later block builds on theirs): halt, saying so."""
        header = Block.decode(raw)
        tip = self.tip
        if header.parent_hash != tip.block_hash or header.app_hash == tip.app_hash:
            return False
        assert self.driver is not None
        self.driver.halt(f"app hash mismatch at height {height - 1}: ours {tip.app_hash.hex()}, "
                         f"network {header.app_hash.hex()}")
        return True

    def on_blocks(self, peer: bytes, items: list) -> None:
        driver = self.driver
        assert driver is not None
        for start, (p, _, count) in list(self._inflight.items()):
            if p == peer and any(start <= h < start + count for h, _, _ in items):
                del self._inflight[start]
        nxt = driver.core.height
        window_end = nxt + limits.sync_blocks_buffered_max
        for height, raw, cert_raw in sorted(items):
            if not nxt <= height < window_end or height in self._buffer or \
                    height in self._held:
                continue
            # The set that signs this height (the core's: it follows the set history); a block
            # further ahead than the history knows is held until the core reaches it.
            vset = driver.core.validators_for(height)
            if vset is None:
                self._held[height] = (raw, cert_raw, peer)
                continue
            self._buffer[height] = (raw, self._verified(height, cert_raw, vset), peer)
        self._apply_in_order()
        self._schedule()

    def _verified(self, height: int, cert_raw: bytes,
                  vset: cs.ValidatorSet) -> cs.CommitCertificate:
        """The certificate of ``height``, verified by one batch call (ProtocolError if not)."""
        cert = cs.CommitCertificate.decode(cert_raw, len(vset))
        if cert.height != height:
            raise ProtocolError("certificate height differs from the block's")
        cert.verify(self.chain_id, vset, self.signatures.verify_batch)
        return cert

    def _verify_held(self, height: int) -> bool:
        """Verify the held block of ``height`` (the core's height now, so its set is known)
        into the buffer. A certificate that fails drops every block its sender left held, and
        that sender is penalised and not asked for those heights again; False then."""
        assert self.driver is not None
        raw, cert_raw, peer = self._held.pop(height)
        vset = self.driver.core.validators_for(height)
        assert vset is not None  # the core's own height
        try:
            self._buffer[height] = (raw, self._verified(height, cert_raw, vset), peer)
            return True
        except ProtocolError as e:
            log.debug("held block %d from %s refused: %s", height, peer.hex()[:12], e)
            self.counters.add("sync_held_block_refused")
            for h in [h for h, v in self._held.items() if v[2] == peer]:
                del self._held[h]
            self._backed.discard(peer)
            self._peer_heights[peer] = min(self._peer_heights.get(peer, 0), height - 1)
            self.wire.penalize(peer, "invalid_blocks")
            return False

    def _apply_in_order(self) -> None:
        driver = self.driver
        assert driver is not None
        while driver.running:
            height = driver.core.height
            if height in self._held and not self._verify_held(height):
                return
            if height not in self._buffer:
                return
            raw, cert, peer = self._buffer.pop(height)
            if not self._is_certified(height, raw, cert, peer):
                return
            if self._app_hash_diverged(height, raw):
                return
            driver.input(cs.CommitReceived(raw, cert), height)
            self._backed.add(peer)
            self.counters.add("blocks_synced")
            if driver.core.height == height:  # the core did not take it: ask again later
                return
