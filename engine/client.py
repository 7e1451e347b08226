"""The public names of the RPC clients: ``from engine.client import Client, AsyncClient`` (they
live in :mod:`engine.rpc`, next to the server whose formats they share). ``Client`` needs only
the standard library; ``AsyncClient`` (aiohttp) is loaded on first use."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.rpc.client import Client, ClientError

if TYPE_CHECKING:
    from engine.rpc.aclient import AsyncClient

__all__ = ["AsyncClient", "Client", "ClientError"]


def __getattr__(name: str) -> Any:
    if name == "AsyncClient":
        from engine.rpc.aclient import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'engine.client' has no attribute {name!r}")
