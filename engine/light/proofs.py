"""Proofs checked against a verified light block: a transaction's inclusion and a state value.

Both take a header the caller has verified (``LightClient.verify_to`` or ``verify``), so a
proof is as trustworthy as the validators who signed that header, and needs nothing else from
the chain:

- a transaction is in block H when its Merkle audit path (``GET /tx/{id}``'s ``proof``) leads
  from ``BLAKE3(envelope)`` (the tx id; SM3 on an ``sm2-sm3`` chain, whose tree is SM3 too) to
  the ``tx_root`` of the header of H;
- a kvstore key has a value (or none) in the state after block H when its
  :class:`engine.statetree.StateProof` leads to the ``app_hash`` of the header of **H + 1**
  (a header carries the app hash of its parent's state).
"""
from __future__ import annotations

from typing import Any

from engine.block import Header
from engine.hashing import MerkleProof
from engine.light.block import LightBlock
from engine.light.verify import VerificationFailed
from engine.statetree import StateProof
from engine.statetree import verify_state_proof as _verify_state_root
from engine.suite import Suite, get_suite

__all__ = ["tx_proof_from_json", "verify_state_proof", "verify_tx_inclusion"]


def _header(block: LightBlock | Header) -> Header:
    if isinstance(block, LightBlock):
        return block.header
    if isinstance(block, Header):
        return block
    raise TypeError(f"block must be a LightBlock or a Header, not {type(block).__name__}")


def _suite_of(block: LightBlock | Header, suite: Suite | str | None) -> Suite:
    """The suite a proof about ``block`` is checked in: a light block's own (``suite``, when
    given, must name it: ValueError otherwise), else ``suite`` (default ``ed25519-blake3``)."""
    s = block.suite if isinstance(block, LightBlock) and suite is None else get_suite(suite)
    if isinstance(block, LightBlock) and s is not block.suite:
        raise ValueError(f"suite {s.name} is not the light block's ({block.suite.name})")
    return s


def tx_proof_from_json(proof: Any) -> MerkleProof:
    """The ``proof`` object of ``GET /tx/{id}`` as a MerkleProof (ValueError when malformed)."""
    try:
        index, size, path = proof["index"], proof["size"], proof["path"]
        if type(index) is not int or type(size) is not int or not isinstance(path, list):
            raise ValueError("index and size must be ints, path a list")
        return MerkleProof(index, size, tuple(bytes.fromhex(p) for p in path))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed transaction proof: {e!r}") from None


def verify_tx_inclusion(block: LightBlock | Header, envelope: bytes, proof: MerkleProof,
                        suite: Suite | str | None = None) -> None:
    """Raise VerificationFailed unless ``envelope`` is transaction ``proof.index`` of the
    (verified) block ``block``, hashed in the chain's suite: a light block's own, or ``suite``
    for a bare header (default ``ed25519-blake3``)."""
    h = _header(block)
    s = _suite_of(block, suite)
    if not isinstance(envelope, (bytes, bytearray)) or not envelope:
        raise TypeError("envelope must be non-empty bytes")
    if not isinstance(proof, MerkleProof):
        raise TypeError(f"proof must be a MerkleProof, not {type(proof).__name__}")
    if proof.size != h.tx_count:
        raise VerificationFailed(f"the proof is for a block of {proof.size} transactions, "
                                 f"block {h.height} has {h.tx_count}")
    try:
        ok = s.verify_tx_proof(h.tx_root, bytes(envelope), proof)
    except (ValueError, TypeError) as e:
        raise VerificationFailed(f"malformed transaction proof: {e}") from None
    if not ok:
        raise VerificationFailed(f"the transaction is not in block {h.height} "
                                 "(its audit path does not lead to the header's tx root)")


def verify_state_proof(block: LightBlock | Header, proof: StateProof,
                       suite: Suite | str | None = None) -> None:
    """Raise VerificationFailed unless ``proof`` (key, value or None, height H) holds against
    the app hash of the (verified) header ``block``, which must be of height H + 1. The state
    tree is the chain suite's (the kvstore's: SM3 on an ``sm2-sm3`` chain): a light block's
    own, or ``suite`` for a bare header (default ``ed25519-blake3``)."""
    h = _header(block)
    s = _suite_of(block, suite)
    if not isinstance(proof, StateProof):
        raise TypeError(f"proof must be a StateProof, not {type(proof).__name__}")
    if h.height != proof.height + 1:
        raise VerificationFailed(f"a proof of the state after height {proof.height} is checked "
                                 f"against the header of height {proof.height + 1}, not "
                                 f"{h.height}")
    try:
        _verify_state_root(h.app_hash, proof, s)
    except ValueError as e:
        raise VerificationFailed(f"state proof of key {proof.key!r} at height "
                                 f"{proof.height}: {e}") from None
