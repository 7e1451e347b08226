"""A NodeAPI served from memory, for tests of the HTTP layer alone."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    code: str
    tx_id: bytes
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "ok"


class FakeNode:
    """Heights are checked as the store would: an int64 key (OverflowError beyond it)."""

    latest_height = 3

    def __init__(self):
        self.submitted: list[bytes] = []

    def status(self) -> dict[str, Any]:
        return {"latest_height": self.latest_height}

    def block_info(self, height: int) -> dict[str, Any] | None:
        height.to_bytes(8, "big", signed=True)  # what an LMDB int64 key does with 2**63
        return {"height": height} if height <= self.latest_height else None

    async def wait_for_blocks(self, from_height: int, timeout_s: float,
                              count_max: int = 32) -> list[dict[str, Any]]:
        from_height.to_bytes(8, "big", signed=True)
        await asyncio.sleep(0)
        return [{"height": h} for h in range(from_height, self.latest_height + 1)][:count_max]

    def tx_info(self, tx_id: bytes) -> dict[str, Any] | None:
        return None

    async def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> dict[str, Any] | None:
        return None

    async def submit_tx(self, envelope: bytes) -> Result:
        self.submitted.append(envelope)
        return Result("ok", bytes(32))

    async def submit_txs(self, envelopes: list[bytes]) -> list[Result]:
        self.submitted.extend(envelopes)
        return [Result("ok", bytes(32)) for _ in envelopes]

    def validators_info(self, height: int | None = None) -> dict[str, Any]:
        return {"validators": []}

    def validator_set_at(self, height: int) -> Any:
        raise ValueError("the fake node has no validator set")

    def metrics_text(self) -> bytes:
        return b"# fake\n"
