"""Signatures verified in batches and remembered, so the core's own check is a set lookup.

Peer input reaches the WAL only once it is known to be signed by a validator: the router and
block sync verify each message's signatures in one batch call first (and tell the signature
observer what was accepted); the core, which checks every signature again through
:meth:`VerifiedSignatures.verify`, then finds them here. Bounded by
``limits.preverified_signatures_max`` and emptied at every commit.
"""
from __future__ import annotations

from collections.abc import Sequence

from engine import limits
from engine.node.ports import SignatureObserver
from engine.suite import DEFAULT, Suite

__all__ = ["VerifiedSignatures"]


class VerifiedSignatures:
    def __init__(self, observer: SignatureObserver, suite: Suite = DEFAULT):
        self.observer = observer
        self.suite = suite
        self._verified: set[tuple[bytes, bytes, bytes]] = set()

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """The core's verify: the last batch's answer when it covered this signature, else one
        native verification."""
        key = (public_key, message, signature)
        if key in self._verified:
            self._verified.discard(key)
            return True
        return self.suite.verify(public_key, message, signature)

    def verify_batch(self, public_keys: Sequence[bytes], messages: Sequence[bytes],
                     signatures: Sequence[bytes]) -> list[bool]:
        """One batch verification; the valid ones are remembered and observed."""
        verdicts = self.suite.verify_batch(public_keys, messages, signatures)
        if len(self._verified) > limits.preverified_signatures_max:
            self._verified.clear()  # unused entries of a stuck height
        self._verified.update(t for t, ok in zip(zip(public_keys, messages, signatures),
                                                 verdicts) if ok)
        self.observer.received(public_keys, messages, verdicts)
        return verdicts

    def clear(self) -> None:
        self._verified.clear()
