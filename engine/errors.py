"""The errors shared by every layer: one name for "a peer sent something invalid".

API misuse raises TypeError/ValueError naming the argument; what a peer (or a damaged input from
outside) gets wrong raises :class:`ProtocolError`, the message is dropped and counted, and the
node goes on. The consensus core, the wire codec and the node all raise and catch this one class.
"""
from __future__ import annotations

__all__ = ["NodeHalted", "ProtocolError"]


class ProtocolError(Exception):
    """A peer sent something malformed, invalid or over a limit (bad signature, unknown
    validator, a frame that does not decode...). The message is dropped; state is unchanged."""


class NodeHalted(RuntimeError):
    """The node stopped itself (a broken invariant, an application failure): what was waited
    for will not happen. ``reason`` says why (``Node.status()["halted"]``)."""

    def __init__(self, reason: str):
        super().__init__(f"node halted: {reason}")
        self.reason = reason
