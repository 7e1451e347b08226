"""Test-only Byzantine behaviour: a validator that equivocates its votes and proposals.

Built by engine.faults.hooks only when the node's ``testing.toml`` has a ``[byzantine]``
table. The node's own consensus core stays honest (it signs through its double-sign guard);
this outbox wraps the node's and, bypassing every guard, signs a *conflicting* message for
the same (height, round, step) with the validator key:

- a vote for a block becomes, for some peers, a nil vote (and a nil vote one for a random hash);
- a proposal becomes, for some peers, a proposal of a different block (same transactions,
  another timestamp, so another hash).

Peers are split in three: some get the honest message, some the conflicting one, and some get
both — those see the equivocation directly and must turn it into evidence.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from engine import consensus as cs
from engine.block import Block, block_id
from engine.node.ports import Counters, Outbox, OutboxWrapper
from engine.suite import Suite, get_suite

log = logging.getLogger("engine.faults.byzantine")

__all__ = ["EquivocatingOutbox", "outbox_wrapper"]


class EquivocatingOutbox:
    """Sends each own vote and proposal honestly to some peers, a conflicting twin to others,
    and both to the rest (those see the equivocation directly)."""

    def __init__(self, inner: Outbox, peers: Callable[[], list[bytes]], counters: Counters, *,
                 key: Any, chain_id: bytes, own_index: int, votes: bool, proposals: bool,
                 suite: Suite | None = None):
        self.inner, self.peers, self.counters = inner, peers, counters
        self.suite = get_suite(suite)
        self.key, self.chain_id, self.own_index = key, chain_id, own_index
        self.equivocate_votes, self.equivocate_proposals = votes, proposals

    def votes(self, votes: Sequence[cs.Vote], to: bytes | None = None) -> None:
        mine = [v for v in votes if v.validator_index == self.own_index]
        if not self.equivocate_votes or not mine or to is not None:
            self.inner.votes(votes, to)
            return
        twins = [self._conflicting_vote(v) for v in mine]
        self._split(lambda peer: self.inner.votes(votes, peer),
                    lambda peer: self.inner.votes(twins, peer))

    def proposal(self, proposal: cs.Proposal, block: bytes, to: bytes | None = None) -> None:
        if not self.equivocate_proposals or proposal.proposer_index != self.own_index \
                or to is not None:
            self.inner.proposal(proposal, block, to)
            return
        alt_p, alt_block = self._conflicting_proposal(proposal, block)
        self._split(lambda peer: self.inner.proposal(proposal, block, peer),
                    lambda peer: self.inner.proposal(alt_p, alt_block, peer))

    def _split(self, honest: Callable[[bytes], None], twin: Callable[[bytes], None]) -> None:
        self.counters.add("byzantine_equivocations")
        for i, peer in enumerate(self.peers()):
            if i % 3 != 2:
                honest(peer)
            if i % 3 != 1:
                twin(peer)

    def _conflicting_vote(self, vote: cs.Vote) -> cs.Vote:
        other = bytes(32) if vote.block_hash != bytes(32) else os.urandom(32)
        signed = cs.Vote(vote.type, vote.height, vote.round, other, vote.validator_index, b"")
        sig = self.key.sign(signed.sign_bytes(self.chain_id))
        return dataclasses.replace(signed, signature=sig)

    def _conflicting_proposal(self, proposal: cs.Proposal,
                              block: bytes) -> tuple[cs.Proposal, bytes]:
        b = Block.decode(block)
        # A valid block of the chain's suite (its tx root and id in that suite's hash), so the
        # twin proposal is one honest nodes could accept.
        alt = dataclasses.replace(b, time_ms=b.time_ms + 1).encode(self.suite)
        p = cs.Proposal(proposal.height, proposal.round, proposal.pol_round,
                        block_id(alt, self.suite),
                        proposal.proposer_index, b"")
        sig = self.key.sign(p.sign_bytes(self.chain_id))
        return dataclasses.replace(p, signature=sig), alt


def outbox_wrapper(home: Any, settings: dict[str, Any]) -> OutboxWrapper:
    """The outbox wrapper for ``home`` (engine.config.Home); ``settings`` is the
    ``[byzantine]`` table of testing.toml."""
    unknown = sorted(set(settings) - {"equivocate_votes", "equivocate_proposals"})
    if unknown:
        raise ValueError(f"testing.toml: unknown [byzantine] settings {unknown}")
    votes = bool(settings.get("equivocate_votes", True))
    proposals = bool(settings.get("equivocate_proposals", True))
    key = home.validator_key
    own = [v.public_key for v in home.genesis.validators].index(key.public_key)
    log.warning("BYZANTINE test behaviour enabled on %s (votes=%s, proposals=%s)",
                home.config.moniker, votes, proposals)

    def wrap(inner: Outbox, peers: Callable[[], list[bytes]], counters: Counters) -> Outbox:
        return EquivocatingOutbox(inner, peers, counters, key=key,
                                  chain_id=home.genesis.chain_id.encode(), own_index=own,
                                  votes=votes, proposals=proposals, suite=home.genesis.suite)

    return wrap
