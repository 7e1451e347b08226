"""The simulator's block format and block-validity function.

A sim block is ``height u64 | parent hash 32 | proposer tag u16 | invalid flag u8 |
evidence count u16 | evidence (fixed size each) | payload``. It is valid at a height when it
decodes, names that height and the node's previous decided block as parent, is not flagged
invalid (what a Byzantine proposer sends) and all its evidence verifies against the set and is
about an earlier height (evidence of this height could name a vote of this very round).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from engine.consensus import DuplicateVoteEvidence, ProtocolError, ValidatorSet

_HEAD = struct.Struct("<Q32sHBH")
GENESIS_HASH = bytes(32)


@dataclass(frozen=True)
class SimBlock:
    height: int
    parent_hash: bytes
    proposer_tag: int
    invalid: bool
    evidence: tuple[DuplicateVoteEvidence, ...]
    payload: bytes

    def encode(self) -> bytes:
        return (_HEAD.pack(self.height, self.parent_hash, self.proposer_tag, int(self.invalid),
                           len(self.evidence))
                + b"".join(e.encode() for e in self.evidence) + self.payload)

    @classmethod
    def decode(cls, data: bytes) -> SimBlock:
        if len(data) < _HEAD.size:
            raise ProtocolError("sim block is truncated")
        h, parent, tag, invalid, n_ev = _HEAD.unpack_from(data)
        off, size = _HEAD.size, DuplicateVoteEvidence.WIRE_BYTES
        if len(data) < off + n_ev * size:
            raise ProtocolError("sim block evidence is truncated")
        evidence = tuple(DuplicateVoteEvidence.decode(data[off + i * size: off + (i + 1) * size])
                         for i in range(n_ev))
        return cls(h, parent, tag, bool(invalid), evidence, data[off + n_ev * size:])


def make_validity(chain_id: bytes, validators: ValidatorSet,
                  verify: Callable[[bytes, bytes, bytes], bool],
                  parent_of: Callable[[int], bytes | None]) -> Callable[[int, bytes], bool]:
    """``is_valid(height, block)`` for one node; ``parent_of(height)`` is the hash that node
    decided at height - 1 (GENESIS_HASH for height 1), or None when it does not know it."""

    def is_valid(height: int, data: bytes) -> bool:
        try:
            block = SimBlock.decode(data)
            for e in block.evidence:
                e.verify(chain_id, validators, verify)
                if e.height >= height:
                    return False
        except ProtocolError:
            return False
        parent = parent_of(height)
        return (not block.invalid and block.height == height and parent is not None
                and block.parent_hash == parent)

    return is_valid
