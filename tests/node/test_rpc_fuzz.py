"""Random requests against every RPC route of a live node: methods, path parameters, query
parameters and bodies drawn from values at and past every bound (digits past 2^63 and 2^64,
signs, spaces, non-ASCII digits, hex of the wrong length, 5,000-character strings, random
bytes, a real envelope). Every answer must be a JSON refusal or an answer, never a 5xx other
than 503 (halted, busy), and nothing may be logged with a traceback."""
from __future__ import annotations

import logging
import os
import random

import aiohttp

from engine import config
from tests.node.helpers import make_txs, run

SEED = int(os.environ.get("ENGINE_FUZZ_SEED", "20261206"))
REQUESTS = int(os.environ.get("ENGINE_FUZZ_REQUESTS", "1200"))
VALUES = ["", "0", "1", "-1", "2", "+3", "18446744073709551616", "9223372036854775807",
          "9223372036854775808", "99999999999999999999", "1" * 21, "1e3", "0x10", " 1", "1 ",
          "abc", "%00", "\u0661", "true", "false", "json", "binary", "commit", "none", "6b",
          "zz", "00" * 32, "00" * 40, "ab" * 1000, "/key", "/", "//", "/nonce", "tx.height>3",
          "x" * 5000]
ROUTES = ["/status", "/block/{}", "/blocks", "/tx/{}", "/query", "/validators",
          "/light_block/{}", "/metrics", "/tx", "/txs", "/subscribe", "/nothing/here"]
PARAMS = ["from", "limit", "wait_ms", "height", "path", "data", "prove", "format", "wait",
          "timeout_ms", "filter", "other"]


def test_random_requests_get_answers_or_refusals_never_a_failure(tmp_path, caplog):
    rng = random.Random(SEED)
    home = config.init_home(str(tmp_path / "solo"), "solo", p2p_port=0, rpc_port=0)

    async def main():
        from engine.node import Node

        node = Node(home.path)
        await node.start()
        bad, statuses = [], {}
        try:
            await node.submit_txs(make_txs("solo", 20))
            await node.wait_for_height(3, 20)
            url = node.rpc.url
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for _ in range(REQUESTS):
                    route = rng.choice(ROUTES)
                    path = route.replace("{}", rng.choice(VALUES) or "1")
                    params = {rng.choice(PARAMS): rng.choice(VALUES)
                              for _ in range(rng.randrange(4))}
                    # Waits stay short: the point is the parsing, not the waiting.
                    for name in ("wait_ms", "timeout_ms"):
                        if name in params:
                            params[name] = rng.choice(["0", "1", "x", "-5"])
                    post = route in ("/tx", "/txs") or rng.random() < 0.05
                    body = rng.choice([b"", b"\x00", rng.randbytes(rng.randrange(400)),
                                       make_txs("solo", 1)[0]]) if post else None
                    async with session.request("POST" if post else "GET", url + path,
                                               params=params, data=body) as r:
                        text = await r.text()
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        if r.status >= 500 and r.status != 503:
                            bad.append((path[:80], params, r.status, text[:200]))
        finally:
            await node.stop()
        return bad, statuses

    with caplog.at_level(logging.WARNING):
        bad, statuses = run(main(), 180)
    assert bad == [], bad[:10]
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > REQUESTS // 4, statuses
    assert sum(n for s, n in statuses.items() if s < 300) > REQUESTS // 10, statuses
    traced = [r for r in caplog.records if r.exc_info]
    assert traced == [], [(r.name, r.getMessage()[:200]) for r in traced[:5]]
