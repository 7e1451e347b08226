"""Validator-set changes: the updates an application returns and the rule that applies them.

``finalize_block(h)`` may return ``BlockResult.validator_updates``: a sequence of
:class:`ValidatorUpdate` (public key of the chain's suite: 32-byte Ed25519, or 64-byte SM2 on an
``sm2-sm3`` chain; new power; power 0 removes the validator).
They change the set that signs height ``h + 2`` (``UPDATE_DELAY_HEIGHTS``): the header of
``h + 1`` names that set as its ``next_validators_hash``, and block ``h + 1`` itself is still
signed by the set that was announced by the header of ``h`` (CometBFT's rule). So the set of
every height is known two heights ahead: the proposer and the certificate rules of the next
height never depend on a block that is not decided yet.

:func:`apply_updates` is the one rule every node applies, and it is deterministic:

- validators that stay keep their order (their index in votes and certificate bitmaps may shift
  down when an earlier one leaves); a changed power is changed in place;
- new validators are appended in the order the updates list them;
- a batch is refused as a whole with ``ValueError`` naming the problem when it holds more than
  ``limits.validator_updates_per_block_max`` updates, the same key twice, a key that is not of
  the size of the set's keys (32 bytes on an Ed25519 chain, 64 on an SM2 one), a power outside
  ``0..limits.voting_power_total_max``, removes a key that is not in the set, or would leave a
  set that is empty, larger than ``limits.validators_max`` or heavier than
  ``limits.voting_power_total_max``.

An application that returns a refused batch has a bug every node shares (the batch is the same
everywhere): the node halts naming it, as for malformed state writes. Applications should check
their own changes with :func:`apply_updates` first (the kvstore does, refusing the transaction).
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from engine import limits
from engine.consensus.types import PUBLIC_KEY_BYTES, PUBLIC_KEY_SIZES, Validator, ValidatorSet

__all__ = ["UPDATE_DELAY_HEIGHTS", "ValidatorUpdate", "apply_updates", "decode_set",
           "encode_set"]

#: Updates returned by ``finalize_block(h)`` change the set that signs ``h + 2``.
UPDATE_DELAY_HEIGHTS = 2


@dataclass(frozen=True)
class ValidatorUpdate:
    """Set ``public_key``'s voting power to ``power`` (0 removes it, a new key adds it)."""

    public_key: bytes
    power: int


_KEY_KINDS = {32: "an Ed25519 public key", 64: "an SM2 public key"}


def check_update(update: object, where: str = "update",
                 key_bytes: int = PUBLIC_KEY_BYTES) -> ValidatorUpdate:
    """Types and ranges of one update whose key must be ``key_bytes`` long (the chain's
    suite: 32 for Ed25519, 64 for SM2); TypeError/ValueError naming ``where``."""
    if key_bytes not in PUBLIC_KEY_SIZES:
        raise ValueError(f"key_bytes must be one of {PUBLIC_KEY_SIZES}, not {key_bytes!r}")
    if not isinstance(update, ValidatorUpdate):
        raise TypeError(f"{where} must be a ValidatorUpdate, not {type(update).__name__}")
    if not isinstance(update.public_key, bytes) or len(update.public_key) != key_bytes:
        raise ValueError(f"{where}.public_key must be {key_bytes} bytes ({_KEY_KINDS[key_bytes]}"
                         f", the size of the set's keys)")
    if type(update.power) is not int or not 0 <= update.power <= limits.voting_power_total_max:
        raise ValueError(f"{where}.power must be an int in 0..{limits.voting_power_total_max}, "
                         f"not {update.power!r}")
    return update


def apply_updates(current: ValidatorSet, updates: Sequence[ValidatorUpdate]) -> ValidatorSet:
    """The set after ``updates`` (module docstring); ``current`` itself when there are none.
    Every key must have the size of ``current``'s keys (one suite per chain)."""
    if not isinstance(current, ValidatorSet):
        raise TypeError("current must be a ValidatorSet")
    updates = list(updates)
    if not updates:
        return current
    if len(updates) > limits.validator_updates_per_block_max:
        raise ValueError(f"validator updates: {len(updates)} in one block, more than "
                         f"limits.validator_updates_per_block_max "
                         f"({limits.validator_updates_per_block_max})")
    new_power: dict[bytes, int] = {}
    key_bytes = len(current.validators[0].public_key)
    for i, u in enumerate(updates):
        check_update(u, f"validator_updates[{i}]", key_bytes)
        if u.public_key in new_power:
            raise ValueError(f"validator updates: key {u.public_key.hex()} appears twice")
        new_power[u.public_key] = u.power
        if u.power == 0 and current.index_of(u.public_key) is None:
            raise ValueError(f"validator updates: cannot remove {u.public_key.hex()}, it is not "
                             f"a validator")
    out = [Validator(v.public_key, new_power.get(v.public_key, v.power))
           for v in current.validators]
    known = {v.public_key for v in current.validators}
    out += [Validator(u.public_key, u.power) for u in updates if u.public_key not in known]
    out = [v for v in out if v.power > 0]
    if not out:
        raise ValueError("validator updates would leave an empty validator set")
    if len(out) > limits.validators_max:
        raise ValueError(f"validator updates would leave {len(out)} validators, more than "
                         f"limits.validators_max ({limits.validators_max})")
    total = sum(v.power for v in out)
    if total > limits.voting_power_total_max:
        raise ValueError(f"validator updates would make the total power {total}, more than "
                         f"limits.voting_power_total_max")
    return ValidatorSet(out)


def encode_set(vset: ValidatorSet) -> bytes:
    """The stored form of a set: ``ValidatorSet.encode()`` (docs/formats.md)."""
    return vset.encode()


def decode_set(data: bytes, key_bytes: int = PUBLIC_KEY_BYTES) -> ValidatorSet:
    """A set from :func:`encode_set` whose keys are ``key_bytes`` long (the chain's suite: 32
    for Ed25519, 64 for SM2); ValueError when malformed."""
    if key_bytes not in PUBLIC_KEY_SIZES:
        raise ValueError(f"key_bytes must be one of {PUBLIC_KEY_SIZES}, not {key_bytes!r}")
    data = bytes(data)
    if len(data) < 4:
        raise ValueError("a validator set record is at least 4 bytes")
    (count,) = struct.unpack_from("<I", data)
    entry = key_bytes + 8
    if len(data) != 4 + entry * count:
        raise ValueError(f"a validator set record of {count} validators with {key_bytes}-byte "
                         f"keys is {4 + entry * count} bytes, not {len(data)}")
    return ValidatorSet([Validator(data[4 + entry * i:4 + entry * i + key_bytes],
                                   struct.unpack_from("<Q", data, 4 + entry * i + key_bytes)[0])
                         for i in range(count)])
