"""A list handed to a native call may be changed by another thread while the kernel runs with
the GIL released: the call must hash the messages it was given, never freed memory."""
import os
import threading

from blake3 import blake3 as reference

from engine.crypto import SigningKey, verify_batch
from engine.hashing import blake3_many, merkle_root, merkle_root_from_hashes


def _mutate_while(call, items: list) -> object:
    """Run ``call()`` in a thread while this thread replaces every item of ``items`` (dropping
    the last reference to each original); returns what the call returned."""
    out: dict = {}
    started = threading.Event()

    def run():
        started.set()
        out["value"] = call()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    while t.is_alive():
        for i in range(len(items)):
            items[i] = b""
    t.join()
    return out["value"]


def test_blake3_many_hashes_the_given_messages_while_the_list_changes():
    for _ in range(3):
        msgs = [os.urandom(250) for _ in range(100_000)]
        want = [reference(m).digest() for m in msgs]
        got = _mutate_while(lambda msgs=msgs: blake3_many(msgs, threads=1), msgs)
        assert got == want


def test_merkle_root_while_the_list_changes():
    msgs = [os.urandom(250) for _ in range(100_000)]
    want = merkle_root_from_hashes([reference(m).digest() for m in msgs])
    assert _mutate_while(lambda: merkle_root(msgs, threads=1), msgs) == want


def test_verify_batch_while_the_lists_change():
    keys = [SigningKey.generate() for _ in range(4)]
    n = 2048
    msgs = [os.urandom(64) for _ in range(n)]
    sigs = [keys[i % 4].sign(m) for i, m in enumerate(msgs)]
    pubs = [keys[i % 4].public_key for i in range(n)]
    assert _mutate_while(lambda: verify_batch(pubs, msgs, sigs, threads=1), msgs) == [True] * n
