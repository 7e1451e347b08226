"""Child process of the optimistic-execution crash trial (tests/node/test_optimistic_execution.py).

Four validators run in this process until validator ``CRASHER`` holds a block it executed
early (it precommitted for it and has not committed it), then the process dies on the spot
(``os._exit``: no stop, no flush of anything pending), as a power cut would. Before dying it
writes what it held to ``MARKER`` (synced), so the parent can prove the crash hit that window.

argv: MARKER CHAIN HOME0 HOME1 HOME2 HOME3
"""
import asyncio
import json
import os
import sys

from engine import crypto, tx
from engine.node import Node

CRASHER = 2
EXIT_CODE = 17
FROM_HEIGHT = 3


async def main() -> None:
    marker, chain, homes = sys.argv[1], sys.argv[2], sys.argv[3:]
    nodes = [Node(h) for h in homes]
    for n in nodes:
        await n.start()
    node = nodes[CRASHER]
    committer = node.driver.committer
    execute_early = committer._speculate  # type: ignore[attr-defined]

    def execute_early_then_die(height: int, block_hash: bytes, block: bytes) -> None:
        execute_early(height, block_hash, block)
        held = committer._speculation  # type: ignore[attr-defined]
        if height >= FROM_HEIGHT and held is not None and held.height == height \
                and node.latest_height == height - 1:
            with open(marker, "w") as f:
                json.dump({"height": height, "block_hash": block_hash.hex(),
                           "latest_height": node.latest_height,
                           "early_app_hash": held.result.app_hash.hex(),
                           "txs": len(held.tx_ids)}, f)
                f.flush()
                os.fsync(f.fileno())
            os._exit(EXIT_CODE)

    committer._speculate = execute_early_then_die  # type: ignore[attr-defined]
    key = crypto.SigningKey.generate()
    for i in range(0, 3000, 100):
        await nodes[i // 100 % 4].submit_txs(
            [tx.encode_tx(key, n, b"early%d=v%d" % (n, n), chain) for n in range(i, i + 100)])
        await asyncio.sleep(0.05)
    await asyncio.sleep(60)  # the crash comes long before
    sys.exit(f"no early execution held at height >= {FROM_HEIGHT}")


if __name__ == "__main__":
    asyncio.run(main())
