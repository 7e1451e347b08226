"""Catch-up: peers exchange ``STATUS`` (their last committed height) on connect, after each
commit and every ``STATUS_INTERVAL_MS``. A node that sees a peer ahead asks it for blocks with
their certificates (``GET_BLOCKS``) and feeds each as ``CommitReceived``; its certificate is
verified with one batch call before it may enter the WAL, and the core decides on it.

A peer's claimed height is a claim: it decides whom we ask for blocks, but it changes what the
node reports (``catching_up``) only while the peer backs it, i.e. once it has served a block
whose certificate verified, and until a request to it goes unanswered for
``SYNC_REQUEST_TIMEOUT_MS``. A peer that claims height 2^63-1 and serves nothing costs one
small request every few seconds, and the node keeps reporting that it is up to date.
"""
from __future__ import annotations

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
        self._backed: set[bytes] = set()  # peers whose claim a verified block backs
        self._requested: dict[bytes, float] = {}

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
        self._requested.pop(peer, None)
        self._backed.discard(peer)

    def on_status(self, peer: bytes, height: int, block_hash: bytes) -> None:
        self._peer_heights[peer] = height
        self._maybe_sync(peer)

    def _maybe_sync(self, peer: bytes) -> None:
        if self._peer_heights.get(peer, 0) <= self.tip.height:
            return
        sent = self._requested.get(peer)
        now = time.monotonic()
        if sent is not None and now - sent < SYNC_REQUEST_TIMEOUT_MS / 1000:
            return
        if sent is not None and peer in self._backed:  # it could not serve what it claims
            self._backed.discard(peer)
            self.counters.add("sync_claim_unbacked")
        self._requested[peer] = now
        self.wire.send(peer, codec.encode(codec.GET_BLOCKS, self.tip.height + 1,
                                          limits.sync_blocks_per_request))

    def on_get_blocks(self, peer: bytes, start: int, count: int) -> None:
        items: list[list] = []
        total = 0
        stop = min(start + count, self.tip.height + 1)  # nothing above our tip is stored
        if start >= stop:
            return
        for stored in self.store.blocks(start, stop):
            raw = with_txs(Block.decode(stored.header, header_only=True), stored.txs).encode()
            if items and total + len(raw) > limits.sync_reply_bytes_max:
                break
            items.append([stored.height, raw, stored.certificate])
            total += len(raw)
        if items:
            self.wire.send(peer, codec.encode(codec.BLOCKS, items))

    def _app_hash_diverged(self, height: int, raw: bytes) -> bool:
        """A certified block that follows our tip but carries another app hash: more than 2/3
        of the power computed another state after ``height - 1``. Waiting could never help
        (every later block builds on theirs): halt, saying so."""
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
        self._requested.pop(peer, None)
        for height, raw, cert_raw in sorted(items):
            if height != driver.core.height:
                continue
            # The set that signs this height (the core's: it follows the set history).
            vset = driver.core.validators
            cert = cs.CommitCertificate.decode(cert_raw, len(vset))
            if cert.height != height:
                raise ProtocolError("certificate height differs from the block's")
            # One batch verification of the certificate before it may enter the WAL.
            cert.verify(self.chain_id, vset, self.signatures.verify_batch)
            if self._app_hash_diverged(height, raw):
                return
            driver.input(cs.CommitReceived(raw, cert), height)
            self._backed.add(peer)
            self.counters.add("blocks_synced")
        self._maybe_sync(peer)
