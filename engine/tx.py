"""Signed transaction envelopes v1: encoding, decoding and batch verification.

Layout (docs/formats.md, integers little-endian):
``version u8 = 1 | sender public key 32 | nonce u64 | payload length u32 | payload | signature 64``.
The signature is Ed25519 over ``b"engine/tx/v1" || u8 len(chain_id) || chain_id || envelope
without the signature``, so a transaction signed for one chain never verifies on another. The
transaction id is BLAKE3-256 of the whole envelope.

``verify_txs`` hands the raw envelopes to the native kernel, which parses and verifies them in one
call (no Python object per transaction); a malformed envelope is simply False there, while
``decode_tx`` raises ``TxDecodeError`` (a ValueError) saying what is wrong.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from engine import _native_ed25519
from engine._args import threads_arg
from engine.crypto import SIGNATURE_BYTES, SigningKey
from engine.hashing import blake3
from engine.limits import chain_id_bytes_max

BytesLike = bytes | bytearray | memoryview

TX_VERSION = 1
TX_DOMAIN = b"engine/tx/v1"
#: version + sender + nonce + payload length
TX_HEADER_BYTES = 1 + 32 + 8 + 4
TX_PAYLOAD_BYTES_MAX = 2**32 - 1
NONCE_MAX = 2**64 - 1

_HEADER = struct.Struct("<B32sQI")

__all__ = ["Tx", "TxDecodeError", "decode_tx", "encode_tx", "sign_bytes", "verify_txs"]


class TxDecodeError(ValueError):
    """An envelope that does not follow the v1 layout."""


@dataclass(frozen=True)
class Tx:
    """A decoded envelope (not yet verified)."""

    version: int
    sender: bytes
    nonce: int
    payload: bytes
    signature: bytes
    tx_id: bytes


def _chain_id(chain_id: str | BytesLike) -> bytes:
    if isinstance(chain_id, str):
        raw = chain_id.encode("utf-8")
    elif isinstance(chain_id, (bytes, bytearray, memoryview)):
        raw = bytes(chain_id)
    else:
        raise TypeError(f"chain_id must be str or bytes, not {type(chain_id).__name__}")
    if len(raw) > chain_id_bytes_max:
        raise ValueError(f"chain_id must be at most {chain_id_bytes_max} bytes, not {len(raw)}")
    return raw


def sign_bytes(unsigned_envelope: bytes, chain_id: str | BytesLike) -> bytes:
    """The message the sender signs: domain tag, chain id and the envelope minus signature."""
    cid = _chain_id(chain_id)
    return TX_DOMAIN + bytes([len(cid)]) + cid + unsigned_envelope


def encode_tx(signing_key: SigningKey, nonce: int, payload: BytesLike,
              chain_id: str | BytesLike) -> bytes:
    """A signed v1 envelope carrying ``payload`` from ``signing_key``'s public key."""
    if not isinstance(signing_key, SigningKey):
        raise TypeError(f"signing_key must be a SigningKey, not {type(signing_key).__name__}")
    if isinstance(nonce, bool) or not isinstance(nonce, int):
        raise TypeError(f"nonce must be an int, not {type(nonce).__name__}")
    if not 0 <= nonce <= NONCE_MAX:
        raise ValueError(f"nonce must be in [0, 2**64), not {nonce}")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    body = bytes(payload)
    if len(body) > TX_PAYLOAD_BYTES_MAX:
        raise ValueError(f"payload must be at most {TX_PAYLOAD_BYTES_MAX} bytes")
    unsigned = _HEADER.pack(TX_VERSION, signing_key.public_key, nonce, len(body)) + body
    return unsigned + signing_key.sign(sign_bytes(unsigned, chain_id))


def decode_tx(data: BytesLike, *, tx_id: bytes | None = None) -> Tx:
    """Parse an envelope; raises TxDecodeError (ValueError) when it is malformed.

    ``tx_id``, when the caller already hashed the envelope (the mempool does, in one batch
    call), is taken as the id instead of hashing it again; it must be 32 bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < TX_HEADER_BYTES + SIGNATURE_BYTES:
        raise TxDecodeError(f"envelope is {len(raw)} bytes, shorter than the "
                            f"{TX_HEADER_BYTES + SIGNATURE_BYTES}-byte minimum")
    version, sender, nonce, payload_len = _HEADER.unpack_from(raw)
    if version != TX_VERSION:
        raise TxDecodeError(f"envelope version {version} is not {TX_VERSION}")
    if TX_HEADER_BYTES + payload_len + SIGNATURE_BYTES != len(raw):
        raise TxDecodeError(f"payload length {payload_len} does not match the "
                            f"{len(raw)}-byte envelope")
    payload = raw[TX_HEADER_BYTES:TX_HEADER_BYTES + payload_len]
    if tx_id is None:
        tx_id = blake3(raw)
    elif type(tx_id) is not bytes or len(tx_id) != 32:
        raise TypeError("tx_id must be 32 bytes")
    return Tx(version, sender, nonce, payload, raw[-SIGNATURE_BYTES:], tx_id)


def verify_txs(envelopes: Sequence[BytesLike], chain_id: str | BytesLike, *,
               threads: int | None = None) -> list[bool]:
    """Parse and verify every envelope natively in one call; malformed envelopes are False.

    Each verdict equals ``crypto.verify(sender, sign_bytes(...), signature)``. A non-bytes item
    raises TypeError naming its index.
    """
    return _native_ed25519.verify_txs(envelopes, _chain_id(chain_id), threads_arg(threads))
