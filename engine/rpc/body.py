"""The body of ``POST /txs``, shared by the server and the clients: each envelope as
``u32 LE length || envelope``, back to back."""
from __future__ import annotations

import struct

__all__ = ["join_envelopes", "split_envelopes"]


def join_envelopes(envelopes: list[bytes]) -> bytes:
    """The POST /txs body for ``envelopes``."""
    return b"".join(struct.pack("<I", len(e)) + e for e in envelopes)


def split_envelopes(body: bytes, count_max: int) -> list[bytes]:
    """Parse a POST /txs body; ValueError naming the offset of the first bad record."""
    out, pos, n = [], 0, len(body)
    while pos < n:
        if pos + 4 > n:
            raise ValueError(f"truncated length prefix at byte {pos}")
        (length,) = struct.unpack_from("<I", body, pos)
        pos += 4
        if length == 0 or pos + length > n:
            raise ValueError(f"record at byte {pos - 4} announces {length} bytes, "
                             f"{n - pos} remain")
        out.append(body[pos:pos + length])
        pos += length
        if len(out) > count_max:
            raise ValueError(f"more than {count_max} envelopes in one request")
    if not out:
        raise ValueError("empty batch")
    return out
