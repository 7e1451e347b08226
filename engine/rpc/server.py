"""The node's HTTP API (aiohttp), bound to 127.0.0.1 unless configured otherwise.

The server consumes :class:`engine.rpc.api.NodeAPI` only: it never imports the node.

=====================  ==============================================================
route                  what it does
=====================  ==============================================================
POST /tx               one raw envelope as the body; ``?wait=commit`` waits for
                       inclusion (``timeout_ms``, default 30000) and returns its height
POST /txs              a batch of envelopes, each ``u32 LE length || envelope``
GET  /status           chain_id, node_id, latest_height, latest_block_hash,
                       latest_app_hash, peers, ...
GET  /block/{height}   the block with its ``hash`` and transaction ids
GET  /blocks           ``?from=H[&wait_ms=W][&limit=N]``: committed blocks from height H on
                       (height, hash, num_txs, tx_ids), waiting up to W ms (default 0,
                       at most 30000) for block H: a long poll for followers
GET  /tx/{id}          height, index, result and a Merkle inclusion proof; 404 if unknown
GET  /query            ``?path=P&data=HEX[&height=H][&prove=true]``: the application's
                       answer ``{code, codespace, log, value (hex), height, proof}``
GET  /subscribe        WebSocket: committed tx/block events matching every ``filter``
                       (``type`` or ``type.key=value``); a slow client is dropped with a
                       last ``{"error": "slow_client"}`` message and close code 1008
GET  /validators       the validator set
GET  /metrics          Prometheus text format
=====================  ==============================================================

Hashes and ids are lowercase hex. Every bad request gets a 4xx with a JSON body
``{"error": "<code>", "message": "<what was wrong>"}``; the handlers never let an exception
escape as a 500 for something the client sent.
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from engine.errors import NodeHalted
from engine.rpc.api import NodeAPI
from engine.rpc.body import split_envelopes

#: Largest request body (a /txs batch); larger bodies get 413.
RPC_BODY_BYTES_MAX = 32 << 20
WAIT_TIMEOUT_MS_DEFAULT = 30_000
WAIT_TIMEOUT_MS_MAX = 120_000
BLOCKS_WAIT_MS_MAX = 30_000
BLOCKS_LIMIT_MAX = 32
#: Envelopes one POST /txs request may carry.
RPC_BATCH_TXS_MAX = 50_000
#: WebSocket pings of /subscribe, so a vanished client is noticed.
SUBSCRIBE_HEARTBEAT_S = 15.0
_STATUS_OF_CODE = {"duplicate": 409, "mempool_full": 429, "tx_too_large": 413,
                   "halted": 503, "internal_error": 503}

__all__ = ["RPC_BATCH_TXS_MAX", "RpcServer", "make_app"]


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def _result_json(result: Any) -> dict[str, Any]:
    return {"tx_id": result.tx_id.hex(), "code": result.code, "log": result.log}


def make_app(node: NodeAPI) -> web.Application:
    routes = web.RouteTableDef()

    @routes.post("/tx")
    async def post_tx(request: web.Request) -> web.Response:
        wait = request.query.get("wait", "")
        if wait not in ("", "commit", "none"):
            return error(400, "bad_wait", "wait must be 'commit' or absent")
        try:
            timeout_ms = int(request.query.get("timeout_ms", WAIT_TIMEOUT_MS_DEFAULT))
        except ValueError:
            return error(400, "bad_timeout", "timeout_ms must be an integer")
        if not 1 <= timeout_ms <= WAIT_TIMEOUT_MS_MAX:
            return error(400, "bad_timeout", f"timeout_ms must be in 1..{WAIT_TIMEOUT_MS_MAX}")
        body = await request.read()
        if not body:
            return error(400, "empty_body", "the body must be one raw transaction envelope")
        result = await node.submit_tx(body)
        # A client re-sending a transaction to wait for it is served, not refused.
        waitable = wait == "commit" and result.code == "duplicate"
        if not result.ok and not waitable:
            return error(_STATUS_OF_CODE.get(result.code, 400), result.code,
                         result.log or result.code)
        if wait != "commit":
            return web.json_response(_result_json(result), status=202)
        try:
            info = await node.wait_for_tx(result.tx_id, timeout_ms / 1000)
        except NodeHalted as e:
            return error(503, "halted", str(e))
        if info is None:
            return error(408, "timeout", f"not committed within {timeout_ms} ms "
                                         f"(tx {result.tx_id.hex()} stays in the mempool)")
        return web.json_response(info)

    @routes.post("/txs")
    async def post_txs(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            envelopes = split_envelopes(body, RPC_BATCH_TXS_MAX)
        except ValueError as e:
            return error(400, "bad_batch", str(e))
        results = await node.submit_txs(envelopes)
        accepted = sum(r.ok for r in results)
        return web.json_response({
            "accepted": accepted, "rejected": len(results) - accepted,
            "tx_ids": [r.tx_id.hex() for r in results],
            "errors": [dict(_result_json(r), index=i) for i, r in enumerate(results)
                       if not r.ok]})

    @routes.get("/status")
    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(node.status())

    @routes.get("/block/{height}")
    async def get_block(request: web.Request) -> web.Response:
        text = request.match_info["height"]
        if not text.isdigit() or len(text) > 20 or int(text) < 1:
            return error(400, "bad_height", "height must be a positive integer")
        info = node.block_info(int(text))
        if info is None:
            return error(404, "not_found", f"no block at height {int(text)}")
        return web.json_response(info)

    @routes.get("/blocks")
    async def get_blocks(request: web.Request) -> web.Response:
        q = request.query
        try:
            start = int(q.get("from", ""))
            wait_ms = int(q.get("wait_ms", 0))
            limit = int(q.get("limit", BLOCKS_LIMIT_MAX))
        except ValueError:
            return error(400, "bad_query", "from, wait_ms and limit must be integers")
        if start < 1:
            return error(400, "bad_height", "from must be a positive height")
        if not 0 <= wait_ms <= BLOCKS_WAIT_MS_MAX:
            return error(400, "bad_wait", f"wait_ms must be in 0..{BLOCKS_WAIT_MS_MAX}")
        if not 1 <= limit <= BLOCKS_LIMIT_MAX:
            return error(400, "bad_limit", f"limit must be in 1..{BLOCKS_LIMIT_MAX}")
        blocks = await node.wait_for_blocks(start, wait_ms / 1000, limit)
        return web.json_response({"latest_height": node.latest_height, "blocks": blocks})

    @routes.get("/tx/{tx_id}")
    async def get_tx(request: web.Request) -> web.Response:
        text = request.match_info["tx_id"]
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            return error(400, "bad_tx_id", "a transaction id is 64 lowercase hex characters")
        info = node.tx_info(bytes.fromhex(text))
        if info is None:
            return error(404, "not_found", f"transaction {text} is not committed")
        return web.json_response(info)

    @routes.get("/query")
    async def get_query(request: web.Request) -> web.Response:
        q = request.query
        try:
            data = bytes.fromhex(q.get("data", ""))
        except ValueError:
            return error(400, "bad_data", "data must be hex")
        height = None
        if "height" in q:
            text = q["height"]
            if not text.isdigit() or len(text) > 20:
                return error(400, "bad_height", "height must be a non-negative integer")
            height = int(text)
        prove = q.get("prove", "false")
        if prove not in ("true", "false"):
            return error(400, "bad_prove", "prove must be true or false")
        return web.json_response(node.query(q.get("path", ""), data, height, prove == "true"))

    @routes.get("/subscribe")
    async def get_subscribe(request: web.Request) -> web.StreamResponse:
        try:
            sub = node.subscribe(request.query.getall("filter", []))
        except ValueError as e:
            return error(400, "bad_filter", str(e))
        ws = web.WebSocketResponse(heartbeat=SUBSCRIBE_HEARTBEAT_S)
        await ws.prepare(request)
        reader = asyncio.ensure_future(_drain(ws))
        try:
            while True:
                getter = asyncio.ensure_future(sub.get())
                await asyncio.wait([getter, reader], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():  # the client went away
                    getter.cancel()
                    break
                message = getter.result()
                if message is None:
                    reason = sub.reason or "closed"
                    await ws.send_json({"error": reason.split(":")[0], "message": reason})
                    await ws.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION,
                                   message=reason[:120].encode())
                    break
                await ws.send_json(message)
        except ConnectionError:
            pass  # the client went away mid-send
        finally:
            sub.close("client gone")
            reader.cancel()
        return ws

    @routes.get("/validators")
    async def get_validators(request: web.Request) -> web.Response:
        return web.json_response(node.validators_info())

    @routes.get("/metrics")
    async def get_metrics(request: web.Request) -> web.Response:
        data = node.metrics_text()
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def json_errors(request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPException as e:  # 404 of unknown routes, 405, 413 ...
            if e.status >= 400:
                return error(e.status, e.reason.lower().replace(" ", "_"),
                             f"{request.method} {request.path}: {e.reason}")
            raise
        except Exception as e:  # noqa: BLE001 - a bug of ours still answers in JSON
            return error(500, "internal_error", f"{request.method} {request.path}: {e!r}")

    app = web.Application(middlewares=[json_errors], client_max_size=RPC_BODY_BYTES_MAX)
    app.add_routes(routes)
    return app


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what a subscriber sends, until it closes."""
    async for _ in ws:
        pass


class RpcServer:
    """Runs :func:`make_app` for a node on its configured address."""

    def __init__(self, node: NodeAPI, host: str, port: int):
        self.node, self.host, self.port = node, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(make_app(self.node), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
