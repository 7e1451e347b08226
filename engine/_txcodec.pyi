"""Type stubs for the native batch decoder of verified envelopes (engine/_txcodec.pyx)."""
from typing import Any

def decode_verified_many(tx_type: type, envelopes: list[bytes],
                         ids: list[bytes]) -> list[Any | None]: ...
