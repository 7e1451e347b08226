"""A small synchronous client of a node's RPC API (stdlib only), for scripts and the CLI.

    from engine.client import Client
    c = Client("http://127.0.0.1:26657")
    c.status()["latest_height"]
    info = c.submit_tx(envelope, wait_commit=True)     # {"height": ..., "index": ..., ...}
    c.tx(info["tx_id"])["proof"]

Errors from the node (4xx/5xx with a JSON body) raise :class:`ClientError` carrying the HTTP
status and the node's error code; an unreachable node raises ClientError with status 0.
"""
from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Sequence
from typing import Any

from engine.rpc.body import join_envelopes

__all__ = ["Client", "ClientError", "query_path"]


def query_path(path: str, data: bytes, height: int | None, prove: bool) -> str:
    """The ``GET /query`` request path (shared with the async client)."""
    params = {"path": path, "data": bytes(data).hex()}
    if height is not None:
        params["height"] = str(int(height))
    if prove:
        params["prove"] = "true"
    return "/query?" + urllib.parse.urlencode(params)


class ClientError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code} ({status}): {message}" if status else message)
        self.status, self.code, self.message = status, code, message


class Client:
    """One keep-alive HTTP connection to a node; not thread-safe (use one per thread)."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"url must look like http://host:port, not {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, method: str, path: str, body: bytes | None = None,
                 timeout_s: float | None = None) -> Any:
        for attempt in (0, 1):  # one retry when a kept-alive connection was closed under us
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=timeout_s or self.timeout_s)
            try:
                self._conn.request(method, path, body=body,
                                   headers={"Content-Type": "application/octet-stream"})
                resp = self._conn.getresponse()
                data = resp.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self.close()
                if attempt or isinstance(e, TimeoutError):
                    raise ClientError(0, "unreachable",
                                      f"{method} {path} on {self.host}:{self.port}: {e}") from e
        if timeout_s is not None:
            self.close()  # the connection carries a per-request timeout; do not reuse it
        ctype = resp.getheader("Content-Type", "")
        if "json" not in ctype:
            if resp.status >= 400:
                raise ClientError(resp.status, "http_error", data[:200].decode(errors="replace"))
            return data.decode()
        obj = json.loads(data)
        if resp.status >= 400:
            raise ClientError(resp.status, obj.get("error", "error"), obj.get("message", ""))
        return obj

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/status")

    def submit_tx(self, envelope: bytes, *, wait_commit: bool = False,
                  timeout_ms: int = 30_000) -> dict[str, Any]:
        if not wait_commit:
            return self._request("POST", "/tx", bytes(envelope))
        return self._request("POST", f"/tx?wait=commit&timeout_ms={int(timeout_ms)}",
                             bytes(envelope), timeout_s=timeout_ms / 1000 + 5)

    def submit_txs(self, envelopes: Sequence[bytes]) -> dict[str, Any]:
        return self._request("POST", "/txs", join_envelopes(list(envelopes)))

    def block(self, height: int) -> dict[str, Any]:
        return self._request("GET", f"/block/{int(height)}")

    def blocks(self, from_height: int, *, wait_ms: int = 0,
               limit: int = 32) -> dict[str, Any]:
        """``{"latest_height", "blocks": [{height, hash, num_txs, tx_ids}, ...]}`` from
        ``from_height`` on, waiting up to ``wait_ms`` for the first block (a long poll)."""
        return self._request("GET", f"/blocks?from={int(from_height)}&wait_ms={int(wait_ms)}"
                                    f"&limit={int(limit)}", timeout_s=wait_ms / 1000 + 5)

    def tx(self, tx_id: bytes | str) -> dict[str, Any]:
        text = tx_id.hex() if isinstance(tx_id, (bytes, bytearray)) else str(tx_id).lower()
        return self._request("GET", f"/tx/{text}")

    def query(self, path: str, data: bytes = b"", height: int | None = None,
              prove: bool = False) -> dict[str, Any]:
        """The application's answer: ``{code, codespace, log, value (hex or None), height,
        proof}`` (``value`` decoded with ``bytes.fromhex``)."""
        return self._request("GET", query_path(path, data, height, prove))

    def validators(self) -> Any:
        return self._request("GET", "/validators")

    def metrics(self) -> str:
        return self._request("GET", "/metrics")
