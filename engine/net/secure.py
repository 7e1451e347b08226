"""The authenticated, encrypted p2p stream: handshake and sealed frames.

Handshake (both sides run it at once; the dialer is the *initiator*):

1. Each side sends ``MAGIC (8) || ephemeral X25519 public key (32)`` in the clear. The magic's
   last byte names the chain's crypto suite (0 ``ed25519-blake3``, 1 ``sm2-sm3``): a peer of
   the other suite is refused right there as running another genesis, with a reason that says so.
2. ``transcript = H(b"engine/p2p/transcript/v1" || u8 len(chain_id) || chain_id ||
   initiator ephemeral || responder ephemeral)``; ``shared = X25519(own ephemeral, peer ephemeral)``.
3. ``HKDF-SHA256(shared, salt=transcript, info=b"engine/p2p/keys/v1")`` gives 64 bytes: the key
   for initiator-to-responder frames, then the key for responder-to-initiator frames.
4. Each side sends, as its first sealed frame (``AUTH_FRAME_BYTES`` = 112 sealed bytes, or 144
   with the genesis hash; a header announcing more ends the handshake before a byte of its body
   is read), ``node public key (32) || signature (64) [|| genesis hash (32)]`` where
   the signature (Ed25519, or SM2 with a 64-byte node key on an ``sm2-sm3`` chain; H is the
   suite's hash, BLAKE3 or SM3) covers ``b"engine/p2p/auth/v1" || role (0 initiator, 1 responder) ||
   transcript``. The role byte stops a peer from reflecting our own proof back at us, and signing
   the transcript binds the node key to these ephemerals (no man in the middle can splice two
   sessions). A peer whose key is not allowed is refused.

Frame: ``u32 LE ciphertext length || ChaCha20-Poly1305(key, nonce, plaintext, aad=length)``; the
nonce is a per-direction counter (4 zero bytes || u64 LE), so a replayed, reordered or dropped
frame fails authentication and ends the stream.
"""
from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.net.errors import ConnectionLost, FrameTooLarge, GenesisMismatch, HandshakeError
from engine.suite import DEFAULT, Signer, Suite

MAGIC = b"ENGP2P\x01\x00"
HELLO_BYTES = len(MAGIC) + 32
AUTH_BYTES = 32 + 64
#: The authentication frame may carry the sender's genesis hash after the signature.
GENESIS_HASH_BYTES = 32
TAG_BYTES = 16
#: The sealed authentication frame: the only frame read before the peer is authenticated.
AUTH_FRAME_BYTES = AUTH_BYTES + TAG_BYTES
#: The largest authentication frame of any suite (an SM2 node key is 64 bytes).
AUTH_FRAME_BYTES_MAX = 64 + 64 + TAG_BYTES
#: The magic's last byte for each suite (the default's magic is unchanged).
_SUITE_MAGIC_BYTE = {"ed25519-blake3": 0, "sm2-sm3": 1}
_HEADER = struct.Struct("<I")
_TRANSCRIPT_DOMAIN = b"engine/p2p/transcript/v1"
_AUTH_DOMAIN = b"engine/p2p/auth/v1"
_KEYS_INFO = b"engine/p2p/keys/v1"

__all__ = ["MAGIC", "SecureStream", "handshake", "hello_magic"]


class _Sealer:
    """One direction of a stream: a key and a frame counter used as the nonce."""

    __slots__ = ("_aead", "_counter")

    def __init__(self, key: bytes):
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def _nonce(self) -> bytes:
        nonce = b"\x00\x00\x00\x00" + self._counter.to_bytes(8, "little")
        self._counter += 1
        return nonce

    def seal(self, plaintext: bytes) -> bytes:
        header = _HEADER.pack(len(plaintext) + TAG_BYTES)
        return header + self._aead.encrypt(self._nonce(), plaintext, header)

    def open(self, header: bytes, ciphertext: bytes) -> bytes:
        return self._aead.decrypt(self._nonce(), ciphertext, header)


class SecureStream:
    """A TCP stream after the handshake: ``send`` seals a frame, ``recv`` opens the next one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 send_key: bytes, recv_key: bytes, peer_key: bytes, frame_bytes_max: int):
        self._reader = reader
        self._writer = writer
        self._out = _Sealer(send_key)
        self._in = _Sealer(recv_key)
        self.peer_key = peer_key
        self.frame_bytes_max = frame_bytes_max

    def write(self, plaintext: bytes) -> None:
        """Seal and buffer one frame; call :meth:`drain` to apply back-pressure."""
        if len(plaintext) + TAG_BYTES > self.frame_bytes_max:
            raise ValueError(f"message of {len(plaintext)} bytes exceeds frame_bytes_max")
        self._writer.write(self._out.seal(plaintext))

    def write_many(self, plaintexts: list[bytes]) -> None:
        """Seal each message as its own frame, in order, and buffer them in one write: the
        transport sends them with one system call instead of one each."""
        limit = self.frame_bytes_max - TAG_BYTES
        for p in plaintexts:
            if len(p) > limit:
                raise ValueError(f"message of {len(p)} bytes exceeds frame_bytes_max")
        self._writer.write(b"".join(map(self._out.seal, plaintexts)))

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as e:
            raise ConnectionLost(f"send failed: {e}") from e

    async def send(self, plaintext: bytes) -> None:
        self.write(plaintext)
        await self.drain()

    async def recv(self, length_max: int | None = None) -> bytes:
        """The next frame's plaintext. Raises ConnectionLost on close, truncation, an oversized
        header or a frame that fails authentication (the stream cannot be resynchronised).

        ``length_max`` (sealed bytes) tightens the frame limit for one read: the handshake
        reads the peer's authentication frame under its exact size, never the general limit.
        No error raised here chains to another exception or keeps a frame holding the body
        alive: a refused frame's buffer is freed at once, not at the next garbage collection.
        """
        limit = self.frame_bytes_max if length_max is None else length_max
        header = await _read_exactly(self._reader, _HEADER.size)
        (length,) = _HEADER.unpack(header)
        if length < TAG_BYTES or length > limit:
            raise FrameTooLarge(f"frame length {length} outside [{TAG_BYTES}, {limit}]")
        body = await _read_exactly(self._reader, length)
        try:
            return self._in.open(header, body)
        except InvalidTag:
            pass  # not "as e": the raise below must not chain to it (its frame holds the body)
        del body
        raise ConnectionLost("frame failed authentication")

    def close(self) -> None:
        self._writer.close()

    async def wait_closed(self) -> None:
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def _read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    # The error is raised after the except clauses, so it carries no __context__: chaining it
    # to IncompleteReadError would keep the partial read (up to a frame) alive with it.
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as e:
        reason = f"stream ended after {len(e.partial)} of {n} bytes"
    except (ConnectionError, OSError) as e:
        reason = f"receive failed: {e}"
    raise ConnectionLost(reason)


def _transcript(chain_id: str, initiator_eph: bytes, responder_eph: bytes,
                suite: Suite = DEFAULT) -> bytes:
    chain = chain_id.encode()
    return suite.hash(_TRANSCRIPT_DOMAIN + bytes([len(chain)]) + chain + initiator_eph + responder_eph)


def _auth_message(role: int, transcript: bytes) -> bytes:
    return _AUTH_DOMAIN + bytes([role]) + transcript



def hello_magic(suite: Suite = DEFAULT) -> bytes:
    """The 8-byte magic a node of a ``suite`` chain opens its hello with (``MAGIC`` with the
    suite's byte last)."""
    return MAGIC[:-1] + bytes([_SUITE_MAGIC_BYTE[suite.name]])

async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    node_key: Signer, chain_id: str, initiator: bool,
                    is_allowed: Callable[[bytes], bool], frame_bytes_max: int,
                    genesis_hash: bytes | None = None, suite: Suite = DEFAULT) -> SecureStream:
    """Run the handshake on a fresh TCP stream and return the sealed stream.

    Raises HandshakeError when the peer is not speaking this protocol, proves a key it does not
    hold, or holds a key ``is_allowed`` refuses; ConnectionLost when the stream ends early.
    The caller bounds the time it may take. ``suite`` is the chain's crypto suite: its hash
    makes the transcript and its signature (Ed25519 or SM2) proves the node keys.
    """
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    magic = hello_magic(suite)
    writer.write(magic + eph_pub)
    hello = await _read_exactly(reader, HELLO_BYTES)
    if hello[: len(MAGIC)] != magic:
        others = [n for n, b in _SUITE_MAGIC_BYTE.items()
                  if hello[:len(MAGIC) - 1] == MAGIC[:-1] and hello[len(MAGIC) - 1] == b]
        if others:  # the suite is part of genesis: a peer of the other suite runs another
            raise GenesisMismatch(f"peer speaks the {others[0]} crypto suite; this chain's "
                                  f"suite is {suite.name}")
        raise HandshakeError("peer did not send the engine p2p magic")
    peer_eph = hello[len(MAGIC):]
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(peer_eph))
    except ValueError as e:  # a small-order point gives an all-zero secret, which is refused
        reason = f"bad ephemeral key: {e}"
    else:
        reason = ""
    if reason:
        raise HandshakeError(reason)
    ours, theirs = (eph_pub, peer_eph) if initiator else (peer_eph, eph_pub)
    transcript = _transcript(chain_id, ours, theirs, suite)
    keys = HKDF(algorithm=hashes.SHA256(), length=64, salt=transcript,
                info=_KEYS_INFO).derive(shared)
    i2r, r2i = keys[:32], keys[32:]
    send_key, recv_key = (i2r, r2i) if initiator else (r2i, i2r)
    stream = SecureStream(reader, writer, send_key, recv_key, b"", frame_bytes_max)
    own_role, peer_role = (0, 1) if initiator else (1, 0)
    signature = node_key.sign(_auth_message(own_role, transcript))
    await stream.send(node_key.public_key + signature + (genesis_hash or b""))
    try:  # read under the auth frame's own bound: nothing larger is buffered pre-auth
        auth = await stream.recv(AUTH_FRAME_BYTES_MAX + GENESIS_HASH_BYTES)
    except ConnectionLost as e:
        reason = f"no valid authentication frame: {e}"
    else:
        reason = ""
    if reason:
        raise HandshakeError(reason)
    key_bytes = suite.public_key_bytes
    auth_bytes = key_bytes + suite.signature_bytes
    if len(auth) not in (auth_bytes, auth_bytes + GENESIS_HASH_BYTES):
        raise HandshakeError(f"authentication frame is {len(auth)} bytes, not {auth_bytes}")
    peer_key, peer_sig, peer_genesis = auth[:key_bytes], auth[key_bytes:auth_bytes], \
        auth[auth_bytes:]
    if peer_key == node_key.public_key:
        raise HandshakeError("peer presented our own node key")
    if not suite.verify(peer_key, _auth_message(peer_role, transcript), peer_sig):
        raise HandshakeError("peer's transcript signature does not verify")
    if not is_allowed(peer_key):
        raise HandshakeError(f"peer key {peer_key.hex()} is not in the peer set")
    if genesis_hash and peer_genesis and peer_genesis != genesis_hash:
        raise GenesisMismatch(f"peer {peer_key.hex()[:12]} runs another genesis (theirs "
                              f"{peer_genesis.hex()[:16]}, ours {genesis_hash.hex()[:16]}): "
                              f"every node of a network needs the same genesis.json")
    stream.peer_key = peer_key
    return stream

