"""Consensus messages and the validator set: frozen values with exact sign bytes and wire layouts.

Sign bytes follow docs/formats.md exactly (all integers little-endian):

- vote: ``b"engine/vote/v1" || u8 len(chain_id) || chain_id || type u8 (1 prevote, 2 precommit)
  || height u64 || round u32 || block hash 32 (all zero = nil)``
- proposal: ``b"engine/proposal/v1" || u8 len(chain_id) || chain_id || height u64 || round u32
  || pol_round i32 || block hash 32``

Wire layouts (docs/consensus.md) are fixed-size; ``decode`` raises ProtocolError on anything
malformed, because its input comes from peers.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from engine import hashing, limits
from engine.errors import ProtocolError

HASH_BYTES = 32
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
#: Validator key sizes of the two crypto suites (engine/suite.py): Ed25519, SM2.
PUBLIC_KEY_SIZES = (32, 64)
#: The all-zero block hash stands for nil.
NIL = bytes(HASH_BYTES)

VOTE_DOMAIN = b"engine/vote/v1"
PROPOSAL_DOMAIN = b"engine/proposal/v1"


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


class Step(IntEnum):
    """The round step; the values double as the signer's step codes (1 proposal, 2 prevote,
    3 precommit), so (height, round, step) orders every signature a validator makes."""

    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


def check_chain_id(chain_id: bytes) -> bytes:
    if not isinstance(chain_id, bytes):
        raise TypeError(f"chain_id must be bytes, not {type(chain_id).__name__}")
    if not 1 <= len(chain_id) <= limits.chain_id_bytes_max:
        raise ValueError(f"chain_id must be 1..{limits.chain_id_bytes_max} bytes, not {len(chain_id)}")
    return chain_id


def vote_sign_bytes(chain_id: bytes, vote_type: int, height: int, round: int,
                    block_hash: bytes) -> bytes:
    """The bytes a validator signs for a vote (docs/formats.md)."""
    return (VOTE_DOMAIN + bytes((len(chain_id),)) + chain_id
            + struct.pack("<BQI", vote_type, height, round) + block_hash)


def proposal_sign_bytes(chain_id: bytes, height: int, round: int, pol_round: int,
                        block_hash: bytes) -> bytes:
    """The bytes a proposer signs for a proposal (docs/formats.md)."""
    return (PROPOSAL_DOMAIN + bytes((len(chain_id),)) + chain_id
            + struct.pack("<QIi", height, round, pol_round) + block_hash)


_VOTE = struct.Struct("<BQI32sI64s")
_PROPOSAL = struct.Struct("<QIi32sI64s")


def _check_ints(height: int, round: int) -> None:
    if not 0 <= height < 1 << 64:
        raise ProtocolError(f"height {height} is outside u64")
    if not 0 <= round < 1 << 31:
        raise ProtocolError(f"round {round} is outside 0..2**31-1")


@dataclass(frozen=True, slots=True)
class Vote:
    """A signed prevote or precommit. ``block_hash`` is NIL for a nil vote."""

    type: VoteType
    height: int
    round: int
    block_hash: bytes
    validator_index: int
    signature: bytes

    WIRE_BYTES = _VOTE.size  # 113

    def sign_bytes(self, chain_id: bytes) -> bytes:
        return vote_sign_bytes(chain_id, self.type, self.height, self.round, self.block_hash)

    def encode(self) -> bytes:
        return _VOTE.pack(self.type, self.height, self.round, self.block_hash,
                          self.validator_index, self.signature)

    @classmethod
    def decode(cls, data: bytes) -> Vote:
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != _VOTE.size:
            raise ProtocolError(f"a vote is {_VOTE.size} bytes")
        t, h, r, bh, vi, sig = _VOTE.unpack(data)
        if t not in (1, 2):
            raise ProtocolError(f"vote type {t} is not 1 (prevote) or 2 (precommit)")
        _check_ints(h, r)
        return cls(VoteType(t), h, r, bh, vi, sig)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A signed proposal of the block with ``block_hash`` at (height, round); ``pol_round`` is
    the proposer's valid round (-1 when it has none)."""

    height: int
    round: int
    pol_round: int
    block_hash: bytes
    proposer_index: int
    signature: bytes

    WIRE_BYTES = _PROPOSAL.size  # 116

    def sign_bytes(self, chain_id: bytes) -> bytes:
        return proposal_sign_bytes(chain_id, self.height, self.round, self.pol_round,
                                   self.block_hash)

    def encode(self) -> bytes:
        return _PROPOSAL.pack(self.height, self.round, self.pol_round, self.block_hash,
                              self.proposer_index, self.signature)

    @classmethod
    def decode(cls, data: bytes) -> Proposal:
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != _PROPOSAL.size:
            raise ProtocolError(f"a proposal is {_PROPOSAL.size} bytes")
        h, r, pr, bh, pi, sig = _PROPOSAL.unpack(data)
        _check_ints(h, r)
        return cls(h, r, pr, bh, pi, sig)


def check_vote_shape(vote: object) -> Vote:
    """Types and ranges of a vote from a peer; ProtocolError when wrong."""
    if not isinstance(vote, Vote):
        raise ProtocolError(f"expected a Vote, not {type(vote).__name__}")
    if vote.type not in (1, 2) or isinstance(vote.type, bool):
        raise ProtocolError(f"vote type {vote.type!r} is not 1 or 2")
    for name in ("height", "round", "validator_index"):
        if type(getattr(vote, name)) is not int:
            raise ProtocolError(f"vote {name} must be an int")
    _check_ints(vote.height, vote.round)
    if not isinstance(vote.block_hash, bytes) or len(vote.block_hash) != HASH_BYTES:
        raise ProtocolError("vote block_hash must be 32 bytes")
    if not isinstance(vote.signature, bytes) or len(vote.signature) != SIGNATURE_BYTES:
        raise ProtocolError("vote signature must be 64 bytes")
    return vote


def check_proposal_shape(proposal: object) -> Proposal:
    if not isinstance(proposal, Proposal):
        raise ProtocolError(f"expected a Proposal, not {type(proposal).__name__}")
    for name in ("height", "round", "pol_round", "proposer_index"):
        if type(getattr(proposal, name)) is not int:
            raise ProtocolError(f"proposal {name} must be an int")
    _check_ints(proposal.height, proposal.round)
    if not -1 <= proposal.pol_round < proposal.round:
        raise ProtocolError(f"pol_round {proposal.pol_round} must be in -1..round-1")
    if not isinstance(proposal.block_hash, bytes) or len(proposal.block_hash) != HASH_BYTES:
        raise ProtocolError("proposal block_hash must be 32 bytes")
    if proposal.block_hash == NIL:
        raise ProtocolError("a proposal cannot be for nil")
    if not isinstance(proposal.signature, bytes) or len(proposal.signature) != SIGNATURE_BYTES:
        raise ProtocolError("proposal signature must be 64 bytes")
    return proposal


@dataclass(frozen=True, slots=True)
class Validator:
    public_key: bytes
    power: int


class ValidatorSet:
    """An ordered set of validators (the order is the index used in votes and bitmaps)."""

    __slots__ = ("_digest", "_index", "_public_keys", "powers", "total_power", "validators")

    def __init__(self, validators: Sequence[Validator]):
        validators = tuple(validators)
        if not 1 <= len(validators) <= limits.validators_max:
            raise ValueError(f"validators must hold 1..{limits.validators_max} entries")
        seen = set()
        for i, v in enumerate(validators):
            if not isinstance(v, Validator):
                raise TypeError(f"validators[{i}] must be a Validator")
            # 32 bytes (Ed25519) or 64 (SM2, x || y): one size for the whole set (one suite).
            size = len(validators[0].public_key) if isinstance(validators[0], Validator) else 0
            if not isinstance(v.public_key, bytes) or len(v.public_key) != size \
                    or size not in PUBLIC_KEY_SIZES:
                raise ValueError(f"validators[{i}].public_key must be 32 bytes (Ed25519) or 64 "
                                 f"(SM2), the size of every key of the set")
            if type(v.power) is not int or v.power <= 0:
                raise ValueError(f"validators[{i}].power must be a positive int")
            if v.public_key in seen:
                raise ValueError(f"validators[{i}] repeats a public key")
            seen.add(v.public_key)
        total = sum(v.power for v in validators)
        if total > limits.voting_power_total_max:
            raise ValueError(f"total voting power must be at most {limits.voting_power_total_max}")
        self.validators = validators
        self.powers = np.array([v.power for v in validators], dtype=np.int64)
        self.total_power = total
        self._public_keys = [v.public_key for v in validators]
        self._index = {v.public_key: i for i, v in enumerate(validators)}
        self._digest: bytes | None = None

    def __len__(self) -> int:
        return len(self.validators)

    def public_key(self, index: int) -> bytes:
        return self._public_keys[index]

    def index_of(self, public_key: bytes) -> int | None:
        return self._index.get(public_key)

    def has_quorum(self, power: int) -> bool:
        """More than 2/3 of the total power."""
        return 3 * power > 2 * self.total_power

    def encode(self) -> bytes:
        """``u32 count | (public key 32, or 64 for SM2 | power u64) * count``, in index order."""
        return struct.pack("<I", len(self.validators)) + b"".join(
            v.public_key + struct.pack("<Q", v.power) for v in self.validators)

    def hash(self, hash_fn: Callable[[bytes], bytes] | None = None) -> bytes:
        """BLAKE3 (or ``hash_fn``, the chain suite's hash: SM3 on an ``sm2-sm3`` chain) of
        ``b"engine/validators/v1" | encode()``: what a block header's ``validators_hash`` and
        ``next_validators_hash`` name."""
        if hash_fn is not None and hash_fn is not hashing.blake3:
            return hash_fn(b"engine/validators/v1" + self.encode())
        if self._digest is None:
            self._digest = hashing.blake3(b"engine/validators/v1" + self.encode())
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidatorSet) and self.validators == other.validators

    def __hash__(self) -> int:
        return hash(self.validators)
