"""The body of ``POST /txs``, shared by the server and the clients: each envelope as
``u32 LE length || envelope``, back to back."""
from __future__ import annotations

import struct

from engine._txcodec import split_records

__all__ = ["join_envelopes", "split_envelopes"]


def join_envelopes(envelopes: list[bytes]) -> bytes:
    """The POST /txs body for ``envelopes``."""
    return b"".join(struct.pack("<I", len(e)) + e for e in envelopes)


def split_envelopes(body: bytes, count_max: int) -> list[bytes]:
    """Parse a POST /txs body (one native pass); ValueError naming the offset of the first
    bad record, or saying the batch is empty or holds more than ``count_max``."""
    return split_records(body, count_max)
