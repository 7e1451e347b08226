"""The node's HTTP interface: the API it consumes (:mod:`engine.rpc.api`), the server
(:mod:`engine.rpc.server`, aiohttp), the ``POST /txs`` body format shared by both sides
(:mod:`engine.rpc.body`), a synchronous client (:mod:`engine.rpc.client`, stdlib only) and an
asyncio one (:mod:`engine.rpc.aclient`, aiohttp).

Importing this package does not import aiohttp: the server loads on first use of ``RpcServer``.
"""
from __future__ import annotations

from typing import Any

from engine.rpc.api import NodeAPI
from engine.rpc.body import join_envelopes, split_envelopes

__all__ = ["NodeAPI", "RpcServer", "join_envelopes", "split_envelopes"]


def __getattr__(name: str) -> Any:
    if name == "RpcServer":
        from engine.rpc.server import RpcServer

        return RpcServer
    raise AttributeError(f"module 'engine.rpc' has no attribute {name!r}")
