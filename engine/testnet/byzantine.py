"""Test-only Byzantine behaviour: a validator that equivocates its votes and proposals.

Loaded by engine.testnet.hooks only when the node's ``testing.toml`` has a ``[byzantine]``
table. The node's own consensus core stays honest (it signs through its double-sign guard);
this module intercepts what the node broadcasts and, bypassing every guard, signs a
*conflicting* message for the same (height, round, step) with the validator key:

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
from typing import Any

from engine import consensus as cs
from engine.block import Block
from engine.hashing import blake3
from engine.net import codec

log = logging.getLogger("engine.testnet.byzantine")

__all__ = ["install"]


def _conflicting_vote(node: Any, vote: cs.Vote) -> cs.Vote:
    other = bytes(32) if vote.block_hash != bytes(32) else os.urandom(32)
    signed = cs.Vote(vote.type, vote.height, vote.round, other, vote.validator_index, b"")
    sig = node.home.validator_key.sign(signed.sign_bytes(node.chain_id))
    return dataclasses.replace(signed, signature=sig)


def _conflicting_proposal(node: Any, proposal: cs.Proposal, block: bytes) -> tuple[cs.Proposal,
                                                                                    bytes]:
    b = Block.decode(block)
    alt = dataclasses.replace(b, time_ms=b.time_ms + 1).encode()
    p = cs.Proposal(proposal.height, proposal.round, proposal.pol_round, blake3(alt),
                    proposal.proposer_index, b"")
    sig = node.home.validator_key.sign(p.sign_bytes(node.chain_id))
    return dataclasses.replace(p, signature=sig), alt


def _equivocation(node: Any, message: bytes, votes: bool, proposals: bool) -> bytes | None:
    """The conflicting twin of an own VOTES or PROPOSAL message, or None for anything else."""
    msg = codec.decode(message, node.peers.limits)
    own = node.core.own_index if node.core is not None else None
    if msg.kind == codec.VOTES and votes:
        mine = [cs.Vote.decode(v) for v in msg.fields[0]]
        mine = [v for v in mine if v.validator_index == own]
        if mine:
            return codec.encode(codec.VOTES, [_conflicting_vote(node, v).encode() for v in mine])
    if msg.kind == codec.PROPOSAL and proposals:
        p = cs.Proposal.decode(msg.fields[0])
        if p.proposer_index == own:
            alt_p, alt_block = _conflicting_proposal(node, p, msg.fields[1])
            return codec.encode(codec.PROPOSAL, alt_p.encode(), alt_block)
    return None


def install(node: Any, settings: dict[str, Any]) -> None:
    """Make ``node`` equivocate; ``settings`` is the ``[byzantine]`` table of testing.toml."""
    unknown = sorted(set(settings) - {"equivocate_votes", "equivocate_proposals"})
    if unknown:
        raise ValueError(f"testing.toml: unknown [byzantine] settings {unknown}")
    votes = bool(settings.get("equivocate_votes", True))
    proposals = bool(settings.get("equivocate_proposals", True))
    honest_broadcast = node._broadcast

    def broadcast(message: bytes) -> None:
        twin = None
        if node.peers is not None and not node._replaying:
            try:
                twin = _equivocation(node, message, votes, proposals)
            except Exception:
                log.exception("could not build an equivocating message")
        if twin is None:
            honest_broadcast(message)
            return
        node._count("byzantine_equivocations")
        for i, peer in enumerate(sorted(node.peers.connected())):
            if i % 3 != 2:
                node.peers.send(peer, message)
            if i % 3 != 1:
                node.peers.send(peer, twin)

    node._broadcast = broadcast
    log.warning("BYZANTINE test behaviour enabled on %s (votes=%s, proposals=%s)",
                node.config.moniker, votes, proposals)
