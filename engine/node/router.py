"""Peer routing: each decoded wire message goes to the part that handles it, and locally
admitted transactions go out to the peers.

Proposals and votes reach the driver only once they are known to be signed by a validator and
to be for a height the core keeps: otherwise a peer could grow our WAL with junk the core would
refuse anyway. A proposal whose transactions this node has not verified yet (their gossip is
still in admission) is verified on a worker thread first, so the event loop keeps serving votes
and RPC meanwhile. A message that breaks the protocol raises ``ProtocolError``: it is dropped
and the peer penalised.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from engine import consensus as cs
from engine.errors import ProtocolError
from engine.mempool import Mempool
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.blocksync import BlockSync
from engine.node.compact import CompactBlocks, Pending
from engine.node.driver import ConsensusDriver
from engine.node.evidence import EvidencePool
from engine.node.ports import Counters
from engine.node.signatures import VerifiedSignatures
from engine.node.snapshots import SnapshotManager
from engine.node.stagecpu import no_stage
from engine.node.validity import BlockValidator
from engine.node.wire import PeerWire

log = logging.getLogger("engine.node.router")

__all__ = ["PeerRouter", "TxGossip"]


class PeerRouter:
    def __init__(self, *, chain_id: bytes, validators: cs.ValidatorSet, driver: ConsensusDriver,
                 mempool: Mempool, validator: BlockValidator, evidence: EvidencePool,
                 sync: BlockSync, signatures: VerifiedSignatures, wire: PeerWire,
                 spawn: Callable[[Coroutine[Any, Any, None]], Any],
                 counters: Counters | None = None,
                 snapshots: SnapshotManager | None = None):
        self.chain_id = chain_id
        self.validators = validators
        self.driver = driver
        self.mempool = mempool
        self.validator = validator
        self.evidence = evidence
        self.sync = sync
        self.signatures = signatures
        self.wire = wire
        self.spawn = spawn
        self.counters = counters if counters is not None else Counters()
        #: Thread CPU by stage (engine/node/stagecpu.py): completing compact proposals.
        self.stage_cpu: Callable[[str, float], None] = no_stage
        self.compact = CompactBlocks(mempool.envelopes, validator.suite)
        self._handlers: dict[int, Callable[..., None]] = {
            codec.STATUS: sync.on_status, codec.PROPOSAL: self._on_proposal,
            codec.VOTES: self._on_votes, codec.EVIDENCE: self._on_evidence,
            codec.TXS: self._on_txs, codec.GET_BLOCKS: sync.on_get_blocks,
            codec.BLOCKS: sync.on_blocks, codec.PRUNED: sync.on_pruned,
            codec.GET_SNAPSHOTS: _ignore, codec.GET_CHUNK: _ignore,
            codec.SNAPSHOTS: _ignore, codec.CHUNK: _ignore,
            codec.COMPACT_PROPOSAL: self._on_compact_proposal,
            codec.GET_PROPOSAL_TXS: self._on_get_proposal_txs,
            codec.PROPOSAL_TXS: self._on_proposal_txs}
        if snapshots is not None:
            self._handlers[codec.GET_SNAPSHOTS] = snapshots.on_get_snapshots
            self._handlers[codec.GET_CHUNK] = snapshots.on_get_chunk

    # ---- peer set callbacks -------------------------------------------------------------------
    def on_message(self, peer: bytes, msg: codec.Message) -> None:
        """A message that breaks the protocol is dropped and the peer penalised."""
        if not self.driver.running:
            return
        try:
            self._handlers[msg.kind](peer, *msg.fields)
        except ProtocolError as e:
            log.debug("dropped %s from %s: %s", msg.name, peer.hex()[:12], e)
            self.wire.penalize(peer, f"invalid_{msg.name}")

    def on_connect(self, peer: bytes) -> None:
        self.wire.send(peer, self.sync.status_message())
        self.driver.resend_own(to=peer)

    def on_disconnect(self, peer: bytes) -> None:
        self.sync.on_disconnect(peer)

    # ---- consensus messages -------------------------------------------------------------------
    def _signed_proposal(self, proposal: bytes) -> cs.Proposal | None:
        """The decoded proposal if it is for a height the core keeps and signed by the proposer
        index it names (ProtocolError if not signed), None when its height is not kept."""
        p = cs.Proposal.decode(proposal)
        if not self.driver.height_kept(p.height):
            return None
        vset = self._set_of(p.height)
        if vset is None:
            return None
        if not 0 <= p.proposer_index < len(vset) or not self.signatures.verify_batch(
                [vset.public_key(p.proposer_index)], [p.sign_bytes(self.chain_id)],
                [p.signature])[0]:
            self.driver.counters.add("dropped:not_a_validator")
            raise ProtocolError("proposal is not signed by a validator")
        return p

    def _on_proposal(self, peer: bytes, proposal: bytes, block: bytes) -> None:
        p = self._signed_proposal(proposal)
        if p is not None:
            self._accept_proposal(p, block)

    def _on_compact_proposal(self, peer: bytes, proposal: bytes, head: bytes,
                             ids: list[bytes]) -> None:
        p = self._signed_proposal(proposal)
        if p is None:
            return
        t0 = time.thread_time()
        try:
            self.compact.forget_below(self.driver.core.height)
            pending = self.compact.open(p, head, ids, peer)
        finally:
            self.stage_cpu("proposal", time.thread_time() - t0)
        if pending.missing:
            self.counters.add("compact_txs_fetched", len(pending.missing))
            self.wire.send(peer, codec.encode(codec.GET_PROPOSAL_TXS, p.height, p.block_hash,
                                              sorted(pending.missing)))
            return
        self._accept_complete(pending)

    def _accept_complete(self, pending: Pending) -> None:
        if self.driver.height_kept(pending.proposal.height):
            t0 = time.thread_time()
            raw = pending.block()
            # Its id and transaction ids are known (the head hashed to the signed id, the ids
            # to the header's tx root, each envelope to its id): the validator need not parse
            # and hash the whole block again.
            self.validator.remember_block(raw, pending.proposal.block_hash, pending.decoded(),
                                          pending.ids)
            self.stage_cpu("proposal", time.thread_time() - t0)
            self._accept_proposal(pending.proposal, raw)

    def _on_get_proposal_txs(self, peer: bytes, height: int, block_hash: bytes,
                             indices: list[int]) -> None:
        """A peer lacks transactions of a proposal we hold in full (ours, or one we completed):
        answer with them; a block we do not hold is no fault of the asker."""
        raw = self.driver.core.blocks.get(block_hash) if self.driver.core.height == height \
            else None
        if raw is None:
            return
        block, _ = self.validator.decoded(block_hash, raw)
        if any(i >= len(block.txs) for i in indices):
            raise ProtocolError("get_proposal_txs asks for an index past the block's end")
        self.wire.send(peer, codec.encode(codec.PROPOSAL_TXS, height, block_hash, indices,
                                          [block.txs[i] for i in indices]))

    def _on_proposal_txs(self, peer: bytes, height: int, block_hash: bytes,
                         indices: list[int], envelopes: list[bytes]) -> None:
        done = self.compact.receive(block_hash, indices, envelopes)
        if done is not None:
            self.counters.add("compact_blocks_completed")
            self._accept_complete(done)

    def _accept_proposal(self, p: cs.Proposal, block: bytes) -> None:
        todo = self._unverified_txs(block)
        if todo is None:
            self.driver.input(cs.ProposalReceived(p, block), p.height)
        else:
            self.spawn(self._verify_then_input(p, block, *todo))

    def _unverified_txs(self, raw: bytes) -> tuple[list[bytes], list[bytes]] | None:
        """(envelopes, ids) of a proposed block's transactions this node has not verified yet,
        or None when there are none (or the block does not decode: the core judges it)."""
        try:
            block, ids = self.validator.decoded(self.validator.block_hash(raw), raw)
        except (ProtocolError, ValueError):
            return None
        todo = self.mempool.unverified(ids)
        if not todo:
            return None
        return [block.txs[i] for i in todo], [ids[i] for i in todo]

    async def _verify_then_input(self, p: cs.Proposal, block: bytes, envelopes: list[bytes],
                                 tx_ids: list[bytes]) -> None:
        await self.mempool.verify_ahead(envelopes, tx_ids)
        if self.driver.running and self.driver.height_kept(p.height):
            self.driver.input(cs.ProposalReceived(p, block), p.height)

    def _on_votes(self, peer: bytes, raw_votes: list[bytes]) -> None:
        votes = [cs.Vote.decode(v) for v in raw_votes]
        live = [v for v in votes if self.driver.height_kept(v.height)]
        sets = {h: self._set_of(h) for h in {v.height for v in live}}
        live = [v for v in live if sets[v.height] is not None]
        known = [v for v in live if 0 <= v.validator_index < len(sets[v.height])]  # type: ignore[arg-type]
        verdicts = self.signatures.verify_batch(
            [sets[v.height].public_key(v.validator_index) for v in known],  # type: ignore[union-attr]
            [v.sign_bytes(self.chain_id) for v in known],
            [v.signature for v in known]) if known else []
        bad = len(live) - len(known) + verdicts.count(False)
        if bad:
            # Not signed by the validator that holds that index at that height (a removed
            # validator that keeps sending ends up here): dropped, counted, peer penalised.
            self.driver.counters.add("dropped:not_a_validator", bad)
        for v, ok in zip(known, verdicts):
            if not ok or not self.driver.height_kept(v.height):
                continue
            try:
                self.driver.input(cs.VoteReceived(v), v.height)
            except ProtocolError:
                bad += 1
        if bad:
            raise ProtocolError(f"{bad} invalid votes in a batch")

    def _set_of(self, height: int) -> cs.ValidatorSet | None:
        """The set that signs ``height``; None (counted) when not known yet."""
        vset = self.driver.core.validators_for(height)
        if vset is None:
            self.driver.counters.add("dropped:set_unknown")
        return vset

    def _on_evidence(self, peer: bytes, items: list[bytes]) -> None:
        self.evidence.on_message(items)

    def _on_txs(self, peer: bytes, envelopes: list[bytes]) -> None:
        self.mempool.submit(envelopes, local=False)


def _ignore(peer: bytes, *fields: Any) -> None:
    """Answers to requests this node did not make (state sync runs before the router)."""


class TxGossip:
    """Locally submitted transactions go to every peer, in batches (the mesh is full, so peers
    do not relay what they receive)."""

    def __init__(self, wire: PeerWire, limits: NetLimits):
        self.wire = wire
        self.limits = limits

    def __call__(self, envelopes: list[bytes]) -> None:
        count_max = self.limits.txs_per_message_max
        bytes_max = self.limits.frame_bytes_max // 2  # room for msgpack framing
        if len(envelopes) <= count_max and \
                sum(map(len, envelopes)) + 5 * len(envelopes) <= bytes_max:
            if envelopes:  # one message, as the loop below would send
                self.wire.broadcast(codec.encode(codec.TXS, envelopes))
            return
        batch: list[bytes] = []
        size = 0
        for env in envelopes:
            if batch and (len(batch) >= count_max or size + len(env) > bytes_max):
                self.wire.broadcast(codec.encode(codec.TXS, batch))
                batch, size = [], 0
            batch.append(env)
            size += len(env) + 5
        if batch:
            self.wire.broadcast(codec.encode(codec.TXS, batch))
