"""Issue 13, finding 4: heights outside 1..2^63-1 and non-ASCII digits are 400, never 500, and
nothing the client sends makes the server log a traceback."""
from __future__ import annotations

import asyncio
import logging
import urllib.parse

import aiohttp
import pytest

from engine.rpc.server import RpcServer
from tests.rpc.fake import FakeNode

BAD_HEIGHTS = ["9223372036854775808", str(2**64 - 1), str(2**64), "9" * 20, "9" * 21, "²",
               "٣", "0", "-1", "+1", " 1", "1.0", "0x10", ""]


def _get_all(paths: list[str]) -> list[tuple[str, int, dict]]:
    async def main():
        server = RpcServer(FakeNode(), "127.0.0.1", 0)
        await server.start()
        out = []
        try:
            async with aiohttp.ClientSession() as session:
                for path in paths:
                    async with session.get(server.url + path) as r:
                        out.append((path, r.status, await r.json()))
        finally:
            await server.stop()
        return out
    return asyncio.run(asyncio.wait_for(main(), 30))


def test_bad_heights_are_400_not_500(caplog):
    paths = [f"/block/{urllib.parse.quote(h)}" for h in BAD_HEIGHTS if h]
    paths += [f"/blocks?from={urllib.parse.quote(h)}" for h in BAD_HEIGHTS]
    paths += [f"/blocks?from=1&limit={urllib.parse.quote(h)}" for h in ("²", str(2**64), "0")]
    paths += [f"/blocks?from=1&wait_ms={urllib.parse.quote(h)}" for h in ("²", str(2**64))]
    with caplog.at_level(logging.DEBUG):
        results = _get_all(paths)
    wrong = [(p, s, b) for p, s, b in results if s != 400 and not (p == "/block/" and s == 404)]
    assert not wrong, wrong
    for _, _, body in results:
        assert body["error"].startswith("bad_"), body
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_good_heights_still_answer():
    results = _get_all(["/block/1", "/block/9223372036854775807", "/blocks?from=2&limit=1"])
    assert [s for _, s, _ in results] == [200, 404, 200]
    assert results[2][2]["blocks"] == [{"height": 2}]


@pytest.mark.parametrize("query", ["timeout_ms=²", f"timeout_ms={2**70}"])
def test_bad_timeout_is_400(query):
    async def main():
        server = RpcServer(FakeNode(), "127.0.0.1", 0)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session, \
                    session.post(f"{server.url}/tx?{query}", data=b"x") as r:
                return r.status
        finally:
            await server.stop()
    assert asyncio.run(main()) == 400
