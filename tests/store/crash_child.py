"""Child process for the crash trials: writes blocks, WAL entries and signer records forever.

Every record is deterministic in its height, so the parent can check content, not just presence.
A line is printed only after the write it names has returned (is durable, sync=True):
``wal H SEQ``, ``sign H R S``, ``block H``, ``compact H`` (tx index merged up to height H, as the node does). The parent kills this process with SIGKILL.
"""
import random
import sys

from engine.hashing import blake3
from engine.store import Store

PRUNE_KEEP = 60


def block_content(height: int):
    rng = random.Random(height)
    n = rng.choice([0, 1, 5, 40, 200]) if height % 17 else 2000  # sometimes multi-page
    txs = [rng.randbytes(rng.randint(60, 300)) for _ in range(n)]
    changes = [(b"height", b"%d" % height), (b"k%d" % (height % 50), rng.randbytes(20))]
    return {"block_hash": blake3(b"block %d" % height), "header": b"header %d" % height,
            "txs": txs, "certificate": b"cert %d" % height, "app_hash": blake3(b"app %d" % height),
            "results": [b"r%d" % i for i in range(n)], "state_changes": changes}


def valset_record(height: int) -> tuple[int, bytes] | None:
    """Every 7th block changes the validator set (the record of height + 2, saved in the
    block's own transaction)."""
    return (height + 2, b"set %d" % (height + 2)) if height % 7 == 0 else None


def sign_bytes(height: int, round_: int, step: int) -> bytes:
    return b"vote %d %d %d" % (height, round_, step)


def fake_sign(data: bytes) -> bytes:
    return blake3(b"sig" + data) * 2


def main(path: str) -> None:
    store = Store(path, sync=True, map_size=1 << 20)  # small map: growth happens under fire
    height = store.latest_height() + 1
    print("ready", height, flush=True)
    while True:
        for seq in range(2):
            got = store.wal_append(height, b"wal %d %d" % (height, seq))
            print("wal", height, got, seq, flush=True)
        last = store.signer_record()
        last_hrs = (last.height, last.round, last.step) if last else (0, 0, 0)
        todo = [(round_, step) for round_, step in ((0, 1), (0, 2))
                if (height, round_, step) >= last_hrs]  # earlier ones were signed before a crash
        if height % 2 == 0 and todo:
            # Both steps' signatures in one durable transaction, as the driver does for the
            # signatures of one consensus step (sign_guarded_many).
            store.sign_guarded_many([
                (height, r, st, sign_bytes(height, r, st), fake_sign(sign_bytes(height, r, st)),
                 b"signed " + fake_sign(sign_bytes(height, r, st))) for r, st in todo])
            for round_, step in todo:
                print("sign", height, round_, step, flush=True)
            todo = []
        for round_, step in todo:
            store.sign_guarded(height, round_, step, sign_bytes(height, round_, step), fake_sign,
                               wal_entry=lambda sig: b"signed " + sig)
            print("sign", height, round_, step, flush=True)
        c = block_content(height)
        parent = blake3(b"block %d" % (height - 1)) if height > 1 else bytes(32)
        store.save_block(height, c["block_hash"], c["header"], c["txs"], c["certificate"],
                         parent_hash=parent, app_hash=c["app_hash"], results=c["results"],
                         state_changes=c["state_changes"], validator_set=valset_record(height))
        print("block", height, flush=True)
        if store.compact_index():  # as the node does after each commit; kills land here too
            print("compact", store._read(store._indexed_height), flush=True)
        if height % 25 == 0 and height > PRUNE_KEEP:  # keeps checks short; prune gets killed too
            store.prune(height - PRUNE_KEEP)
            print("prune", height - PRUNE_KEEP, flush=True)
        height += 1


if __name__ == "__main__":
    main(sys.argv[1])
