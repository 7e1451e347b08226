"""The double-sign guard: a signer that never signs two different things at one (h, r, step).

Rule (CometBFT's privval ``CheckHRS``, extended to the whole current height): at a
(height, round, step) already signed, the stored signature is returned when the sign bytes are
identical and the request is refused otherwise; a new (height, round, step) lower than the last
one signed is refused. The guard remembers every signature of the last height it signed at,
because recovery replays the WAL of that height through the core, which asks again for each of
its earlier votes: it gets back the very same signatures, never a new one. ``state`` is what the driver persists, together with the WAL record, before
the signed message leaves the process; after a crash the driver restores it with
``SignerGuard(key, state)``. This module is the in-memory model; the storage is engine/store.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DoubleSignRefused(Exception):
    """The guard refused to sign: it would contradict something already signed."""


class Key(Protocol):
    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class SignerState:
    """The last signature made: its (height, round, step), the bytes and the signature."""

    height: int = 0
    round: int = -1
    step: int = 0
    sign_bytes: bytes = b""
    signature: bytes = b""
    #: Every (round, step, sign bytes, signature) signed at ``height``, in signing order.
    history: tuple[tuple[int, int, bytes, bytes], ...] = ()

    def hrs(self) -> tuple[int, int, int]:
        return (self.height, self.round, self.step)


class SignerGuard:
    """Signs with ``key`` under the double-sign rule; ``state`` is the record to persist."""

    __slots__ = ("key", "state")

    def __init__(self, key: Key, state: SignerState | None = None):
        self.key = key
        self.state = state if state is not None else SignerState()

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def sign(self, height: int, round: int, step: int, sign_bytes: bytes) -> bytes:
        """Sign or raise DoubleSignRefused (see the module docstring for the rule)."""
        hrs = (height, round, step)
        st = self.state
        if height == st.height:
            for r, s, b, sig in st.history:
                if (r, s) == (round, step):
                    if b == sign_bytes:
                        return sig
                    raise DoubleSignRefused(f"conflicting data at (height, round, step) {hrs}")
        if hrs == st.hrs() and sign_bytes != st.sign_bytes:
            # The last signature is persisted on its own; the history may have lost it (a
            # damaged WAL), so it is checked directly as well.
            raise DoubleSignRefused(f"conflicting data at (height, round, step) {hrs}")
        if hrs < st.hrs():
            raise DoubleSignRefused(f"(height, round, step) {hrs} is below the last signed "
                                    f"{st.hrs()}")
        signature = self.key.sign(sign_bytes)
        history = st.history if height == st.height else ()
        self.state = SignerState(height, round, step, sign_bytes, signature,
                                 history + ((round, step, sign_bytes, signature),))
        return signature
