"""The public names of the RPC clients: ``from engine.client import Client, AsyncClient`` (they
live in :mod:`engine.rpc`, next to the server whose formats they share)."""
from engine.rpc.aclient import AsyncClient
from engine.rpc.client import Client, ClientError

__all__ = ["AsyncClient", "Client", "ClientError"]
