"""An asyncio client of a node's RPC API (aiohttp), for programs that run their own event loop
(a synchronous :class:`engine.client.Client` would block it), with event subscriptions.

    async with AsyncClient("http://127.0.0.1:26657") as c:
        await c.submit_tx(envelope, wait_commit=True)
        answer = await c.query("/balance", sender)
        async for message in c.subscribe(["transfer.recipient=" + key.hex()]):
            ...

Errors are :class:`engine.rpc.client.ClientError`, as with the synchronous client.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from engine.rpc.body import join_envelopes
from engine.rpc.client import ClientError, query_path

__all__ = ["AsyncClient"]


class AsyncClient:
    """One aiohttp session to one node; close it (or use ``async with``)."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        if "://" not in url:
            url = f"http://{url}"
        if not url.startswith("http://"):
            raise ValueError(f"url must look like http://host:port, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:  # noqa: PYI034 - typing.Self needs 3.11
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _request(self, method: str, path: str, body: bytes | None = None,
                       timeout_s: float | None = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        try:
            async with self._http().request(method, self.url + path, data=body,
                                            timeout=timeout) as resp:
                data = await resp.read()
                ctype = resp.headers.get("Content-Type", "")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ClientError(0, "unreachable", f"{method} {path} on {self.url}: {e!r}") from e
        if "json" not in ctype:
            if status >= 400:
                raise ClientError(status, "http_error", data[:200].decode(errors="replace"))
            return data.decode()
        import json

        obj = json.loads(data)
        if status >= 400:
            raise ClientError(status, obj.get("error", "error"), obj.get("message", ""))
        return obj

    async def status(self) -> dict[str, Any]:
        return await self._request("GET", "/status")

    async def submit_tx(self, envelope: bytes, *, wait_commit: bool = False,
                        timeout_ms: int = 30_000) -> dict[str, Any]:
        if not wait_commit:
            return await self._request("POST", "/tx", bytes(envelope))
        return await self._request("POST", f"/tx?wait=commit&timeout_ms={int(timeout_ms)}",
                                   bytes(envelope), timeout_s=timeout_ms / 1000 + 5)

    async def submit_txs(self, envelopes: Sequence[bytes]) -> dict[str, Any]:
        return await self._request("POST", "/txs", join_envelopes(list(envelopes)))

    async def block(self, height: int) -> dict[str, Any]:
        return await self._request("GET", f"/block/{int(height)}")

    async def blocks(self, from_height: int, *, wait_ms: int = 0,
                     limit: int = 32) -> dict[str, Any]:
        return await self._request(
            "GET", f"/blocks?from={int(from_height)}&wait_ms={int(wait_ms)}&limit={int(limit)}",
            timeout_s=wait_ms / 1000 + 5)

    async def tx(self, tx_id: bytes | str) -> dict[str, Any]:
        text = tx_id.hex() if isinstance(tx_id, (bytes, bytearray)) else str(tx_id).lower()
        return await self._request("GET", f"/tx/{text}")

    async def query(self, path: str, data: bytes = b"", height: int | None = None,
                    prove: bool = False) -> dict[str, Any]:
        return await self._request("GET", query_path(path, data, height, prove))

    async def validators(self) -> Any:
        return await self._request("GET", "/validators")

    async def subscribe(self, filters: Sequence[str] = ()) -> AsyncIterator[dict[str, Any]]:
        """Committed events matching every filter, as the node pushes them; ends when the
        node closes the subscription (a last ``{"error": ...}`` message says why)."""
        params = [("filter", f) for f in filters]
        try:
            ws = await self._http().ws_connect(self.url + "/subscribe", params=params)
        except aiohttp.WSServerHandshakeError as e:
            raise ClientError(e.status, "bad_filter", e.message) from e
        except aiohttp.ClientError as e:
            raise ClientError(0, "unreachable", f"subscribe on {self.url}: {e!r}") from e
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    yield msg.json()
                else:
                    break
        finally:
            await ws.close()
