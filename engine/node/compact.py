"""Compact proposals: a proposal travels as its block's head (header, last commit, evidence)
plus the transaction ids, and each validator rebuilds the block from its own mempool.

Transactions already reach every validator once through gossip (``TXS``); sending them again
inside every proposal made each one cross every link twice and be decoded twice. Now the
proposer sends 32 bytes per transaction, a receiver fills the block from its pool, and asks the
peer that sent the proposal for only the ones it lacks (``GET_PROPOSAL_TXS`` by index, one round
trip; ``PROPOSAL_TXS`` answers). Nothing is trusted on the way: the head's header must hash to
the block id the proposal signs, the ids must have the header's ``tx_root`` (so a relayer cannot
swap them), and every fetched envelope must hash to the id at its index. A block that cannot be
completed (a proposer that withholds transactions) never reaches the core: the height times
out and goes to the next round as for a proposal that never arrived.

:class:`CompactBlocks` holds the blocks being completed, a bounded number
(``limits.compact_blocks_pending_max``), dropped once their height is behind the core.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine import consensus as cs
from engine import limits
from engine._txcodec import join_chunks
from engine.block import Block, header_size, tx_root_of, with_txs
from engine.errors import ProtocolError
from engine.suite import DEFAULT, Suite

__all__ = ["CompactBlocks", "Pending", "assemble", "split_block"]



def split_block(raw: bytes, suite: Suite = DEFAULT) -> tuple[bytes, list[bytes], list[bytes]]:
    """(head, transactions, their ids in the chain's suite) of an encoded block (ours: trusted,
    but decoded)."""
    block = Block.decode(raw)
    txs = list(block.txs)
    tail = 4 * len(txs) + sum(map(len, txs))
    return raw[:len(raw) - tail], txs, suite.hash_many(txs) if txs else []


def assemble(head: bytes, txs: Sequence[bytes]) -> bytes:
    """The encoded block from its head and its transactions, in order (one native pass)."""
    return join_chunks(head, list(txs))


@dataclass
class Pending:
    """A compact proposal whose block is being completed."""

    proposal: cs.Proposal
    head: bytes
    #: The head decoded (header, last commit, evidence; no transactions).
    head_block: Block
    ids: list[bytes]
    txs: list[bytes | None]
    source: bytes
    missing: set[int] = field(default_factory=set)

    def fill(self, index: int, envelope: bytes) -> None:
        self.txs[index] = envelope
        self.missing.discard(index)

    def block(self) -> bytes:
        assert not self.missing
        return assemble(self.head, [t for t in self.txs if t is not None])

    def decoded(self) -> Block:
        """The complete block as ``Block.decode(self.block())`` gives it, from the head
        decoded on arrival and the transactions (no second parse of the whole block)."""
        assert not self.missing
        return with_txs(self.head_block, [t for t in self.txs if t is not None])


class CompactBlocks:
    """The receiving side: check a compact proposal, fill it from the pool, track what is
    missing, and take fetched envelopes."""

    def __init__(self, lookup: Callable[[list[bytes]], list[bytes | None]],
                 suite: Suite = DEFAULT):
        self.lookup = lookup  # tx ids -> their envelopes in our mempool (None: not pooled)
        self.suite = suite  # the chain's hash: block id, tx ids, tx root
        self._pending: OrderedDict[bytes, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, proposal: cs.Proposal, head: bytes, ids: list[bytes],
             source: bytes) -> Pending:
        """Check the head and ids against the signed proposal (ProtocolError if they do not
        belong to it) and fill what the pool holds. A block already being completed is
        returned as it is."""
        known = self._pending.get(proposal.block_hash)
        if known is not None:
            return known
        b = Block.decode(head, header_only=True)
        n = header_size(len(b.chain_id))
        if self.suite.hash(head[:n]) != proposal.block_hash:
            raise ProtocolError("compact proposal head does not hash to the proposal's block")
        if b.tx_count != len(ids) or tx_root_of(ids, self.suite) != b.tx_root:
            raise ProtocolError("compact proposal ids do not have the header's tx root")
        if b.height != proposal.height:
            raise ProtocolError("compact proposal head is for another height")
        txs = self.lookup(ids)
        pending = Pending(proposal, head, b, ids, txs, source,
                          {i for i, t in enumerate(txs) if t is None})
        if pending.missing:
            self._pending[proposal.block_hash] = pending
            while len(self._pending) > limits.compact_blocks_pending_max:
                self._pending.popitem(last=False)
        return pending

    def receive(self, block_hash: bytes, indices: list[int],
                envelopes: list[bytes]) -> Pending | None:
        """Fetched envelopes for a pending block; returns it once complete (and forgets it),
        None while something is still missing or when nothing waits for them. An envelope
        that is not the transaction at its index raises ProtocolError."""
        pending = self._pending.get(block_hash)
        if pending is None:
            return None
        ids = self.suite.hash_many(list(envelopes))
        for i, env, got in zip(indices, envelopes, ids):
            if i >= len(pending.ids) or pending.ids[i] != got:
                raise ProtocolError(f"fetched transaction {i} is not the one the block names")
            pending.fill(i, env)
        if pending.missing:
            return None
        del self._pending[block_hash]
        return pending

    def forget_below(self, height: int) -> None:
        """The core moved on: blocks of lower heights can no longer matter."""
        for key in [k for k, p in self._pending.items() if p.proposal.height < height]:
            del self._pending[key]
