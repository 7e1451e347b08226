"""Helpers for consensus tests: a validator set with known keys, signed messages from any
validator, and a core under test whose actions are easy to inspect."""
from __future__ import annotations

from engine import hashing
from engine.consensus import (
    NIL,
    ConsensusCore,
    Proposal,
    ProposalReceived,
    SignerGuard,
    Start,
    TimeoutConfig,
    Validator,
    ValidatorSet,
    Vote,
    VoteReceived,
    VoteType,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from engine.crypto import SigningKey

CHAIN = b"test-chain"
TIMEOUTS = TimeoutConfig(propose_ms=1000, propose_delta_ms=100, prevote_ms=500,
                         prevote_delta_ms=50, precommit_ms=500, precommit_delta_ms=50)


def keys(n: int) -> list[SigningKey]:
    return [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(n)]


class Net:
    """n validators with the given powers; ``core(i)`` builds validator i's core."""

    def __init__(self, n: int = 4, powers: list[int] | None = None):
        self.keys = keys(n)
        self.powers = powers or [1] * n
        self.vs = ValidatorSet([Validator(k.public_key, p)
                                for k, p in zip(self.keys, self.powers)])
        self.invalid: set[bytes] = set()

    def is_valid(self, height: int, block: bytes) -> bool:
        return block not in self.invalid

    def core(self, i: int, height: int = 1, start: bool = True, **kw) -> ConsensusCore:
        c = ConsensusCore(CHAIN, self.vs, SignerGuard(self.keys[i]), height=height,
                          is_valid=self.is_valid, timeouts=TIMEOUTS, **kw)
        if start:
            c.step(Start(height))
        return c

    def vote(self, i: int, t: VoteType, h: int, r: int, block: bytes | None) -> Vote:
        bh = NIL if block is None else hashing.blake3(block)
        sig = self.keys[i].sign(vote_sign_bytes(CHAIN, t, h, r, bh))
        return Vote(t, h, r, bh, i, sig)

    def prevote(self, i, h, r, block) -> VoteReceived:
        return VoteReceived(self.vote(i, VoteType.PREVOTE, h, r, block))

    def precommit(self, i, h, r, block) -> VoteReceived:
        return VoteReceived(self.vote(i, VoteType.PRECOMMIT, h, r, block))

    def proposal(self, h: int, r: int, block: bytes, pol_round: int = -1,
                 proposer: int | None = None) -> ProposalReceived:
        c = ConsensusCore(CHAIN, self.vs, None)
        i = c.proposer(h, r) if proposer is None else proposer
        bh = hashing.blake3(block)
        sig = self.keys[i].sign(proposal_sign_bytes(CHAIN, h, r, pol_round, bh))
        return ProposalReceived(Proposal(h, r, pol_round, bh, i, sig), block)

    def non_proposer_round(self, core: ConsensusCore, h: int, start: int = 0) -> int:
        """The first round >= start whose proposer is not ``core``'s validator."""
        r = start
        while core.proposer(h, r) == core.own_index:
            r += 1
        return r


def of_type(actions, cls) -> list:
    return [a for a in actions if isinstance(a, cls)]


def h(block: bytes) -> bytes:
    return hashing.blake3(block)
