"""Commit certificates: the proof that more than 2/3 of the power precommitted a block.

A certificate is (height, round, block hash, signer bitmap in validator-set order, signatures of
the signers in bitmap order). Every signer signed the same precommit sign bytes, so verification
is one ``verify_batch`` call over the signers plus one native tally of the bitmap's power
(``_tally.bitmap_power``). Wire layout: ``height u64 | round u32 | block_hash 32 |
validators u32 | bitmap ceil(validators/8) | signatures u32 | signature 64 * signatures``.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine import crypto
from engine.consensus import _tally
from engine.consensus.types import (
    HASH_BYTES,
    NIL,
    SIGNATURE_BYTES,
    ProtocolError,
    ValidatorSet,
    VoteType,
    vote_sign_bytes,
)

VerifyBatch = Callable[[Sequence[bytes], Sequence[bytes], Sequence[bytes]], list]

_HEAD = struct.Struct("<QI32sI")


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    height: int
    round: int
    block_hash: bytes
    bitmap: bytes
    signatures: tuple[bytes, ...]

    @classmethod
    def build(cls, height: int, round: int, block_hash: bytes,
              signatures_by_index: dict[int, bytes], validators_count: int) -> CommitCertificate:
        """From the precommit signatures of (height, round, block_hash), keyed by validator."""
        bitmap = bytearray((validators_count + 7) // 8)
        for i in signatures_by_index:
            bitmap[i >> 3] |= 1 << (i & 7)
        sigs = tuple(signatures_by_index[i] for i in sorted(signatures_by_index))
        return cls(height, round, block_hash, bytes(bitmap), sigs)

    def signer_indices(self) -> list[int]:
        return [i for i in range(len(self.bitmap) * 8) if self.bitmap[i >> 3] >> (i & 7) & 1]

    def encode(self) -> bytes:
        n_bits = len(self.bitmap) * 8
        return (_HEAD.pack(self.height, self.round, self.block_hash, n_bits)
                + self.bitmap + struct.pack("<I", len(self.signatures)) + b"".join(self.signatures))

    @classmethod
    def decode(cls, data: bytes, validators_count: int) -> CommitCertificate:
        """Parse; ``validators_count`` is the size of the set the certificate is checked against."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProtocolError("a certificate must be bytes")
        data = bytes(data)
        if len(data) < _HEAD.size:
            raise ProtocolError("certificate is truncated")
        h, r, bh, n = _HEAD.unpack_from(data)
        bm_len = (validators_count + 7) // 8
        if n != bm_len * 8:
            raise ProtocolError("certificate bitmap does not match the validator set")
        off = _HEAD.size
        if len(data) < off + bm_len + 4:
            raise ProtocolError("certificate is truncated")
        bitmap = data[off:off + bm_len]
        (k,) = struct.unpack_from("<I", data, off + bm_len)
        off += bm_len + 4
        if len(data) != off + k * SIGNATURE_BYTES:
            raise ProtocolError("certificate signature count does not match its length")
        sigs = tuple(data[off + i * 64: off + (i + 1) * 64] for i in range(k))
        return cls(h, r, bh, bitmap, sigs)

    def verify(self, chain_id: bytes, validators: ValidatorSet,
               verify_batch: VerifyBatch = crypto.verify_batch) -> None:
        """Raise ProtocolError unless more than 2/3 of ``validators``' power signed this block's
        precommit with valid signatures (one batch verification, one native tally)."""
        _, signers = self.quorum_signers(validators)
        self.verify_signatures(chain_id, validators, signers, verify_batch)

    def quorum_signers(self, validators: ValidatorSet) -> tuple[int, list[int]]:
        """(signed power, signer indices) once the structure holds: a 32-byte non-nil block
        hash, a bitmap that fits ``validators``, one signature per signer, more than 2/3 of
        the power, height and round in range. Signatures are not checked here (see
        :meth:`verify_signatures`); raises ProtocolError."""
        if not isinstance(self.block_hash, bytes) or len(self.block_hash) != HASH_BYTES \
                or self.block_hash == NIL:
            raise ProtocolError("certificate block hash must be 32 non-zero bytes")
        try:
            power = _tally.bitmap_power(self.bitmap, validators.powers)
        except (ValueError, TypeError) as e:
            raise ProtocolError(f"certificate bitmap: {e}") from None
        signers = self.signer_indices()
        if len(signers) != len(self.signatures):
            raise ProtocolError("certificate has a signature count different from its signers")
        if not validators.has_quorum(power):
            raise ProtocolError(f"certificate power {power} of {validators.total_power} "
                                "is not more than 2/3")
        if not (0 <= self.height < 1 << 64 and 0 <= self.round < 1 << 31):
            raise ProtocolError("certificate height or round out of range")
        return power, signers

    def verify_signatures(self, chain_id: bytes, validators: ValidatorSet, signers: list[int],
                          verify_batch: VerifyBatch = crypto.verify_batch) -> None:
        """One batch verification of the signers' precommit signatures; ProtocolError naming
        the validators whose signatures fail."""
        msg = vote_sign_bytes(chain_id, VoteType.PRECOMMIT, self.height, self.round,
                              self.block_hash)
        try:
            ok = verify_batch([validators.public_key(i) for i in signers], [msg] * len(signers),
                              list(self.signatures))
        except (ValueError, TypeError) as e:
            raise ProtocolError(f"certificate signatures: {e}") from None
        if not all(ok):
            bad = [signers[i] for i, good in enumerate(ok) if not good]
            raise ProtocolError(f"certificate has invalid signatures from validators {bad}")
