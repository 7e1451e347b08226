"""The RPC contract the README's "Running a network" table promises, checked over HTTP against an
in-process node (only the public surface: ``engine.node.Node``, ``engine.client.Client``,
``engine.config``): status codes, the ``{"error": code, "message": ...}`` bodies and their code
strings, plain ``POST /tx`` -> 202, ``Client.submit_tx``, the body limit and ``/blocks``' limit
of 32.

Two nodes: a lone validator that commits blocks on its own, and node0 of a 2-validator testnet
started alone, which holds half the power and so never commits (its mempool never drains, so
"full" and "not committed in time" are certain, not races).
"""
from __future__ import annotations

import asyncio
import http.client
import json
import struct
import urllib.parse

import pytest

from engine import config, crypto, tx
from engine.client import Client, ClientError
from engine.hashing import blake3

from .helpers import free_base_port, make_testnet, make_txs, run

#: README: "every bad request gets a 4xx"; the body limit of a request (a POST /txs batch).
BODY_BYTES_MAX = 32 << 20
BLOCKS_LIMIT_MAX = 32


def http_call(url: str, method: str, path: str, body: bytes | None = None,
              timeout_s: float = 30) -> tuple[int, dict]:
    """One request on its own connection: (status, JSON body)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        data = resp.read()
        assert "json" in resp.getheader("Content-Type", ""), (resp.status, data[:200])
        return resp.status, json.loads(data)
    finally:
        conn.close()


async def call(url, method, path, body=None, timeout_s=30):
    return await asyncio.to_thread(http_call, url, method, path, body, timeout_s)


async def announce_body(url: str, path: str, length: int) -> tuple[int, dict]:
    """POST headers announcing ``length`` body bytes, none sent; the status and JSON answer."""
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
                     "\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        size = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:"))
        return status, json.loads(await reader.readexactly(size))
    finally:
        writer.close()


def batch_body(envelopes: list[bytes]) -> bytes:
    """A POST /txs body as the README describes it: each envelope after its u32 LE length."""
    return b"".join(struct.pack("<I", len(e)) + e for e in envelopes)


def assert_error(answer, status: int, code: str) -> None:
    got_status, body = answer
    assert (got_status, body.get("error")) == (status, code), answer
    assert isinstance(body.get("message"), str) and body["message"], answer


def test_stalled_node_answers_408_429_413_and_every_400_code(tmp_path):
    homes = make_testnet(tmp_path, 2, chain_id="stall", mempool_txs_max=3)

    async def main():
        from engine.node import Node

        node = Node(homes[0].path)
        await node.start()
        url = homes[0].rpc_url
        try:
            txs = make_txs("stall", 6)
            # 408: admitted, never committed (half the power is missing) within timeout_ms.
            answer = await call(url, "POST", "/tx?wait=commit&timeout_ms=300", txs[0])
            assert_error(answer, 408, "timeout")
            assert blake3(txs[0]).hex() in answer[1]["message"]  # it says which tx stays
            # 400 bad_signature (while the pool has room: a batch that finds it full is
            # refused as mempool_full without its signatures being checked).
            forged = txs[5][:-1] + bytes([txs[5][-1] ^ 1])
            assert_error(await call(url, "POST", "/tx", forged), 400, "bad_signature")
            # POST /txs: per-index results; the pool holds 3, so the fourth is mempool_full.
            status, body = await call(url, "POST", "/txs", batch_body(txs[1:4]))
            assert status == 200 and (body["accepted"], body["rejected"]) == (2, 1)
            assert body["tx_ids"] == [blake3(t).hex() for t in txs[1:4]]
            assert [(e["index"], e["code"]) for e in body["errors"]] == [(2, "mempool_full")]
            # 429 mempool_full for a single transaction.
            assert_error(await call(url, "POST", "/tx", txs[4]), 429, "mempool_full")
            # 409 duplicate, 413 tx_too_large; a forged one now finds the pool full.
            assert_error(await call(url, "POST", "/tx", txs[1]), 409, "duplicate")
            assert_error(await call(url, "POST", "/tx", forged), 429, "mempool_full")
            big = tx.encode_tx(crypto.SigningKey.generate(), 0, b"k=" + b"v" * (70 << 10),
                               "stall")
            assert_error(await call(url, "POST", "/tx", big), 413, "tx_too_large")
            # The body limit: a request announcing one byte over it is refused with 413 before
            # a byte of its body is read (the node answers and closes; a client still sending
            # would see a reset, so this one sends the headers only and reads the answer).
            status, answer = await announce_body(url, "/txs", BODY_BYTES_MAX + 1)
            assert status == 413 and answer["error"] == "body_too_large" and answer["message"]
            # Every 400 code of the routes, and a JSON 404 for an unknown route.
            bad = [("POST", "/tx?wait=later", txs[5], "bad_wait"),
                   ("POST", "/tx?timeout_ms=soon", txs[5], "bad_timeout"),
                   ("POST", "/tx?wait=commit&timeout_ms=0", txs[5], "bad_timeout"),
                   ("POST", "/tx?wait=commit&timeout_ms=120001", txs[5], "bad_timeout"),
                   ("POST", "/tx", b"", "empty_body"),
                   ("POST", "/txs", b"\x05\x00", "bad_batch"),
                   ("POST", "/txs", struct.pack("<I", 9) + b"short", "bad_batch"),
                   ("POST", "/txs", b"", "bad_batch"),
                   ("GET", "/block/0", None, "bad_height"),
                   ("GET", "/block/x", None, "bad_height"),
                   ("GET", "/blocks?from=a", None, "bad_height"),
                   ("GET", "/blocks?from=0", None, "bad_height"),
                   ("GET", "/blocks?from=1&wait_ms=30001", None, "bad_wait"),
                   ("GET", "/blocks?from=1&limit=0", None, "bad_limit"),
                   ("GET", f"/blocks?from=1&limit={BLOCKS_LIMIT_MAX + 1}", None, "bad_limit"),
                   ("GET", "/tx/" + "AB" * 32, None, "bad_tx_id"),
                   ("GET", "/tx/abc", None, "bad_tx_id")]
            for method, path, body, code in bad:
                assert_error(await call(url, method, path, body), 400, code)
            assert_error(await call(url, "GET", "/block/99"), 404, "not_found")
            assert_error(await call(url, "GET", "/tx/" + "ab" * 32), 404, "not_found")
            answer = await call(url, "GET", "/no/such/route")
            assert answer[0] == 404 and answer[1]["error"] == "not_found"
            # The client carries the status and the code of an error.
            with pytest.raises(ClientError) as e:
                await asyncio.to_thread(Client(url).submit_tx, txs[4])
            assert (e.value.status, e.value.code) == (429, "mempool_full")
        finally:
            await node.stop()

    run(main(), 120)


def test_live_node_202_submit_tx_and_blocks_limit_32(tmp_path):
    base = free_base_port(2)
    home = config.init_home(str(tmp_path / "solo"), "solo", p2p_port=base, rpc_port=base + 1,
                            block_interval_ms=10)

    async def main():
        from engine.node import Node

        node = Node(home.path)
        await node.start()
        url = home.rpc_url
        client = Client(url)
        try:
            txs = make_txs("solo", 4)
            # Plain POST /tx: 202 with the tx id, before any commit.
            status, body = await call(url, "POST", "/tx", txs[0])
            assert status == 202 and body["tx_id"] == blake3(txs[0]).hex()
            assert body["code"] == "ok"
            # Client.submit_tx: the same answer, then with wait_commit the height and proof.
            got = await asyncio.to_thread(client.submit_tx, txs[1])
            assert got["tx_id"] == blake3(txs[1]).hex() and got["code"] == "ok"
            info = await asyncio.to_thread(lambda: Client(url).submit_tx(
                txs[2], wait_commit=True, timeout_ms=20_000))
            assert info["height"] >= 1 and info["proof"]["size"] >= 1
            assert (await asyncio.to_thread(Client(url).tx, blake3(txs[2])))["height"] == \
                info["height"]
            with pytest.raises(ClientError) as e:
                await asyncio.to_thread(Client(url).submit_tx, txs[2])
            assert (e.value.status, e.value.code) == (409, "duplicate")
            # /blocks returns at most 32 blocks, in order from `from`.
            await node.wait_for_height(BLOCKS_LIMIT_MAX + 3, timeout_s=60)
            status, body = await call(url, "GET", "/blocks?from=1")
            assert status == 200 and body["latest_height"] >= BLOCKS_LIMIT_MAX + 3
            assert [b["height"] for b in body["blocks"]] == list(range(1, BLOCKS_LIMIT_MAX + 1))
            status, body = await call(url, "GET", f"/blocks?from=2&limit={BLOCKS_LIMIT_MAX}")
            assert [b["height"] for b in body["blocks"]] == list(range(2, BLOCKS_LIMIT_MAX + 2))
            few = await asyncio.to_thread(Client(url).blocks, 3, limit=5)
            assert [b["height"] for b in few["blocks"]] == [3, 4, 5, 6, 7]
            assert all(len(b["hash"]) == 64 and b["num_txs"] == len(b["tx_ids"])
                       for b in body["blocks"])
        finally:
            client.close()
            await node.stop()

    run(main(), 120)


def test_malformed_http_is_counted_and_logged_without_a_traceback(tmp_path, caplog):
    """A request line or header over aiohttp's bounds, or a header line that is not one: 400,
    counted as ``bad_http`` in /metrics, one WARNING line and no traceback (aiohttp logged each
    with its whole stack before; the README promises no client makes a node log one)."""
    import logging

    base = free_base_port(2)
    home = config.init_home(str(tmp_path / "solo"), "solo", p2p_port=base, rpc_port=base + 1)
    host, port = home.rpc_url.split("//")[1].split(":")
    requests = [f"GET /block/{'9' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
                f"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 9000}\r\n\r\n".encode(),
                b"GET /status HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"]

    async def raw(request: bytes) -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
            return int(head.split(b" ", 2)[1])
        finally:
            writer.close()

    async def main():
        from engine.node import Node

        node = Node(home.path)
        await node.start()
        try:
            with caplog.at_level(logging.DEBUG):
                statuses = [await raw(r) for r in requests]
            return statuses, await asyncio.to_thread(Client(home.rpc_url).metrics)
        finally:
            await node.stop()

    statuses, metrics = run(main(), 60)
    assert statuses == [400, 400, 400]
    assert 'engine_rpc_refused_total{reason="bad_http"} 3' in metrics, metrics[-2000:]
    traced = [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]
    assert traced == [], [(r.name, r.getMessage()) for r in traced]
    assert any("refused [bad_http]" in r.getMessage() for r in caplog.records)


def test_the_http_log_counts_client_faults_of_any_message_and_passes_bugs_on(caplog):
    """aiohttp's errors without a message are counted too (the one-line note must not fail on
    them), and an exception that is not the client's goes on to aiohttp's logger with its
    traceback."""
    import logging

    from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError

    from engine.rpc.server import _HttpLog

    counts: dict[str, int] = {}
    log = _HttpLog(counts)
    with caplog.at_level(logging.DEBUG):
        log.exception("Error handling request from %s", "10.0.0.1",
                      exc_info=HttpProcessingError(code=400, message=""))
        log.exception("Error handling request from %s", "10.0.0.1",
                      exc_info=BadHttpMessage("two\nlines"))
        assert counts == {"bad_http": 2}
        assert not [r for r in caplog.records if r.exc_info]
        try:
            raise RuntimeError("our bug")
        except RuntimeError as e:
            log.exception("Unhandled exception", exc_info=e)
    (bug,) = [r for r in caplog.records if r.exc_info]
    assert bug.name == "aiohttp.server" and counts == {"bad_http": 2}
