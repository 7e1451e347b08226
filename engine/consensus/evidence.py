"""Evidence of misbehaviour: a validator that signed two different votes at one (h, r, type).

``DuplicateVoteEvidence`` holds both signed votes, ordered by block hash so that the same pair
always encodes the same way. It is valid (``verify``) when both votes come from the same
validator, for the same height, round and type, for different block hashes (one may be nil), the
validator is in the set, and both signatures verify for the chain id. The core reports it with a
``ReportEvidence`` action; the driver stores it and a later proposer carries it in a block, where
the block-validity function checks it again with ``verify``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.consensus.types import ProtocolError, ValidatorSet, Vote, check_vote_shape

Verify = Callable[[bytes, bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    vote_a: Vote
    vote_b: Vote

    WIRE_BYTES = 2 * Vote.WIRE_BYTES

    @classmethod
    def from_votes(cls, a: Vote, b: Vote) -> DuplicateVoteEvidence:
        """The canonical pair (lower block hash first)."""
        return cls(a, b) if a.block_hash < b.block_hash else cls(b, a)

    @property
    def height(self) -> int:
        return self.vote_a.height

    @property
    def validator_index(self) -> int:
        return self.vote_a.validator_index

    def encode(self) -> bytes:
        return self.vote_a.encode() + self.vote_b.encode()

    @classmethod
    def decode(cls, data: bytes) -> DuplicateVoteEvidence:
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != cls.WIRE_BYTES:
            raise ProtocolError(f"duplicate-vote evidence is {cls.WIRE_BYTES} bytes")
        n = Vote.WIRE_BYTES
        return cls(Vote.decode(bytes(data[:n])), Vote.decode(bytes(data[n:])))

    def verify(self, chain_id: bytes, validators: ValidatorSet, verify: Verify) -> None:
        """Raise ProtocolError unless this is valid evidence against ``validators``."""
        a, b = check_vote_shape(self.vote_a), check_vote_shape(self.vote_b)
        if (a.validator_index, a.height, a.round, a.type) != \
                (b.validator_index, b.height, b.round, b.type):
            raise ProtocolError("evidence votes differ in validator, height, round or type")
        if a.block_hash >= b.block_hash:
            raise ProtocolError("evidence votes must be for different block hashes, lower first")
        if not 0 <= a.validator_index < len(validators):
            raise ProtocolError(f"validator index {a.validator_index} is not in the set")
        pk = validators.public_key(a.validator_index)
        for name, v in (("vote_a", a), ("vote_b", b)):
            if not verify(pk, v.sign_bytes(chain_id), v.signature):
                raise ProtocolError(f"evidence {name} has an invalid signature")
