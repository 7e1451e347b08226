"""Errors raised for peer misbehaviour (as opposed to TypeError/ValueError for API misuse)."""
from __future__ import annotations

from engine.errors import ProtocolError

__all__ = ["ConnectionLost", "FrameTooLarge", "GenesisMismatch", "HandshakeError",
           "ProtocolError"]


class HandshakeError(ProtocolError):
    """The peer failed the handshake (bad magic, bad signature, key not in the peer set)."""


class GenesisMismatch(HandshakeError):
    """The peer authenticated but holds another genesis: it belongs to another network."""


class ConnectionLost(Exception):
    """The stream can no longer be used (closed, truncated, or failed authentication)."""


class FrameTooLarge(ConnectionLost):
    """A frame header announced more than the frame limit: the stream cannot be resynchronised
    without reading the oversized body, so it is closed (and the fault counted)."""
