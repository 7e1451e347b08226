"""Issue 13, finding 3: a client that resets right after connecting makes the first write of
the handshake fail (RuntimeError on uvloop's closed transport). It is counted; nothing escapes
the accept path for the loop to log as a traceback."""
from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from engine import crypto
from engine.net.peers import PeerAddress, PeerSet

uvloop = pytest.importorskip("uvloop")


def _reset_connect(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.connect(("127.0.0.1", port))
    s.close()  # RST at once


def test_reset_right_after_connect_is_counted_not_logged():
    async def main():
        loop = asyncio.get_running_loop()
        unhandled: list = []
        loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
        ps = PeerSet(node_key=crypto.SigningKey.generate(), chain_id="reset-test",
                     listen_host="127.0.0.1", listen_port=0, on_message=lambda k, m: None,
                     peers=[PeerAddress(crypto.SigningKey.generate().public_key)])
        await ps.start()
        for _ in range(100):
            _reset_connect(ps.listen_port)
        await asyncio.sleep(1.0)
        faults = dict(ps.faults)
        await ps.stop()
        return unhandled, faults

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        unhandled, faults = runner.run(main())
    assert not unhandled, unhandled[:2]
    handled = sum(faults.get(k, 0) for k in ("accept_reset", "accept_error",
                                             "handshake_refused"))
    assert handled == 100, faults


def test_write_on_a_transport_reset_before_the_handshake_is_counted():
    """The race of the report made deterministic: the transport is already closed (as after
    a reset) when the accept path first writes; uvloop raises RuntimeError there."""
    async def main():
        loop = asyncio.get_running_loop()
        unhandled: list = []
        loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
        ps = PeerSet(node_key=crypto.SigningKey.generate(), chain_id="reset-test",
                     listen_host="127.0.0.1", listen_port=0, on_message=lambda k, m: None,
                     peers=[])
        await ps.start()

        async def reset_then_accept(reader, writer):
            writer.transport.abort()
            await asyncio.sleep(0.01)  # the reset is processed: the handle is closed
            await ps._accept(reader, writer)

        server = await asyncio.start_server(reset_then_accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for _ in range(20):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
        await asyncio.sleep(0.5)
        server.close()
        faults = dict(ps.faults)
        await ps.stop()
        return unhandled, faults

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        unhandled, faults = runner.run(main())
    assert not unhandled, unhandled[:1]
    assert faults.get("accept_reset", 0) + faults.get("accept_error", 0) == 20, faults
