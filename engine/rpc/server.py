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
GET  /validators       the validator set
GET  /metrics          Prometheus text format
=====================  ==============================================================

Hashes and ids are lowercase hex. Every bad request gets a 4xx with a JSON body
``{"error": "<code>", "message": "<what was wrong>"}``; the handlers never let an exception
escape as a 500 for something the client sent.
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from engine.rpc.api import NodeAPI
from engine.ratelog import RateLimitedLog
from engine.rpc.body import split_envelopes

log = logging.getLogger("engine.rpc")
_refusals = RateLimitedLog(log)

#: Largest request body (a /txs batch); larger bodies get 413.
RPC_BODY_BYTES_MAX = 32 << 20
WAIT_TIMEOUT_MS_DEFAULT = 30_000
WAIT_TIMEOUT_MS_MAX = 120_000
BLOCKS_WAIT_MS_MAX = 30_000
BLOCKS_LIMIT_MAX = 32
#: Envelopes one POST /txs request may carry.
RPC_BATCH_TXS_MAX = 50_000
_STATUS_OF_CODE = {"duplicate": 409, "mempool_full": 429, "tx_too_large": 413}
#: Heights are u64 on the wire and int64 in the store: anything above is no height.
HEIGHT_MAX = (1 << 63) - 1

__all__ = ["RPC_BATCH_TXS_MAX", "RpcServer", "make_app"]

#: Per-app counts of refused or failed requests by reason (appended to ``/metrics``).
REFUSALS = web.AppKey("refusals", dict)


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def parse_int(text: str, name: str, low: int, high: int) -> int:
    """A decimal integer of ASCII digits in [low, high]; ValueError naming ``name`` otherwise
    (``int()`` alone takes '²'-like digits past ``isdigit`` badly and any size)."""
    if not (0 < len(text) <= 20 and text.isascii() and text.isdigit()):
        raise ValueError(f"{name} must be an integer in {low}..{high}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}")
    return value


def _refusals_text(counts: dict[str, int]) -> bytes:
    """The RPC server's own counters in the Prometheus text format."""
    lines = ["# HELP engine_rpc_refused_total Refused or failed RPC requests and connections",
             "# TYPE engine_rpc_refused_total counter"]
    lines += [f'engine_rpc_refused_total{{reason="{k}"}} {v}' for k, v in sorted(counts.items())]
    return ("\n".join(lines) + "\n").encode()


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
            timeout_ms = parse_int(request.query.get("timeout_ms", str(WAIT_TIMEOUT_MS_DEFAULT)),
                                   "timeout_ms", 1, WAIT_TIMEOUT_MS_MAX)
        except ValueError as e:
            return error(400, "bad_timeout", str(e))
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
        info = await node.wait_for_tx(result.tx_id, timeout_ms / 1000)
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
        try:
            height = parse_int(request.match_info["height"], "height", 1, HEIGHT_MAX)
        except ValueError as e:
            return error(400, "bad_height", str(e))
        info = node.block_info(height)
        if info is None:
            return error(404, "not_found", f"no block at height {height}")
        return web.json_response(info)

    @routes.get("/blocks")
    async def get_blocks(request: web.Request) -> web.Response:
        q = request.query
        try:
            start = parse_int(q.get("from", ""), "from", 1, HEIGHT_MAX)
        except ValueError as e:
            return error(400, "bad_height", str(e))
        try:
            wait_ms = parse_int(q.get("wait_ms", "0"), "wait_ms", 0, BLOCKS_WAIT_MS_MAX)
        except ValueError as e:
            return error(400, "bad_wait", str(e))
        try:
            limit = parse_int(q.get("limit", str(BLOCKS_LIMIT_MAX)), "limit", 1,
                              BLOCKS_LIMIT_MAX)
        except ValueError as e:
            return error(400, "bad_limit", str(e))
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

    @routes.get("/validators")
    async def get_validators(request: web.Request) -> web.Response:
        return web.json_response(node.validators_info())

    @routes.get("/metrics")
    async def get_metrics(request: web.Request) -> web.Response:
        data = node.metrics_text() + _refusals_text(request.app[REFUSALS])
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
        except Exception as e:  # noqa: BLE001 - our bug: a 500, counted, logged rate-limited
            counts = request.app[REFUSALS]
            counts["internal_error"] = counts.get("internal_error", 0) + 1
            if _refusals.warning("internal_error", "%s %s: %s: %s", request.method,
                                 request.path, type(e).__name__, e):
                log.debug("internal error detail", exc_info=e)
            return error(500, "internal_error", "the node failed to answer this request")

    app = web.Application(middlewares=[json_errors], client_max_size=RPC_BODY_BYTES_MAX)
    app.add_routes(routes)
    app[REFUSALS] = {}
    return app


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
