"""The light client: verify another chain's headers, transactions and state from a trusted
header, without its blocks (README "Verifying another chain"; docs/formats.md "Light block").

- :class:`LightBlock`: header + commit certificate + validator set (``GET /light_block/{h}``);
- :class:`LightClient`: verify later headers sequentially or by skipping (the 1/3 trust rule),
  within a trusting period, and detect forks against witnesses (:class:`ForkEvidence`);
- :func:`verify_tx_inclusion`, :func:`verify_state_proof`: proofs against a verified header;
- sources: :class:`RpcSource` (a node's RPC), :class:`MemorySource`.
"""
from engine.light.block import LightBlock, decode_validator_set
from engine.light.client import ForkDetected, ForkEvidence, LightClient, conflict_evidence
from engine.light.proofs import tx_proof_from_json, verify_state_proof, verify_tx_inclusion
from engine.light.sources import LightBlockSource, MemorySource, RpcSource, SourceUnavailable
from engine.light.verify import (
    LightClientError,
    NotEnoughTrust,
    TrustExpired,
    VerificationFailed,
    verify_certificate,
    verify_light_block,
)
from engine.statetree import StateProof

__all__ = [
    "ForkDetected",
    "ForkEvidence",
    "LightBlock",
    "LightBlockSource",
    "LightClient",
    "LightClientError",
    "MemorySource",
    "NotEnoughTrust",
    "RpcSource",
    "SourceUnavailable",
    "StateProof",
    "TrustExpired",
    "VerificationFailed",
    "conflict_evidence",
    "decode_validator_set",
    "tx_proof_from_json",
    "verify_certificate",
    "verify_light_block",
    "verify_state_proof",
    "verify_tx_inclusion",
]
