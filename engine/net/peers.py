"""The peer set: who we talk to, one authenticated connection per pair, and fault accounting.

Only keys in the configured peer set may connect. To keep exactly one connection per pair
without a race, a node dials the peers whose key sorts above its own and accepts the others;
an inbound connection from a peer that is already connected replaces the old one (the peer
restarted). Dials retry with exponential backoff and jitter.

Each connection has a bounded send queue drained by one writer task (which writes everything
queued before one ``drain``, so a burst of messages costs one syscall) and one reader task that
decodes frames and hands messages to ``on_message``. A message that fails to decode is dropped
and counted; after ``peer_faults_max`` such faults the peer is disconnected. A frame that fails
authentication or a truncated stream ends the connection at once.

Inbound handshakes hold a slot each until they finish or time out. Slots are attributed: one
source address holds at most ``pending_handshakes_per_source_max`` of them, and strangers
together at most ``pending_handshakes_max - pending_handshakes_reserved``; the reserved slots
serve only addresses that configured peers live at (resolved at start), so idle sockets from
elsewhere cannot lock a restarted validator out. Every refusal is counted by reason in
``faults`` (``/metrics``: ``engine_peer_faults``) and logged at WARNING, rate-limited.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.net import codec
from engine.net.errors import (
    ConnectionLost,
    FrameTooLarge,
    GenesisMismatch,
    HandshakeError,
    ProtocolError,
)
from engine.net.limits import NetLimits
from engine.net.secure import TAG_BYTES, SecureStream, handshake
from engine.ratelog import RateLimitedLog
from engine.suite import DEFAULT, Signer, Suite, SuiteMismatch

log = logging.getLogger("engine.net")
_refusals = RateLimitedLog(log)

MessageHandler = Callable[[bytes, codec.Message], None]
PeerHandler = Callable[[bytes], None]

__all__ = ["PeerAddress", "PeerSet"]


@dataclass(frozen=True)
class PeerAddress:
    """A peer's node key and, when we should dial it, its host and port."""

    node_key: bytes
    host: str | None = None
    port: int | None = None


@dataclass
class _Peer:
    stream: SecureStream
    queue: asyncio.Queue
    tasks: list = field(default_factory=list)
    faults: int = 0


class PeerSet:
    """Connections to the allowed peers; ``send``/``broadcast`` queue encoded messages."""

    def __init__(self, *, node_key: Signer, chain_id: str, listen_host: str,
                 listen_port: int, peers: list[PeerAddress], on_message: MessageHandler,
                 on_connect: PeerHandler | None = None,
                 on_disconnect: PeerHandler | None = None, limits: NetLimits | None = None,
                 genesis_hash: bytes | None = None, suite: Suite = DEFAULT,
                 dial_all: bool = False):
        if len(node_key.public_key) != suite.public_key_bytes:
            # A key of the other suite would sign handshakes every peer refuses (a peer set
            # built without the chain's suite once did exactly that, silently).
            raise SuiteMismatch(f"node_key is a {len(node_key.public_key)}-byte key but the "
                                f"suite {suite.name} takes {suite.public_key_bytes}-byte keys")
        self.node_key = node_key
        #: The chain's crypto suite: the node key's signature and the handshake's transcript hash.
        self.suite = suite
        self.chain_id = chain_id
        #: Compared in the handshake: a peer with another genesis is refused, loudly.
        self.genesis_hash = genesis_hash
        self.listen_host = listen_host
        self.listen_port = listen_port
        #: Dial every configured peer, not only those whose key sorts above ours (a joining
        #: node that cannot wait for peers' reconnect back-off; it dials only while not
        #: connected, so a peer that dials first is not dialled again).
        self.dial_all = dial_all
        self.limits = limits or NetLimits()
        self._allowed = {p.node_key: p for p in peers if p.node_key != node_key.public_key}
        #: The configured peers (``follow`` may drop some from ``_allowed`` and add others).
        self._configured = dict(self._allowed)
        self._on_message = on_message
        self._on_connect = on_connect or (lambda key: None)
        self._on_disconnect = on_disconnect or (lambda key: None)
        self._peers: dict[bytes, _Peer] = {}
        self._server: asyncio.AbstractServer | None = None
        self._dialers: list[asyncio.Task] = []
        self._pending_handshakes = 0
        self._pending_strangers = 0
        self._pending_by_source: Counter[str] = Counter()
        #: Addresses configured peers live at (their inbound handshakes use reserved slots).
        self._configured_sources: set[str] = set()
        self._closing = False
        #: Counters by reason: refused handshakes, dropped messages, disconnects, queue drops.
        self.faults: Counter[str] = Counter()
        self.messages_in: Counter[str] = Counter()

    # ----------------------------------------------------------------- life cycle
    async def start(self) -> None:
        await self._resolve_configured_sources()
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.listen_port,
            limit=2 ** 16, reuse_address=True)
        if self.listen_port == 0:  # tests bind an ephemeral port
            self.listen_port = self._server.sockets[0].getsockname()[1]
        own = self.node_key.public_key
        for peer in self._allowed.values():
            if peer.host and peer.port and (peer.node_key > own or self.dial_all):
                self._dialers.append(asyncio.create_task(self._dial_loop(peer)))

    async def stop(self) -> None:
        self._closing = True
        for task in self._dialers:
            task.cancel()
        if self._server is not None:
            self._server.close()
        for key in list(self._peers):
            self._drop(key)
        await asyncio.gather(*self._dialers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ----------------------------------------------------------------- sending
    def connected(self) -> list[bytes]:
        return list(self._peers)

    #: Test-only fault injection (engine/net/chaos.py), set by engine.faults.hooks; None in
    #: every real configuration.
    chaos = None

    def send(self, peer_key: bytes, message: bytes) -> bool:
        """Queue an encoded message for one peer; False when not connected or its queue is full."""
        if self.chaos is not None:  # test-only chaos layer
            return self.chaos.intercept(peer_key, message, self._send_now)
        return self._send_now(peer_key, message)

    def _send_now(self, peer_key: bytes, message: bytes) -> bool:
        peer = self._peers.get(peer_key)
        if peer is None:
            return False
        if len(message) + TAG_BYTES > self.limits.frame_bytes_max:
            self.faults["send_oversized"] += 1  # our bug: never let it reach the writer task
            log.error("not sending a %d-byte message: over frame_bytes_max", len(message))
            return False
        try:
            peer.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.faults["send_queue_full"] += 1
            return False
        return True

    def broadcast(self, message: bytes) -> int:
        """Queue an encoded message for every connected peer; returns how many took it."""
        return sum(self.send(key, message) for key in list(self._peers))

    def follow(self, admitted: set[bytes], removed: set[bytes]) -> None:
        """The peer set follows the validator set (engine/node/valset.py ``PeerFollower``):
        ``admitted`` node keys (validators that joined after start, known by key only) may
        connect to us; ``removed`` ones (validators that left) are disconnected, no longer
        dialled and refused. Keys configured with an address get their dialer back when
        admitted again."""
        own = self.node_key.public_key
        configured = self._configured
        for key in admitted - removed:
            if key == own or key in self._allowed:
                continue
            peer = configured.get(key, PeerAddress(key))
            self._allowed[key] = peer
            log.info("peer set: admitting validator %s", key.hex()[:12])
            if peer.host and peer.port and key > own and self._server is not None \
                    and not self._closing:
                self._dialers.append(asyncio.create_task(self._dial_loop(peer)))
        for key in removed:
            if self._allowed.pop(key, None) is not None:
                self.faults["peer_removed"] += 1
                log.info("peer set: dropping %s (no longer a validator)", key.hex()[:12])
                self._drop(key)

    def penalize(self, peer_key: bytes, reason: str) -> None:
        """Count a fault found above this layer (e.g. a vote with a bad signature)."""
        peer = self._peers.get(peer_key)
        self.faults[reason] += 1
        if peer is not None:
            peer.faults += 1
            if peer.faults >= self.limits.peer_faults_max:
                self.faults["disconnect_faults"] += 1
                log.warning("disconnecting %s after %d faults", peer_key.hex()[:12], peer.faults)
                self._drop(peer_key)

    # ----------------------------------------------------------------- connections
    async def _resolve_configured_sources(self) -> None:
        loop = asyncio.get_running_loop()
        for peer in self._allowed.values():
            if not peer.host:
                continue
            try:
                infos = await loop.getaddrinfo(peer.host, None, type=socket.SOCK_STREAM)
            except OSError as e:
                log.warning("cannot resolve peer host %s: %s", peer.host, e)
                continue
            for info in infos:
                self._configured_sources.add(_normal_ip(str(info[4][0])))

    def _claim_slot(self, source: str) -> str | None:
        """Take a pending-handshake slot for ``source``; the refusal reason when none is free."""
        lim = self.limits
        if self._pending_handshakes >= lim.pending_handshakes_max:
            return "handshake_busy"
        configured = source in self._configured_sources
        per_source = (lim.pending_handshakes_reserved if configured
                      else lim.pending_handshakes_per_source_max)
        if self._pending_by_source[source] >= per_source:
            return "handshake_busy_source"
        if not configured and self._pending_strangers >= (
                lim.pending_handshakes_max - lim.pending_handshakes_reserved):
            return "handshake_busy"
        self._pending_handshakes += 1
        self._pending_by_source[source] += 1
        if not configured:
            self._pending_strangers += 1
        return None

    def _release_slot(self, source: str) -> None:
        self._pending_handshakes -= 1
        self._pending_by_source[source] -= 1
        if self._pending_by_source[source] <= 0:
            del self._pending_by_source[source]
        if source not in self._configured_sources:
            self._pending_strangers -= 1

    def _refuse(self, reason: str, source: str, detail: str) -> None:
        self.faults[reason] += 1
        _refusals.warning(reason, "inbound p2p connection from %s: %s", source, detail)

    async def _dial_loop(self, peer: PeerAddress) -> None:
        delay_ms = self.limits.reconnect_delay_ms_min
        while not self._closing and peer.node_key in self._allowed:
            if peer.node_key not in self._peers:
                try:
                    await self._dial(peer)
                    delay_ms = self.limits.reconnect_delay_ms_min
                except GenesisMismatch as e:
                    self.faults["genesis_mismatch"] += 1
                    log.error("refusing %s:%s: %s", peer.host, peer.port, e)
                    delay_ms = self.limits.reconnect_delay_ms_max
                except (OSError, ConnectionLost, HandshakeError, asyncio.TimeoutError,
                        RuntimeError) as e:  # RuntimeError: a write on a reset transport
                    log.debug("dial %s:%s failed: %s", peer.host, peer.port, e)
                    delay_ms = min(delay_ms * 2, self.limits.reconnect_delay_ms_max)
            await asyncio.sleep(delay_ms * random.uniform(0.5, 1.0) / 1000)

    async def _dial(self, peer: PeerAddress) -> None:
        timeout_s = self.limits.handshake_timeout_ms / 1000
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(peer.host, peer.port, limit=2 ** 16), timeout_s)
        try:
            stream = await _within(self._handshake(reader, writer, True), timeout_s)
        except BaseException:
            writer.close()
            raise
        if stream.peer_key != peer.node_key:
            stream.close()
            raise HandshakeError("the peer at that address holds a different key")
        self._attach(stream)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One inbound connection. Nothing raised here may escape: asyncio would log a
        traceback per connection, which a stranger could repeat until the disk is full."""
        try:
            await self._accept_one(reader, writer)
        except Exception as e:  # noqa: BLE001 - counted and logged rate-limited instead
            self._refuse("accept_error", _source_of(writer), f"{type(e).__name__}: {e}")
            writer.close()

    async def _accept_one(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.close()
            return
        source = _source_of(writer)
        refused = self._claim_slot(source)
        if refused is not None:
            self._refuse(refused, source, f"{self._pending_handshakes} handshakes pending, "
                         f"{self._pending_by_source[source]} from this address")
            writer.close()
            return
        try:
            stream = await _within(self._handshake(reader, writer, False),
                                   self.limits.handshake_timeout_ms / 1000)
        except (HandshakeError, ConnectionLost, asyncio.TimeoutError, OSError) as e:
            if isinstance(e, GenesisMismatch):
                self.faults["genesis_mismatch"] += 1
                log.error("refused inbound connection: %s", e)
            self._refuse("handshake_refused", source, str(e) or type(e).__name__)
            writer.close()
            return
        except RuntimeError as e:  # the client reset the connection before our first write
            self._refuse("accept_reset", source, str(e))
            writer.close()
            return
        finally:
            self._release_slot(source)
        if self._closing:
            stream.close()
            return
        self._attach(stream)

    def _handshake(self, reader, writer, initiator: bool):
        return handshake(reader, writer, node_key=self.node_key, chain_id=self.chain_id,
                         initiator=initiator, is_allowed=self._allowed.__contains__,
                         frame_bytes_max=self.limits.frame_bytes_max,
                         genesis_hash=self.genesis_hash, suite=self.suite)

    def _attach(self, stream: SecureStream) -> None:
        key = stream.peer_key
        if key in self._peers:  # the peer reconnected: its old connection is dead to it
            self._drop(key)
        peer = _Peer(stream, asyncio.Queue(self.limits.send_queue_messages_max))
        self._peers[key] = peer
        peer.tasks = [asyncio.create_task(self._read_loop(key, peer)),
                      asyncio.create_task(self._write_loop(key, peer))]
        log.info("connected to %s", key.hex()[:12])
        self._on_connect(key)

    def _drop(self, key: bytes, peer: _Peer | None = None) -> None:
        current = self._peers.get(key)
        if peer is not None and current is not peer:
            peer.stream.close()  # an older connection of a peer that has since reconnected
            return
        if current is None:
            return
        del self._peers[key]
        current.stream.close()
        for task in current.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if not self._closing:
            self._on_disconnect(key)

    async def _read_loop(self, key: bytes, peer: _Peer) -> None:
        try:
            while True:
                data = await peer.stream.recv()
                try:
                    message = codec.decode(data, self.limits)
                except ProtocolError as e:
                    log.debug("dropped message from %s: %s", key.hex()[:12], e)
                    self.penalize(key, "malformed_message")
                    if key not in self._peers:
                        return
                    continue
                self.messages_in[message.name] += 1
                try:
                    self._on_message(key, message)
                except Exception:  # our bug, not the peer's: log it loudly, keep the link
                    log.exception("handler failed on %s from %s", message.name, key.hex()[:12])
                    self.faults["handler_error"] += 1
        except FrameTooLarge as e:
            self.faults["oversized_frame"] += 1
            log.warning("dropping %s: %s", key.hex()[:12], e)
        except ConnectionLost as e:
            self.faults["connection_lost"] += 1
            log.info("connection to %s lost: %s", key.hex()[:12], e)
        self._drop(key, peer)

    async def _write_loop(self, key: bytes, peer: _Peer) -> None:
        try:
            queue = peer.queue
            while True:
                # Everything queued meanwhile goes out in one write (one send per wake-up).
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                peer.stream.write_many(batch)
                await peer.stream.drain()
        except ConnectionLost:
            self._drop(key, peer)


def _normal_ip(address: str) -> str:
    """An IP address in one spelling (IPv4-mapped IPv6 as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _source_of(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    if isinstance(peername, (tuple, list)) and peername:
        return _normal_ip(str(peername[0]))
    return "?"


async def _within(coro, timeout_s: float):
    """``await coro`` bounded in time. Not ``wait_for``: its task keeps a failed handshake's
    exception, traceback and stream (with its read buffer) in a reference cycle until a full
    garbage collection; ``asyncio.timeout`` runs the coroutine in place (Python >= 3.11)."""
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:  # Python 3.10
        return await asyncio.wait_for(coro, timeout_s)
    async with timeout(timeout_s):
        return await coro
