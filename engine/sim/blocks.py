"""The simulator's block format and block-validity function.

A sim block is ``height u64 | parent hash 32 | proposer tag u16 | invalid flag u8 |
evidence count u16 | last commit length u32 | evidence (fixed size each) | last commit |
payload``. The last commit is the encoded certificate of the parent (empty at height 1). A
block is valid at a height when it decodes, names that height and the node's previous decided
block as parent, carries a commit certificate of that parent with more than 2/3 of the power
and valid signatures, is not flagged invalid (what a Byzantine proposer sends), and all its
evidence verifies against the set and is about an earlier height (evidence of this height could
name a vote of this very round).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from engine.consensus import CommitCertificate, DuplicateVoteEvidence, ProtocolError, ValidatorSet

_HEAD = struct.Struct("<Q32sHBHI")
GENESIS_HASH = bytes(32)


@dataclass(frozen=True)
class SimBlock:
    height: int
    parent_hash: bytes
    proposer_tag: int
    invalid: bool
    evidence: tuple[DuplicateVoteEvidence, ...]
    last_commit: bytes
    payload: bytes

    def encode(self) -> bytes:
        return (_HEAD.pack(self.height, self.parent_hash, self.proposer_tag, int(self.invalid),
                           len(self.evidence), len(self.last_commit))
                + b"".join(e.encode() for e in self.evidence) + self.last_commit + self.payload)

    @classmethod
    def decode(cls, data: bytes) -> SimBlock:
        if len(data) < _HEAD.size:
            raise ProtocolError("sim block is truncated")
        h, parent, tag, invalid, n_ev, lc_len = _HEAD.unpack_from(data)
        off, size = _HEAD.size, DuplicateVoteEvidence.WIRE_BYTES
        if len(data) < off + n_ev * size + lc_len:
            raise ProtocolError("sim block evidence or last commit is truncated")
        evidence = tuple(DuplicateVoteEvidence.decode(data[off + i * size: off + (i + 1) * size])
                         for i in range(n_ev))
        off += n_ev * size
        return cls(h, parent, tag, bool(invalid), evidence, data[off:off + lc_len],
                   data[off + lc_len:])


def make_validity(chain_id: bytes, validators: ValidatorSet,
                  verify: Callable[[bytes, bytes, bytes], bool],
                  verify_batch: Callable[..., list],
                  parent_of: Callable[[int], bytes | None],
                  validators_at: Callable[[int], ValidatorSet | None] | None = None,
                  ) -> Callable[[int, bytes], bool]:
    """``is_valid(height, block)`` for one node; ``parent_of(height)`` is the hash that node
    decided at height - 1 (GENESIS_HASH for height 1), or None when it does not know it;
    ``validators_at(height)`` the set that signs a height (default: ``validators`` for all)."""

    def set_at(height: int) -> ValidatorSet:
        vset = validators_at(height) if validators_at is not None else validators
        if vset is None:
            raise ProtocolError(f"the set of height {height} is not known")
        return vset

    def is_valid(height: int, data: bytes) -> bool:
        parent = parent_of(height)
        try:
            block = SimBlock.decode(data)
            if block.invalid or block.height != height or parent is None \
                    or block.parent_hash != parent:
                return False
            for e in block.evidence:
                if e.height >= height:
                    return False
                e.verify(chain_id, set_at(e.height), verify)
            if height == 1:
                return block.last_commit == b""
            parent_set = set_at(height - 1)
            cert = CommitCertificate.decode(block.last_commit, len(parent_set))
            if cert.height != height - 1 or cert.block_hash != parent:
                return False
            cert.verify(chain_id, parent_set, verify_batch)
        except ProtocolError:
            return False
        return True

    return is_valid
