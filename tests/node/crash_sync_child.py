"""Child process of the restore and pruning crash trials (the parent SIGKILLs it).

``restore PATH N``: restore N state entries and a tip block at height 1000 into the empty
store at PATH (one transaction), printing ``restored`` once it returned.
``prune PATH``: prune the store at PATH towards keeping its newest 50 blocks in steps of 7
blocks (the node's bounded steps), printing ``base B`` after each step.
Everything is deterministic, so the parent can check contents, not only presence.
"""
import sys

from engine.hashing import blake3
from engine.store import Store

RESTORE_HEIGHT = 1000


def entries(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"key%08d" % i, blake3(b"%d" % i)[:20]) for i in range(n)]


def tip_block():
    return {"block_hash": blake3(b"tip"), "header": b"tip header", "txs": [b"t1", b"t2"],
            "certificate": b"tip cert", "parent_hash": blake3(b"parent"),
            "app_hash": blake3(b"app after tip")}


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "restore":
        state = entries(int(sys.argv[3]))
        b = tip_block()
        with Store(path) as store:
            print("ready", flush=True)
            store.restore_from_snapshot(RESTORE_HEIGHT, b["block_hash"], b["header"], b["txs"],
                                        b["certificate"], parent_hash=b["parent_hash"],
                                        app_hash=b["app_hash"], state=state)
            print("restored", flush=True)
    else:
        with Store(path) as store:
            print("ready", flush=True)
            target = store.latest_height() - 49
            while store.base_height() < target:
                store.prune(target, blocks_max=7)
                print("base", store.base_height(), flush=True)


if __name__ == "__main__":
    main()
