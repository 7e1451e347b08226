"""A chain of signed light blocks made from test keys, with validator sets that change over
heights: for the light client's tests, its benchmark and demos (no node involved).

Headers are built for every height (cheap: no signature), so parent hashes and
``next_validators_hash`` chain exactly as a node's do; certificates are signed only for the
heights asked for, which keeps a 10,000-height chain with a 1,000-validator set affordable.
A chain is of one crypto suite (default ``ed25519-blake3``; ``sm2-sm3``: SM2 keys and
certificates, SM3 block ids, set hashes and tx roots), as a node's chain is.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from engine import crypto
from engine.block import Header, evidence_root, tx_root_of
from engine.consensus.certificate import CommitCertificate
from engine.consensus.types import Validator, ValidatorSet, VoteType, vote_sign_bytes
from engine.hashing import blake3
from engine.light.block import LightBlock
from engine.suite import Signer, Suite, get_suite

__all__ = ["Epoch", "SyntheticChain", "make_keys"]

Epoch = tuple[int, Sequence[tuple[crypto.SigningKey | Signer, int]]]


def make_keys(count: int, tag: bytes = b"",
              suite: Suite | str | None = None) -> list[crypto.SigningKey]:
    """``count`` deterministic test keys of ``suite`` (seeded from ``tag`` and the index)."""
    s = get_suite(suite)
    seeds = [blake3(b"engine/light/test-key" + tag + i.to_bytes(4, "little"))
             for i in range(count)]
    return [s.key_from_seed(seed) for seed in seeds]  # type: ignore[misc]


class SyntheticChain:
    """Heights 1..``length`` of ``chain_id``. ``epochs`` lists ``(first height, [(key, power),
    ...])`` in increasing height order, the first at height 1: the set that signs each height.
    ``app_hash(h)`` gives each header's app hash (default: a tag of the height)."""

    def __init__(self, chain_id: bytes, epochs: Sequence[Epoch], length: int, *,
                 start_time_ms: int = 1_700_000_000_000, block_interval_ms: int = 1000,
                 app_hash: Callable[[int], bytes] | None = None,
                 tx_ids: Callable[[int], list[bytes]] | None = None,
                 suite: Suite | str | None = None):
        if not epochs or epochs[0][0] != 1:
            raise ValueError("epochs must start at height 1")
        if any(a[0] >= b[0] for a, b in itertools.pairwise(epochs)):
            raise ValueError("epochs must be in increasing height order")
        self.chain_id = chain_id
        self.length = length
        self.suite = s = get_suite(suite)
        self._epoch_starts = [e[0] for e in epochs]
        self._sets = [ValidatorSet([Validator(k.public_key, p) for k, p in e[1]])
                      for e in epochs]
        self._keys = {k.public_key: k for _, members in epochs for k, _ in members}
        self._app_hash = app_hash or (lambda h: blake3(b"app %d" % h))
        self._tx_ids = tx_ids or (lambda h: [])
        self.headers: list[Header] = []
        self._blocks: dict[int, LightBlock] = {}
        parent = bytes(32)
        empty_commit = s.hash(b"")
        no_evidence = evidence_root([], s)
        for h in range(1, length + 1):
            ids = self._tx_ids(h)
            header = Header(chain_id, h, start_time_ms + h * block_interval_ms, parent,
                            self._app_hash(h), tx_root_of(ids, s), len(ids),
                            empty_commit if h == 1 else s.hash(b"commit %d" % (h - 1)),
                            no_evidence, self.set_at(h).hash(s.hash),
                            self.set_at(h + 1).hash(s.hash), 0)
            self.headers.append(header)
            parent = header.hash(s)

    def set_at(self, height: int) -> ValidatorSet:
        """The set that signs ``height``."""
        i = 0
        for j, start in enumerate(self._epoch_starts):
            if start <= height:
                i = j
        return self._sets[i]

    def header(self, height: int) -> Header:
        return self.headers[height - 1]

    def sign(self, header: Header, validators: ValidatorSet,
             signers: Sequence[int] | None = None, round: int = 0) -> CommitCertificate:
        """A certificate of ``header`` by the validators at ``signers`` (default: all)."""
        block_hash = header.hash(self.suite)
        msg = vote_sign_bytes(self.chain_id, VoteType.PRECOMMIT, header.height, round,
                              block_hash)
        indices = range(len(validators)) if signers is None else signers
        sigs = {i: self._keys[validators.public_key(i)].sign(msg) for i in indices}
        return CommitCertificate.build(header.height, round, block_hash, sigs, len(validators))

    def light_block(self, height: int) -> LightBlock | None:
        """The light block of ``height`` signed by its whole set (None outside the chain)."""
        if not 1 <= height <= self.length:
            return None
        lb = self._blocks.get(height)
        if lb is None:
            header, vals = self.header(height), self.set_at(height)
            lb = self._blocks[height] = LightBlock(header, self.sign(header, vals), vals,
                                                   self.suite)
        return lb
