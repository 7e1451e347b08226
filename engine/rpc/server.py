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
GET  /block/{height}   the block with its ``hash`` and transaction ids; 404 ``pruned`` with
                       ``earliest_height`` below the earliest height held
GET  /blocks           ``?from=H[&wait_ms=W][&limit=N]``: committed blocks from height H on
                       (height, hash, num_txs, tx_ids), waiting up to W ms (default 0,
                       at most 30000) for block H: a long poll for followers
GET  /tx/{id}          height, index, result and a Merkle inclusion proof; 404 if unknown
GET  /query            ``?path=P&data=HEX[&height=H][&prove=true]``: the application's
                       answer ``{code, codespace, log, value (hex), height, proof}``
GET  /subscribe        WebSocket: committed tx/block events matching every ``filter``
                       (``type`` or ``type.key=value``); a slow client is dropped with a
                       last ``{"error": "slow_client"}`` message and close code 1008
GET  /validators       the validator set (?height=H: the set that signs H; default latest + 1)
GET  /light_block/{h}  header, commit certificate and signing set of height h, hex of each
                       part (``?format=binary``: the binary light block), docs/formats.md
GET  /metrics          Prometheus text format
=====================  ==============================================================

Hashes and ids are lowercase hex. Every bad request gets a 4xx with a JSON body
``{"error": "<code>", "message": "<what was wrong>"}``; the handlers never let an exception
escape as a 500 for something the client sent.

Resource limits (each refusal counted in ``/metrics`` as ``engine_rpc_refused_total{reason}``
and logged at WARNING, rate-limited): at most ``RPC_CONNECTIONS_MAX`` open connections (the
next one gets ``503`` and is closed: ``connections_max``); a connection must start a request
within ``RPC_HEADER_TIMEOUT_MS`` of connecting or of its previous response (else it is closed:
``header_timeout``) and send its body within ``RPC_BODY_TIMEOUT_MS`` (``408 body_timeout``);
bodies are at most ``RPC_BODY_BYTES_MAX`` bytes, compressed or inflated (``413
body_too_large``; gzip and deflate are inflated here, bounded, other encodings are ``415
unsupported_encoding``); all bodies being read at once share ``RPC_BODIES_BYTES_MAX``
(``503 busy``).
"""
from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from engine.errors import NodeHalted
from engine.ratelog import RateLimitedLog
from engine.rpc.api import NodeAPI
from engine.rpc.body import split_envelopes

log = logging.getLogger("engine.rpc")
_refusals = RateLimitedLog(log)

#: Largest request body (a /txs batch), compressed or inflated; larger bodies get 413.
RPC_BODY_BYTES_MAX = 32 << 20
#: Request bodies being read at once share this many bytes (a body without a length, or a
#: compressed one, reserves the most it may become); beyond it requests get 503.
RPC_BODIES_BYTES_MAX = 128 << 20
#: Open connections at most; the next one is answered 503 and closed.
RPC_CONNECTIONS_MAX = 256
#: A connection must start a request (its headers complete) this soon after it opened or after
#: its previous response, else it is closed.
RPC_HEADER_TIMEOUT_MS = 10_000
#: A request body must arrive in full this soon.
RPC_BODY_TIMEOUT_MS = 30_000
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
#: Heights are u64 on the wire and int64 in the store: anything above is no height.
HEIGHT_MAX = (1 << 63) - 1

__all__ = ["RPC_BATCH_TXS_MAX", "RpcServer", "make_app"]

#: Per-app counts of refused or failed requests by reason (appended to ``/metrics``).
REFUSALS = web.AppKey("refusals", dict)
BUDGET: web.AppKey[_BodyBudget] = web.AppKey("body_budget")
GUARD: web.AppKey[_ConnectionGuard] = web.AppKey("connection_guard")


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


def _light_block_binary(info: dict[str, Any]) -> bytes:
    """``version u8 = 1 | (u32 len | part) * 3`` over header, certificate, validator set
    (docs/formats.md "Light block"; engine.light.LightBlock.decode reads it)."""
    parts = [bytes.fromhex(info[k]) for k in ("header", "certificate", "validators")]
    return b"\x01" + b"".join(struct.pack("<I", len(p)) + p for p in parts)


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
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
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
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
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
            earliest = getattr(node, "earliest_height", 0)
            if 0 < height < earliest:
                return web.json_response(
                    {"error": "pruned", "earliest_height": earliest,
                     "message": f"block {height} is pruned; the earliest height held is "
                                f"{earliest}"}, status=404)
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
        text = request.query.get("height")
        if text is None:
            return web.json_response(node.validators_info())
        try:
            height = parse_int(text, "height", 1, HEIGHT_MAX)
            return web.json_response(node.validators_info(height))
        except ValueError as e:
            return error(400, "bad_height", str(e))

    @routes.get("/light_block/{height}")
    async def get_light_block(request: web.Request) -> web.Response:
        try:
            height = parse_int(request.match_info["height"], "height", 1, HEIGHT_MAX)
        except ValueError as e:
            return error(400, "bad_height", str(e))
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "binary"):
            return error(400, "bad_format", "format must be json or binary")
        info = node.light_block(height)
        if info is None:
            return error(404, "not_found", f"no block at height {height}")
        if fmt == "json":
            return web.json_response(info)
        return web.Response(body=_light_block_binary(info),
                            content_type="application/octet-stream")

    @routes.get("/metrics")
    async def get_metrics(request: web.Request) -> web.Response:
        data = node.metrics_text() + _refusals_text(request.app[REFUSALS])
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def json_errors(request: web.Request, handler):
        guard = request.app[GUARD]
        conn = guard.connection_of(request.transport)
        if conn is not None:
            conn.request_started()
        try:
            return await handler(request)
        except web.HTTPException as e:  # 404 of unknown routes, 405, 413 ...
            if e.status >= 400:
                return error(e.status, e.reason.lower().replace(" ", "_"),
                             f"{request.method} {request.path}: {e.reason}")
            raise
        except Exception as e:
            counts = request.app[REFUSALS]
            counts["internal_error"] = counts.get("internal_error", 0) + 1
            if _refusals.warning("internal_error", "%s %s: %s: %s", request.method,
                                 request.path, type(e).__name__, e):
                log.debug("internal error detail", exc_info=e)
            return error(500, "internal_error", "the node failed to answer this request")
        finally:
            if conn is not None:
                conn.request_finished()

    app = web.Application(middlewares=[json_errors], client_max_size=RPC_BODY_BYTES_MAX)
    app.add_routes(routes)
    app[REFUSALS] = {}
    app[BUDGET] = _BodyBudget(RPC_BODIES_BYTES_MAX)
    app[GUARD] = _ConnectionGuard(app[REFUSALS])
    return app


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what a subscriber sends, until it closes."""
    async for _ in ws:
        pass


def refuse(request: web.Request, status: int, reason: str, message: str) -> web.Response:
    """A counted, rate-limited-logged refusal."""
    _count(request.app[REFUSALS], reason, f"{request.method} {request.path} from "
           f"{request.remote}: {message}")
    response = error(status, reason, message)
    response.force_close()
    return response


def _count(counts: dict[str, int], reason: str, detail: str) -> None:
    counts[reason] = counts.get(reason, 0) + 1
    _refusals.warning(reason, "RPC %s", detail)


class _BodyBudget:
    """Bytes of request bodies being read at once, across all connections."""

    def __init__(self, bytes_max: int):
        self.bytes_max = bytes_max
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.bytes_max:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


async def read_body(request: web.Request) -> bytes | web.Response:
    """The request body, bounded: by ``RPC_BODY_BYTES_MAX`` before and after inflating, by
    ``RPC_BODY_TIMEOUT_MS``, and by the budget all bodies share. A refusal is the response."""
    limit = RPC_BODY_BYTES_MAX
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        return refuse(request, 415, "unsupported_encoding",
                      f"Content-Encoding {encoding[:32]!r}: only gzip and deflate")
    declared = request.content_length
    if declared is not None and declared > limit:
        return refuse(request, 413, "body_too_large", f"a body of {declared} bytes is over "
                      f"the {limit}-byte limit")
    reserve = limit if declared is None else declared
    if encoding not in ("identity", ""):
        reserve += limit  # the inflated copy
    budget = request.app[BUDGET]
    if not budget.take(reserve):
        return refuse(request, 503, "busy", "too many request bodies are being read; retry")
    try:
        try:
            raw = await asyncio.wait_for(_read_at_most(request, limit),
                                         RPC_BODY_TIMEOUT_MS / 1000)
        except asyncio.TimeoutError:
            return refuse(request, 408, "body_timeout",
                          f"the body did not arrive within {RPC_BODY_TIMEOUT_MS} ms")
        if raw is None:
            return refuse(request, 413, "body_too_large", f"the body is over {limit} bytes")
        if encoding in ("identity", ""):
            return raw
        body = _inflate(raw, encoding, limit)
        if body is None:
            return refuse(request, 413, "body_too_large",
                          f"the {encoding} body inflates to more than {limit} bytes, or "
                          "does not inflate")
        return body
    finally:
        budget.give(reserve)


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _inflate(raw: bytes, encoding: str, limit: int) -> bytes | None:
    """gzip or deflate (zlib, or raw as some clients send it), never more than ``limit``
    bytes out; None when it would be more or the data does not inflate."""
    wbits_choices = (31,) if "gzip" in encoding else (15, -15)
    for wbits in wbits_choices:
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(raw, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or d.unconsumed_tail or not d.eof:
            return None
        return out
    return None


class _Connection(asyncio.Protocol):
    """One RPC connection: aiohttp's protocol, plus the deadline for its next request."""

    def __init__(self, guard: _ConnectionGuard, inner: asyncio.Protocol):
        self.guard, self.inner = guard, inner
        self.transport: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.guard.opened(self)
        self._arm()
        self.inner.connection_made(transport)

    def connection_lost(self, exc) -> None:
        self._disarm()
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def request_started(self) -> None:
        self._disarm()

    def request_finished(self) -> None:
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(
            RPC_HEADER_TIMEOUT_MS / 1000, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        _count(self.guard.counts, "header_timeout", f"connection idle or half-sent for "
               f"{RPC_HEADER_TIMEOUT_MS} ms: closed")
        if self.transport is not None:
            self.transport.close()


class _Refused(asyncio.Protocol):
    """A connection over the cap: a 503 and the door."""

    def __init__(self, guard: _ConnectionGuard):
        self.guard = guard

    def connection_made(self, transport) -> None:
        _count(self.guard.counts, "connections_max",
               f"{RPC_CONNECTIONS_MAX} connections open: refused one")
        body = b'{"error": "connections_max", "message": "too many connections"}'
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                        b"Content-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\n\r\n" + body)
        transport.close()


class _ConnectionGuard:
    """Counts open connections, refuses those over the cap, and closes the silent ones."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        self._open: dict[Any, _Connection] = {}

    def factory(self, inner_factory):
        def make() -> asyncio.Protocol:
            if len(self._open) >= RPC_CONNECTIONS_MAX:
                return _Refused(self)
            return _Connection(self, inner_factory())
        return make

    def opened(self, conn: _Connection) -> None:
        self._open[conn.transport] = conn

    def closed(self, conn: _Connection) -> None:
        self._open.pop(conn.transport, None)

    def connection_of(self, transport) -> _Connection | None:
        return self._open.get(transport)

    def __len__(self) -> int:
        return len(self._open)


class _GuardedSite(web.TCPSite):
    """A TCP site whose connections go through the app's ``_ConnectionGuard``."""

    def __init__(self, runner: web.AppRunner, guard: _ConnectionGuard, *args, **kwargs):
        super().__init__(runner, *args, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.factory(server), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address)
        self._bound_port = self._server.sockets[0].getsockname()[1]


class _HttpLog:
    """aiohttp's server logger for the RPC. A request the client malformed at the HTTP level
    (a line or header too long, a bad header, broken chunking: aiohttp answers 400 and closes)
    is counted (``bad_http``) and noted on one rate-limited line, never logged with a
    traceback (README, "Security notes"); everything else goes on to aiohttp's own logger as
    aiohttp would send it, tracebacks included (those are bugs)."""

    def __init__(self, refusals: dict[str, int]):
        self._refusals = refusals
        self._log = logging.getLogger("aiohttp.server")

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **kw: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._refusals["bad_http"] = self._refusals.get("bad_http", 0) + 1
            first = (str(exc_info.message).splitlines() or [""])[0]
            _refusals.warning("bad_http", "%s: %d %s", args[0] if args else "a client",
                              exc_info.code, first[:200])
            return
        self._log.exception(msg, *args, exc_info=exc_info, **kw)

    def __getattr__(self, name: str) -> Any:  # debug, warning, isEnabledFor ...
        return getattr(self._log, name)


class RpcServer:
    """Runs :func:`make_app` for a node on its configured address."""

    def __init__(self, node: NodeAPI, host: str, port: int):
        self.node, self.host, self.port = node, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = make_app(self.node)
        # Bodies arrive as sent (read_body inflates them, bounded); an idle keep-alive
        # connection is closed by the guard's deadline, aiohttp's own timer is a backstop.
        # lingering_time=0: after a refusal the unread rest of a body is not waited for.
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False,
                                     keepalive_timeout=RPC_HEADER_TIMEOUT_MS / 1000,
                                     lingering_time=0, logger=_HttpLog(app[REFUSALS]))
        await self._runner.setup()
        site = _GuardedSite(self._runner, app[GUARD], self.host, self.port,
                            reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = site.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
