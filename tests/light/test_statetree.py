"""The kvstore's state commitment: incremental roots equal roots from scratch, proofs of values
and absence verify and forged ones do not, history answers for recent heights only."""
from __future__ import annotations

import dataclasses
import random

import pytest

from engine import crypto, tx
from engine.app import KVStoreApp, MemoryState
from engine.hashing import blake3
from engine.statetree import BUCKETS, StateProof, StateTree, bucket_of, verify_state_proof


def _random_blocks(rng, heights, keys=300):
    blocks = []
    for _ in range(heights):
        writes = {}
        for _ in range(rng.randrange(0, 40)):
            k = b"k%d" % rng.randrange(keys)
            writes[k] = None if rng.random() < 0.2 else b"v%d" % rng.randrange(10**6)
        blocks.append(writes)
    return blocks


def _run(blocks, history=100):
    tree, state, roots, states = StateTree(history), {}, [], []
    tree.load([], 0)
    for h, writes in enumerate(blocks, 1):
        roots.append(tree.apply(h, writes, state.get))
        for k, v in writes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        states.append(dict(state))
    return tree, state, roots, states


def test_incremental_root_equals_the_root_from_scratch():
    rng = random.Random(7)
    tree, state, roots, _states = _run(_random_blocks(rng, 60))
    fresh = StateTree()
    fresh.load(sorted(state.items()), 60)
    assert fresh.root() == tree.root() == roots[-1]
    # Order of loading does not matter, content does.
    shuffled = list(state.items())
    rng.shuffle(shuffled)
    other = StateTree()
    other.load(shuffled, 60)
    assert other.root() == tree.root()
    other.apply(61, {next(iter(state)): b"changed"}, state.get)
    assert other.root() != tree.root()


def test_proofs_of_values_and_absence_at_recent_heights():
    rng = random.Random(11)
    tree, state, roots, states = _run(_random_blocks(rng, 30), history=10)
    for h in (30, 25, 20):
        snapshot = states[h - 1]
        for key in [b"k%d" % i for i in range(0, 300, 7)]:
            proof = tree.prove(key, state.get(key), h)
            assert proof.value == snapshot.get(key) and proof.height == h
            verify_state_proof(roots[h - 1], proof)
            if h != 30 and roots[h] != roots[h - 1]:  # a proof of h is not one of h + 1
                with pytest.raises(ValueError, match="app hash"):
                    verify_state_proof(roots[h], proof)
    assert tree.heights_kept() == range(20, 31)
    with pytest.raises(ValueError, match="not kept"):
        tree.prove(b"k1", state.get(b"k1"), 19)


def test_forged_proofs_fail():
    tree, state, roots, _ = _run([{b"k%d" % i: b"v%d" % i for i in range(5000)}])
    root = roots[-1]
    good = tree.prove(b"k42", state[b"k42"])
    verify_state_proof(root, good)
    absent = tree.prove(b"missing", None)
    verify_state_proof(root, absent)
    cases = {
        "another value": dataclasses.replace(good, value=b"v43"),
        "absence claimed for a present key": dataclasses.replace(good, value=None),
        "value claimed for an absent key": dataclasses.replace(absent, value=b"x"),
        "wrong bucket": dataclasses.replace(good, bucket=(good.bucket + 1) % BUCKETS),
        "entry removed": dataclasses.replace(absent, entries=absent.entries[64:]),
        "entries reordered": dataclasses.replace(
            good, entries=good.entries[64:128] + good.entries[:64] + good.entries[128:]),
        "path altered": dataclasses.replace(good, path=(bytes(32),) + good.path[1:]),
        "path cut": dataclasses.replace(good, path=good.path[:-1]),
        "ragged entries": dataclasses.replace(good, entries=good.entries[:-1]),
    }
    for name, proof in cases.items():
        with pytest.raises(ValueError):
            verify_state_proof(root, proof)
            raise AssertionError(name)
    assert len(good.entries) >= 64 and bucket_of(b"\x00" * 32) == 0


def test_proof_json_round_trip_and_garbage():
    tree, _state, _, _ = _run([{b"a": b"1"}])
    p = tree.prove(b"a", b"1")
    assert StateProof.from_json(p.to_json()) == p
    for bad in ("x", {}, {**p.to_json(), "path": ["00"]}, {**p.to_json(), "bucket": -1},
                {**p.to_json(), "entries": "zz"}, {**p.to_json(), "height": "1"}):
        with pytest.raises(ValueError):
            StateProof.from_json(bad)


def _kv_tx(key, nonce, payload):
    return tx.decode_tx(tx.encode_tx(key, nonce, payload, "kv"))


def test_kvstore_app_hash_is_the_state_root_and_restores():
    signer = crypto.SigningKey.generate()
    kv = KVStoreApp()
    kv.state = MemoryState()
    kv.init_chain("kv", {"seed": "1"})
    kv.commit()
    r1 = kv.finalize_block(1, [_kv_tx(signer, 0, b"a=1"), _kv_tx(signer, 1, b"b=2")])
    kv.commit()
    r2 = kv.finalize_block(2, [_kv_tx(signer, 2, b"a=3")])
    kv.commit()
    assert r1.app_hash != r2.app_hash
    again = KVStoreApp()
    again.state = kv.state
    again.restore(2, r2.app_hash)
    assert again.tree.root() == r2.app_hash
    with pytest.raises(ValueError, match="does not hash"):
        KVStoreApp.restore(again, 2, r1.app_hash)
    # Queries at a height carry the proof of that height's state.
    q = kv.query("/key", b"a", 1)
    assert q.value == b"1" and q.height == 1
    verify_state_proof(r1.app_hash, StateProof.from_json(q.proof))
    q = kv.query("/key", b"a")
    verify_state_proof(r2.app_hash, StateProof.from_json(q.proof))
    assert kv.query("/key", b"zzz").code == 1
    # A key under the engine's reserved prefix is refused (the node would drop the write).
    assert kv.check_tx(_kv_tx(signer, 3, b"\xffengine/x=1")).code == 1


def test_a_restored_state_is_checked_against_the_app_hash_it_claims():
    """State sync asks the app for the hash of the restored entries: the kvstore answers with
    its state-tree root, so a forged snapshot whose chunks are self-consistent (their hashes
    match the forged snapshot) but whose entries are not the certified state is refused."""
    signer = crypto.SigningKey.generate()
    kv = KVStoreApp()
    kv.state = MemoryState()
    kv.init_chain("kv", {"seed": "1"})
    kv.commit()
    r = kv.finalize_block(1, [_kv_tx(signer, 0, b"a=1"), _kv_tx(signer, 1, b"b=2")])
    kv.commit()
    entries = sorted(kv.state.items(b""))
    assert kv.snapshot_state_hash(entries) == r.app_hash
    forged = [(k, b"forged" if k == b"a" else v) for k, v in entries]
    assert kv.snapshot_state_hash(forged) != r.app_hash
    assert kv.snapshot_state_hash(entries[1:]) != r.app_hash  # an entry left out
    assert KVStoreApp.__mro__[1].snapshot_state_hash(kv, entries) is None  # default: unknown


def test_history_is_bounded_by_writes_as_well_as_heights():
    tree, state = StateTree(history_heights=50, history_writes_max=50), {}
    tree.load([], 0)
    for h in range(1, 11):
        writes = {b"k%d-%d" % (h, i): b"v" for i in range(20)}
        tree.apply(h, writes, state.get)
        state.update(writes)
    # 20 writes per block, at most 50 kept: the last two blocks' undo (and so heights 8..10).
    assert tree.heights_kept() == range(8, 11)
    assert tree.prove(b"k9-0", b"v", 8).value is None  # written at 9, absent after 8
    for h in range(11, 20):  # empty blocks cost nothing: the window grows back
        tree.apply(h, {}, state.get)
    assert tree.heights_kept() == range(8, 20)


# ---- the native buckets against a pure-Python reference -------------------------------------

def _reference_root(state: dict[bytes, bytes]) -> bytes:
    """The state root computed from scratch with the `blake3` package and the reference Merkle
    tree, from the definition in the module docstring (nothing of the engine's hashing)."""
    import blake3 as blake3_pkg

    from engine._reference.merkle import root_from_hashes
    from engine.hashing import NODE_KEY

    def h(data: bytes) -> bytes:
        return blake3_pkg.blake3(data).digest()

    buckets: list[list[bytes]] = [[] for _ in range(BUCKETS)]
    for k, v in state.items():
        kh = h(k)
        buckets[int.from_bytes(kh[:2], "big") >> 4].append(kh + h(v))
    leaves = [h(b"".join(sorted(entries))) for entries in buckets]
    return root_from_hashes(leaves, lambda a, b: blake3_pkg.blake3(a + b, key=NODE_KEY).digest(),
                            b"")


def test_native_buckets_match_the_reference_under_inserts_replaces_and_deletes():
    """Random blocks over a small key space (so buckets see inserts before, between and after
    existing entries, replacements, deletes of present and absent keys, emptied buckets) and a
    few large ones (more writes than buckets): every root equals the reference's."""
    rng = random.Random(2024)
    tree, state = StateTree(history_heights=5), {}
    for h in range(1, 61):
        writes: dict[bytes, bytes | None] = {}
        n = rng.choice([0, 1, 3, 40, 300]) if h % 20 else 6000
        for _ in range(n):
            k = b"key-%d" % rng.randrange(9000 if h % 20 == 0 else 2500)
            writes[k] = None if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 90))
        root = tree.apply(h, writes, state.get)
        for k, v in writes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        assert len(tree) == len(state)
        assert root == _reference_root(state), f"height {h}"
    # Deleting everything empties every bucket: the root of 4096 empty leaves.
    assert tree.apply(61, dict.fromkeys(state), state.get) == _reference_root({})
    assert len(tree) == 0


def test_native_buckets_refuse_malformed_arguments_by_name():
    from engine import _native_hash

    t = _native_hash.BucketTree()
    with pytest.raises(ValueError, match="khs"):
        t.apply(b"x" * 33, b"", None)
    with pytest.raises(ValueError, match="vhs"):
        t.apply(b"k" * 64, b"v" * 32, None)  # two live writes, one value hash
    with pytest.raises(ValueError, match="live"):
        t.apply(b"k" * 64, b"v" * 32, b"\x01")
    with pytest.raises(TypeError, match="khs"):
        t.apply("text", b"", None)
    with pytest.raises(ValueError, match="bucket"):
        t.bucket(BUCKETS)
    assert len(t) == 0 and t.leaves() == blake3(b"") * BUCKETS  # nothing was half-applied
    touched, old = t.apply(b"\x00" * 32 + b"\xff" * 32, b"v" * 32, b"\x00\x01")
    assert touched == (0).to_bytes(2, "little") + (4095).to_bytes(2, "little")
    assert old == blake3(b"") * 2 and len(t) == 1
    assert t.bucket(4095) == b"\xff" * 32 + b"v" * 32 and t.bucket(0) == b""


def test_history_reads_old_values_only_for_keys_the_tree_holds():
    """A block's new keys have no old value: the store is not asked for them (one batch read
    of the replaced and deleted keys only), and proofs at the earlier height still hold."""
    tree, state = StateTree(history_heights=5), {}
    asked: list[list[bytes]] = []

    def old_values(keys):
        asked.append(list(keys))
        return [state.get(k) for k in keys]

    def apply(height, writes):
        root = tree.apply(height, writes, state.get, old_values=old_values)
        for k, v in writes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        return root

    r1 = apply(1, {b"a": b"1", b"b": b"2"})
    assert asked == []  # every key new: nothing read
    apply(2, {b"a": b"10", b"c": b"3", b"b": None, b"zz": None})
    assert asked == [[b"a", b"b"]]  # the replaced and the deleted key, in write order
    held = tree._tree.contains(b"".join(blake3(k) for k in (b"a", b"b", b"c", b"zz")))
    assert held == b"\x01\x00\x01\x00"
    for key, value in ((b"a", b"1"), (b"b", b"2"), (b"c", None)):
        proof = tree.prove(key, state.get(key), height=1)
        assert proof.value == value
        verify_state_proof(r1, proof)
    # Every key of a block held (rewrites of a full state): all read in one call, in order,
    # and the proofs at the height before carry those old values.
    r2 = tree.root()
    apply(3, {b"c": b"30", b"a": b"100"})
    assert asked[-1] == [b"c", b"a"]
    for key, value in ((b"a", b"10"), (b"c", b"3"), (b"b", None)):
        proof = tree.prove(key, state.get(key), height=2)
        assert proof.value == value
        verify_state_proof(r2, proof)
    with pytest.raises(ValueError, match="answered 1 values for 2 keys"):
        tree.apply(4, {b"a": b"x", b"c": b"y"}, state.get, old_values=lambda keys: [b"1"])
    with pytest.raises(ValueError, match="khs"):
        tree._tree.contains(b"x" * 33)


@pytest.mark.parametrize("seed", range(6))
def test_rollback_restores_the_state_before_the_block(seed):
    """A block applied, then rolled back (executed before its decision, another one decided),
    then another block at that height: the same roots and proofs as a tree that only saw the
    decided block; a rollback of anything but the last apply is refused."""
    rng = random.Random(seed)
    blocks = _random_blocks(rng, 8)
    tree, state, _, _ = _run(blocks)
    height = len(blocks) + 1
    early = _random_blocks(rng, 1, keys=400)[0]  # rewrites, deletes and new keys
    early[b"k1"] = None
    decided = _random_blocks(rng, 1)[0]
    before = tree.root()
    tree.apply(height, early, state.get)
    assert tree.rollback(height) == before and tree.height == height - 1
    with pytest.raises(ValueError, match="cannot roll back height"):
        tree.rollback(height)
    root = tree.apply(height, decided, state.get)
    _, _, alone_roots, alone_states = _run([*blocks, decided])
    assert root == alone_roots[-1] and len(tree) == len(alone_states[-1])
    for h in (height - 2, height - 1, height):
        key = b"k%d" % rng.randrange(300)
        value = alone_states[h - 1].get(key)
        current = alone_states[-1].get(key)
        proof = tree.prove(key, current, h)
        assert proof.value == value
        verify_state_proof(alone_roots[h - 1], proof)
    with pytest.raises(ValueError, match="last apply that can be undone is 9"):
        tree.rollback(height - 1)


def test_rollback_needs_history_and_true_old_values():
    tree = StateTree(history_heights=0)
    tree.load([(b"a", b"1")], 0)
    tree.apply(1, {b"a": b"2"}, lambda k: b"1")
    with pytest.raises(ValueError, match="cannot roll back"):
        tree.rollback(1)
    tree = StateTree()
    tree.load([(b"a", b"1")], 0)
    tree.apply(1, {b"a": b"2"}, lambda k: b"wrong")  # the reader lied about the old value
    with pytest.raises(RuntimeError, match="unlike before the block"):
        tree.rollback(1)
