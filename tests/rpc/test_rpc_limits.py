"""Issue 13, finding 6: RPC resources are bounded across requests, not only per request: a
connection cap, a deadline to start each request, bounded inflation of compressed bodies, a
budget all bodies being read share. Each refusal is counted in /metrics and logged at
WARNING, rate-limited."""
from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
import zlib

import pytest

from engine.rpc import server as srv
from engine.rpc.server import RpcServer
from tests.rpc.fake import FakeNode

MiB = 1 << 20


async def _started() -> RpcServer:
    s = RpcServer(FakeNode(), "127.0.0.1", 0)
    await s.start()
    return s


async def _request(port: int, raw: bytes, timeout_s: float = 5) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


async def _metrics(port: int) -> str:
    return (await _request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            ).decode()


def test_connection_cap(monkeypatch, caplog):
    monkeypatch.setattr(srv, "RPC_CONNECTIONS_MAX", 8)

    async def main():
        s = await _started()
        idle = [await asyncio.open_connection("127.0.0.1", s.port) for _ in range(8)]
        await asyncio.sleep(0.1)
        answer = await _request(s.port, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.1)
        metrics = await _metrics(s.port)
        await s.stop()
        return answer, metrics

    with caplog.at_level(logging.WARNING, logger="engine.rpc"):
        answer, metrics = asyncio.run(asyncio.wait_for(main(), 20))
    assert answer.startswith(b"HTTP/1.1 503") and b"connections_max" in answer
    assert 'engine_rpc_refused_total{reason="connections_max"} 1' in metrics
    assert any("refused [connections_max]" in r.getMessage() for r in caplog.records)


def test_half_sent_request_is_closed_at_the_header_deadline(monkeypatch):
    monkeypatch.setattr(srv, "RPC_HEADER_TIMEOUT_MS", 300)

    async def main():
        s = await _started()
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await _request(s.port, b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Le",
                                timeout_s=5)
        elapsed = loop.time() - started
        # An idle keep-alive connection after a response is closed as well.
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        metrics = await _metrics(s.port)
        await s.stop()
        return answer, elapsed, rest, metrics

    answer, elapsed, rest, metrics = asyncio.run(asyncio.wait_for(main(), 20))
    assert answer == b"" and elapsed < 2, (answer, elapsed)
    assert rest.startswith(b"HTTP/1.1 200")  # answered, then closed when idle
    assert 'engine_rpc_refused_total{reason="header_timeout"} 2' in metrics


def test_gzip_bomb_is_refused_without_inflating_it(monkeypatch):
    monkeypatch.setattr(srv, "RPC_BODY_BYTES_MAX", 1 * MiB)
    bomb = zlib.compress(bytes(256 * MiB), 9)  # ~250 KiB that inflates to 256 MiB
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    gz_bomb = gz.compress(bytes(64 * MiB)) + gz.flush()

    async def post(port: int, body: bytes, encoding: str) -> bytes:
        head = (f"POST /txs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: "
                f"{encoding}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        return await _request(port, head + body, timeout_s=30)

    async def main():
        s = await _started()
        await post(s.port, gz_bomb[:100], "gzip")  # warm up
        gc.collect()
        tracemalloc.start()
        try:
            answers = [await post(s.port, bomb, "deflate"), await post(s.port, gz_bomb, "gzip"),
                       await post(s.port, b"x" * 100, "br")]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        metrics = await _metrics(s.port)
        await s.stop()
        return answers, peak, metrics

    answers, peak, metrics = asyncio.run(asyncio.wait_for(main(), 60))
    assert answers[0].startswith(b"HTTP/1.1 413") and answers[1].startswith(b"HTTP/1.1 413")
    assert answers[2].startswith(b"HTTP/1.1 415")
    assert peak < 8 * MiB, peak / MiB  # the bodies' own bytes plus at most the limit
    assert 'engine_rpc_refused_total{reason="body_too_large"}' in metrics


def test_small_compressed_body_is_inflated(monkeypatch):
    envelope = b"\x01" + bytes(200)
    body = len(envelope).to_bytes(4, "little") + envelope
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)

    async def main():
        s = await _started()
        payload = gz.compress(body) + gz.flush()
        head = (f"POST /txs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: "
                f"gzip\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
        answer = await _request(s.port, head + payload)
        submitted = s.node.submitted
        await s.stop()
        return answer, submitted

    answer, submitted = asyncio.run(asyncio.wait_for(main(), 20))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert submitted == [envelope]


def test_bodies_share_one_budget(monkeypatch):
    monkeypatch.setattr(srv, "RPC_BODY_BYTES_MAX", 1 * MiB)
    monkeypatch.setattr(srv, "RPC_BODIES_BYTES_MAX", 2 * MiB)

    async def main():
        s = await _started()
        slow = []
        for _ in range(2):  # two uploads that announce 1 MiB and send a little of it
            r, w = await asyncio.open_connection("127.0.0.1", s.port)
            w.write(b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\nabc")
            await w.drain()
            slow.append((r, w))
        await asyncio.sleep(0.2)
        answer = await _request(s.port, b"POST /txs HTTP/1.1\r\nHost: x\r\nConnection: close"
                                        b"\r\nContent-Length: 8\r\n\r\n\x04\x00\x00\x00abcd")
        for _, w in slow:
            w.close()
        await asyncio.sleep(0.1)
        after = await _request(s.port, b"POST /txs HTTP/1.1\r\nHost: x\r\nConnection: close"
                                       b"\r\nContent-Length: 8\r\n\r\n\x04\x00\x00\x00abcd")
        metrics = await _metrics(s.port)
        await s.stop()
        return answer, after, metrics

    answer, after, metrics = asyncio.run(asyncio.wait_for(main(), 20))
    assert answer.startswith(b"HTTP/1.1 503") and b'"busy"' in answer, answer[:300]
    assert after.startswith(b"HTTP/1.1 200"), after[:300]  # the budget was given back
    assert 'engine_rpc_refused_total{reason="busy"} 1' in metrics


@pytest.mark.parametrize("length", [str(64 * MiB)])
def test_declared_oversized_body_is_413_before_reading(length):
    async def main():
        s = await _started()
        answer = await _request(s.port, f"POST /txs HTTP/1.1\r\nHost: x\r\nConnection: close"
                                        f"\r\nContent-Length: {length}\r\n\r\n".encode())
        await s.stop()
        return answer
    assert asyncio.run(asyncio.wait_for(main(), 20)).startswith(b"HTTP/1.1 413")
