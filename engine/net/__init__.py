"""Peer-to-peer networking for a node (docs/architecture.md).

Layers, bottom up:

- :mod:`engine.net.secure` — the authenticated handshake (ephemeral X25519, both sides sign the
  transcript with their Ed25519 node key, HKDF-SHA256) and ChaCha20-Poly1305 frames over a TCP
  stream, all from ``cryptography``.
- :mod:`engine.net.codec` — the compact msgpack message codec with per-message limits; anything a
  peer sends that does not decode raises :class:`ProtocolError` and is dropped.
- :mod:`engine.net.peers` — the peer set: allow-listed keys, one connection per pair, reconnect
  with backoff, bounded send queues, fault counting and disconnection of repeat offenders.

Nothing a peer sends may crash the node: every failure of peer input ends in ``ProtocolError``
(drop the message, count it) or ``ConnectionLost`` (drop the connection, count it).
"""
from __future__ import annotations

from engine.net.errors import ConnectionLost, FrameTooLarge, HandshakeError, ProtocolError
from engine.net.limits import NetLimits

__all__ = ["ConnectionLost", "FrameTooLarge", "HandshakeError", "NetLimits", "ProtocolError"]
