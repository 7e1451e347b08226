"""Verifying one light block from a trusted one: the rules of a light client, without I/O.

From a trusted light block T (a header the caller trusts, with the validator set that signs its
height), an untrusted light block U of a later height is accepted when:

- U is well formed: its set is the one its header names, its certificate is for its header;
- U is of the same chain, later than T, its time is not before T's nor more than
  ``clock_drift_ms`` ahead of now, and T is still within the trusting period
  (``T.time_ms + trusting_period_ms > now_ms``; otherwise :class:`TrustExpired`);
- **adjacent** (U = T + 1): U's set is the one T named as next (``next_validators_hash``), U's
  parent is T, and validators holding more than 2/3 of U's set's power signed U;
- **non-adjacent** (a skip): validators holding more than 1/3 of T's set's power are among U's
  signers (some honest validator that T trusts vouches for U: the rule of CometBFT's light
  client, sound while fewer than 1/3 of T's power is faulty during the trusting period) and,
  as for an adjacent block, more than 2/3 of U's own set's power signed it. Too little overlap
  raises :class:`NotEnoughTrust`: the caller bisects.

Every certificate is checked with **one** native batch verification (the light block's suite's
``verify_batch``: Ed25519, or SM2 on an ``sm2-sm3`` chain) over all its signers; the two power
tallies need no further signature work, since every signer signs the same precommit bytes
whichever set counts it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.consensus.types import ValidatorSet
from engine.errors import ProtocolError
from engine.light.block import LightBlock

__all__ = ["LightClientError", "NotEnoughTrust", "TrustExpired", "VerificationFailed",
           "verify_certificate", "verify_light_block"]

VerifyBatch = Callable[[Sequence[bytes], Sequence[bytes], Sequence[bytes]], list]


class LightClientError(Exception):
    """Why a header could not be verified; ``reason`` is a short code, ``str()`` says more."""

    reason = "invalid"

    def __init__(self, message: str):
        super().__init__(message)


class VerificationFailed(LightClientError):
    """The light block is invalid (forged certificate, wrong set, bad header...)."""

    reason = "invalid"


class TrustExpired(LightClientError):
    """The trusted header is older than the trusting period: its set may have been bribed
    since; the client needs a new trusted header from outside."""

    reason = "trust_expired"


class NotEnoughTrust(LightClientError):
    """A skip whose signers hold no more than 1/3 of the trusted set's power (bisect)."""

    reason = "not_enough_trust"


def verify_certificate(chain_id: bytes, lb: LightBlock, trusted: ValidatorSet | None = None,
                       verify_batch: VerifyBatch | None = None) -> tuple[int, int]:
    """Check ``lb``'s certificate: more than 2/3 of ``lb.validators``' power signed it, and, when
    ``trusted`` is given, its signers hold more than 1/3 of ``trusted``'s power. One batch
    signature verification (``verify_batch``, default: that of ``lb``'s suite). Returns (signed
    power in lb's set, signed power in ``trusted``)."""
    cert, vals = lb.certificate, lb.validators
    try:
        power, signers = cert.quorum_signers(vals)
    except ProtocolError as e:
        raise VerificationFailed(f"certificate of height {lb.height}: {e}") from None
    trusted_power = 0
    if trusted is not None:
        for i in signers:
            j = trusted.index_of(vals.public_key(i))
            if j is not None:
                trusted_power += int(trusted.powers[j])
        if 3 * trusted_power <= trusted.total_power:
            raise NotEnoughTrust(f"signers of height {lb.height} hold {trusted_power} of the "
                                 f"trusted set's {trusted.total_power}: not more than 1/3")
    try:
        cert.verify_signatures(chain_id, vals, signers, verify_batch or lb.suite.verify_batch)
    except ProtocolError as e:
        raise VerificationFailed(f"certificate of height {lb.height}: {e}") from None
    return power, trusted_power


def check_trust_fresh(trusted: LightBlock, now_ms: int, trusting_period_ms: int) -> None:
    expires = trusted.time_ms + trusting_period_ms
    if expires <= now_ms:
        raise TrustExpired(f"the trusted header of height {trusted.height} expired "
                           f"{(now_ms - expires) / 1000:.0f} s ago (trusting period "
                           f"{trusting_period_ms / 1000:.0f} s): get a fresh trusted header")


def verify_light_block(chain_id: bytes, trusted: LightBlock, untrusted: LightBlock, *,
                       now_ms: int, trusting_period_ms: int, clock_drift_ms: int = 10_000,
                       verify_batch: VerifyBatch | None = None) -> None:
    """Accept ``untrusted`` from ``trusted`` by the rules of the module docstring, or raise
    VerificationFailed, TrustExpired or NotEnoughTrust. Both must be of one crypto suite."""
    check_trust_fresh(trusted, now_ms, trusting_period_ms)
    h = untrusted.header
    if untrusted.suite is not trusted.suite:
        raise VerificationFailed(f"light block of height {h.height} is of the "
                                 f"{untrusted.suite.name} suite, the trusted chain's is "
                                 f"{trusted.suite.name}")
    if h.chain_id != chain_id:
        raise VerificationFailed(f"header of height {h.height} is for chain "
                                 f"{h.chain_id!r}, not {chain_id!r}")
    if h.height <= trusted.height:
        raise VerificationFailed(f"height {h.height} is not after the trusted height "
                                 f"{trusted.height}")
    try:
        untrusted.check_basic()
    except ProtocolError as e:
        raise VerificationFailed(str(e)) from None
    if h.time_ms < trusted.time_ms:
        raise VerificationFailed(f"header of height {h.height} is older than the trusted one")
    if h.time_ms > now_ms + clock_drift_ms:
        raise VerificationFailed(f"header of height {h.height} is from the future "
                                 f"({(h.time_ms - now_ms) / 1000:.1f} s ahead)")
    if h.height == trusted.height + 1:
        if h.validators_hash != trusted.header.next_validators_hash:
            raise VerificationFailed(f"the set of height {h.height} is not the next set the "
                                     f"trusted header {trusted.height} named")
        if h.parent_hash != trusted.hash():
            raise VerificationFailed(f"header of height {h.height} does not follow the "
                                     "trusted header (parent hash differs)")
        verify_certificate(chain_id, untrusted, None, verify_batch)
    else:
        verify_certificate(chain_id, untrusted, trusted.validators, verify_batch)
