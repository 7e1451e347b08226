"""The chain tip: what the node last committed. One mutable record shared by the parts that
read it (validity, block production, queries, sync); only the committer writes it."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChainTip"]


@dataclass
class ChainTip:
    height: int = 0
    block_hash: bytes = bytes(32)
    #: The application hash after the last committed block (the genesis app hash at height 0).
    app_hash: bytes = bytes(32)
    #: The last block's header time (ms since the epoch; 0 before the first block).
    block_time_ms: int = 0
