"""Type stubs for the mempool's compiled bookkeeping loops (engine/_poolcore.pyx)."""
from collections.abc import Iterable
from typing import Any

def unindex_many(txs: dict[bytes, dict[bytes, int]], highest: dict[bytes, int],
                 pairs: Iterable[tuple[bytes, bytes]]) -> None: ...
def drop_many(pool: dict[bytes, bytes], decoded: dict[bytes, Any], priority: dict[bytes, int],
              pooled_nonces: dict[bytes, dict[int, bytes]] | None,
              txs: dict[bytes, dict[bytes, int]], highest: dict[bytes, int],
              tx_ids: Iterable[bytes], want_pairs: bool) -> tuple[int, list[tuple[bytes, bytes]]]: ...
