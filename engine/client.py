"""The public name of the RPC client: ``from engine.client import Client`` (it lives in
:mod:`engine.rpc.client`, next to the server whose body format it shares)."""
from engine.rpc.client import Client, ClientError

__all__ = ["Client", "ClientError"]
