"""Handshake and sealed frames over real sockets on 127.0.0.1."""
from __future__ import annotations

import asyncio
import os

import pytest

from engine import crypto
from engine.net import codec
from engine.net.errors import ConnectionLost, HandshakeError, ProtocolError
from engine.net.limits import NetLimits
from engine.net.secure import MAGIC, handshake

CHAIN = "test-chain"


def run(coro, timeout_s: float = 10):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def _pair(server_key, client_key, *, server_allows, client_allows, chain_ids=(CHAIN, CHAIN),
                frame_bytes_max=1 << 20):
    """Handshake a client and a server; returns (client result, server result) — each a
    SecureStream or the exception raised."""
    results: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_conn(reader, writer):
        try:
            s = await handshake(reader, writer, node_key=server_key, chain_id=chain_ids[0],
                                initiator=False, is_allowed=server_allows,
                                frame_bytes_max=frame_bytes_max)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            s = e
            writer.close()  # as the peer set does on a refused handshake
        results.set_result(s)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        c = await handshake(reader, writer, node_key=client_key, chain_id=chain_ids[1],
                            initiator=True, is_allowed=client_allows,
                            frame_bytes_max=frame_bytes_max)
    except Exception as e:  # noqa: BLE001
        c = e
    s = await results
    server.close()
    return c, s, server


def test_handshake_and_frames_roundtrip():
    a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()

    async def main():
        c, s, _ = await _pair(a, b, server_allows=lambda k: k == b.public_key,
                                   client_allows=lambda k: k == a.public_key)
        assert c.peer_key == a.public_key and s.peer_key == b.public_key
        payloads = [b"", b"x", os.urandom(70000)]
        for p in payloads:
            await c.send(p)
        got = [await s.recv() for _ in payloads]
        assert got == payloads
        await s.send(b"back")
        assert await c.recv() == b"back"
        c.close()
        with pytest.raises(ConnectionLost):
            await s.recv()
        s.close()
    run(main())


def test_write_many_sends_each_message_as_its_own_frame_in_one_write():
    a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()

    async def main():
        c, s, _ = await _pair(a, b, server_allows=lambda k: k == b.public_key,
                                   client_allows=lambda k: k == a.public_key,
                                   frame_bytes_max=100_000)
        writes: list[bytes] = []
        real = c._writer.write
        c._writer.write = lambda data: (writes.append(bytes(data)), real(data))[1]
        payloads = [b"one", b"", os.urandom(5000), b"four"]
        c.write_many(payloads)
        await c.drain()
        await c.send(b"after")  # the frame counter went on in step
        assert [await s.recv() for _ in range(5)] == payloads + [b"after"]
        assert len(writes) == 2 and len(writes[0]) == sum(4 + 16 + len(p) for p in payloads)
        with pytest.raises(ValueError, match="frame_bytes_max"):
            c.write_many([b"ok", bytes(100_000)])
        assert len(writes) == 2  # refused before anything was sealed or written
        c.close()
        s.close()
    run(main())


def test_unknown_key_is_refused():
    a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()
    other = crypto.SigningKey.generate().public_key

    async def main():
        c, s, _ = await _pair(a, b, server_allows=lambda k: k == other,
                              client_allows=lambda k: True)
        assert isinstance(s, HandshakeError) and "not in the peer set" in str(s)
        # The client finished its side, but the server never accepts frames from it.
        if not isinstance(c, Exception):
            await c.send(b"hello")
            with pytest.raises(ConnectionLost):
                await c.recv()
    run(main())


def test_chain_id_mismatch_fails_authentication():
    a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()

    async def main():
        c, s, _ = await _pair(a, b, server_allows=lambda k: True, client_allows=lambda k: True,
                              chain_ids=(CHAIN, "other-chain"))
        assert isinstance(s, HandshakeError) and isinstance(c, HandshakeError)
    run(main())


async def _server_result(data: bytes, *, close: bool = True):
    key = crypto.SigningKey.generate()
    results: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_conn(reader, writer):
        try:
            r = await handshake(reader, writer, node_key=key, chain_id=CHAIN, initiator=False,
                                is_allowed=lambda k: True, frame_bytes_max=1 << 20)
        except Exception as e:  # noqa: BLE001
            r = e
        results.set_result(r)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    _, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    writer.write(data)
    await writer.drain()
    if close:
        writer.close()
    r = await results
    server.close()
    return r


@pytest.mark.parametrize("data", [b"", os.urandom(7), os.urandom(40), os.urandom(4096),
                                  MAGIC + bytes(32), MAGIC + os.urandom(32) + os.urandom(200)])
def test_random_or_truncated_handshake_bytes_are_refused(data):
    r = run(_server_result(data))
    assert isinstance(r, (HandshakeError, ConnectionLost)), r


def test_oversized_frame_header_ends_stream_and_tampered_frame_fails():
    a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()

    async def main():
        c, s, _ = await _pair(a, b, server_allows=lambda k: True, client_allows=lambda k: True,
                              frame_bytes_max=1024)
        with pytest.raises(ValueError, match="frame_bytes_max"):
            c.write(bytes(2000))
        # A raw header announcing more than the limit: the receiver gives up on the stream.
        c._writer.write((10**6).to_bytes(4, "little"))
        await c._writer.drain()
        with pytest.raises(ConnectionLost, match="outside"):
            await s.recv()
    run(main())

    async def tampered():
        c, s, _ = await _pair(a, b, server_allows=lambda k: True, client_allows=lambda k: True)
        frame = bytearray(c._out.seal(b"payload"))
        frame[-1] ^= 1
        c._writer.write(bytes(frame))
        await c._writer.drain()
        with pytest.raises(ConnectionLost, match="authentication"):
            await s.recv()
    run(tampered())


def test_codec_roundtrip_and_limits():
    lim = NetLimits(txs_per_message_max=3, tx_bytes_max=100)
    m = codec.decode(codec.encode(codec.TXS, [b"a", b"b"]), lim)
    assert m.kind == codec.TXS and m.fields == ([b"a", b"b"],)
    m = codec.decode(codec.encode(codec.STATUS, 5, bytes(32)), lim)
    assert m.fields == (5, bytes(32))
    bad = [
        b"", b"\xc1", os.urandom(1),
        codec.encode(codec.TXS, [b"a"] * 4),            # too many items
        codec.encode(codec.TXS, [b"x" * 101]),          # oversized item
        codec.encode(codec.TXS, []),                    # empty batch
        codec.encode(codec.TXS, ["text"]),              # wrong item type
        codec.encode(codec.STATUS, -1, b""),            # negative height
        codec.encode(codec.STATUS, 1, b"short"),        # bad hash
        codec.encode(codec.GET_BLOCKS, 0, 1),           # height 0
        codec.encode(codec.BLOCKS, [[1, b"b"]]),        # missing certificate
        __import__("msgpack").packb([99, 1]),           # unknown kind
        __import__("msgpack").packb({"a": 1}),          # not an array
    ]
    for data in bad:
        with pytest.raises(ProtocolError):
            codec.decode(data, lim)
    for _ in range(300):
        try:
            codec.decode(os.urandom(64), lim)
        except ProtocolError:
            pass
