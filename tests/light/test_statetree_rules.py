"""engine/statetree.py at its edges (written against the survivors of a mutation run): the proof
JSON's bounds, every refusal of a forged proof in both directions, the history window's exact
bounds (heights, writes, the current block, height 0, heights above 256), rollback's checks,
and the argument checks of the tree."""
from __future__ import annotations

import dataclasses

import pytest

from engine.hashing import blake3
from engine.statetree import (
    BUCKETS,
    ENTRY_BYTES,
    StateProof,
    StateTree,
    bucket_of,
    verify_state_proof,
)
from engine.suite import ED25519_BLAKE3, SM2_SM3, get_suite


def _tree(**kw) -> StateTree:
    t = StateTree(**kw)
    t.load([], 0)
    return t


def _same_bucket_keys(n: int, prefix: bytes = b"c") -> list[bytes]:
    """n keys whose BLAKE3 hashes fall in one bucket (found by search), in key order."""
    by_bucket: dict[int, list[bytes]] = {}
    i = 0
    while True:
        k = prefix + b"%d" % i
        keys = by_bucket.setdefault(bucket_of(blake3(k)), [])
        keys.append(k)
        if len(keys) == n:
            return sorted(keys)
        i += 1


# ---- the proof's JSON form -------------------------------------------------------------------

def _json(**changes):
    t = _tree()
    t.apply(1, {b"a": b"1"}, lambda k: None)
    return {**t.prove(b"a", b"1").to_json(), **changes}


def test_proof_json_bounds():
    good = _json()
    assert StateProof.from_json(_json(height=0)).height == 0
    assert StateProof.from_json(_json(bucket=0)).bucket == 0
    assert StateProof.from_json(_json(bucket=BUCKETS - 1)).bucket == 4095
    for bad, why in ((_json(height=-1), "height must be a non-negative int"),
                     (_json(height=True), "height must be a non-negative int"),
                     (_json(bucket=-1), r"bucket must be in 0\.\.4095"),
                     (_json(bucket=int("4096")), r"bucket must be in 0\.\.4095"),
                     (_json(bucket=5000), r"bucket must be in 0\.\.4095"),
                     (_json(bucket=False), r"bucket must be in 0\.\.4095"),
                     (_json(path=good["path"] + ["00" * 32]), "path must list 12 hashes"),
                     (_json(path=good["path"][:11]), "path must list 12 hashes")):
        with pytest.raises(ValueError, match=why):
            StateProof.from_json(bad)
    with pytest.raises(ValueError, match="state proof lacks 'value'"):
        StateProof.from_json({k: v for k, v in good.items() if k != "value"})
    proof = StateProof.from_json(good)
    with pytest.raises(dataclasses.FrozenInstanceError):
        proof.value = b"2"  # type: ignore[misc]


# ---- forged proofs, each refusal in both directions ------------------------------------------

@pytest.mark.parametrize("crypto", [ED25519_BLAKE3, SM2_SM3])
def test_forged_proofs_are_refused_whichever_way_they_differ(crypto):
    suite = get_suite(crypto)
    t = _tree(suite=suite)
    root = t.apply(1, {b"k%d" % i: b"v%d" % i for i in range(3000)}, lambda k: None)
    per_bucket: dict[int, int] = {}
    for i in range(3000):
        b = bucket_of(suite.hash(b"k%d" % i))
        per_bucket[b] = per_bucket.get(b, 0) + 1
    n = next(i for i in range(3000) if per_bucket[bucket_of(suite.hash(b"k%d" % i))] >= 3)
    key, value = b"k%d" % n, b"v%d" % n
    good = t.prove(key, value)
    verify_state_proof(root, good, suite)
    # Another bucket, above and below the key's.
    for shift in (1, -1):
        moved = dataclasses.replace(good, bucket=(good.bucket + shift) % BUCKETS)
        with pytest.raises(ValueError, match=f"belongs to bucket {good.bucket}, the proof "
                                             f"shows bucket {moved.bucket}"):
            verify_state_proof(root, moved, suite)
    # Forged values: their hashes fall both below and above the true one.
    hashes = []
    for i in range(64):
        forged = dataclasses.replace(good, value=b"forged-%d" % i)
        hashes.append(suite.hash(forged.value) < suite.hash(value))
        with pytest.raises(ValueError, match="another value"):
            verify_state_proof(root, forged, suite)
    assert True in hashes and False in hashes
    # Entries: torn, duplicated, out of order.
    e = good.entries
    assert len(e) >= 2 * ENTRY_BYTES
    for entries, why in ((e + b"x", "not a whole number of 64-byte entries"),
                         (e[:ENTRY_BYTES] + e, "not strictly sorted"),
                         (e[ENTRY_BYTES:2 * ENTRY_BYTES] + e[:ENTRY_BYTES] + e[2 * ENTRY_BYTES:],
                          "not strictly sorted")):
        with pytest.raises(ValueError, match=why):
            verify_state_proof(root, dataclasses.replace(good, entries=entries), suite)
    # Paths one hash short or long.
    for path in (good.path[:11], good.path + (good.path[0],)):
        with pytest.raises(ValueError, match="audit path"):
            verify_state_proof(root, dataclasses.replace(good, path=path), suite)


# ---- the history window ----------------------------------------------------------------------

def test_a_history_exactly_at_its_write_bound_is_kept():
    t = _tree(history_heights=100, history_writes_max=40)
    for h in range(1, 4):  # 20 writes a block: 40 kept is within the bound, 60 is not
        t.apply(h, {b"k%d-%d" % (h, i): b"v" for i in range(20)}, lambda k: None)
    assert t.heights_kept() == range(1, 4)
    assert StateTree(history_writes_max=0).history_writes_max == 0
    assert StateTree(history_heights=0).history_heights == 0


def test_the_current_block_is_kept_even_when_it_alone_exceeds_the_write_bound():
    t = _tree(history_heights=100, history_writes_max=10)
    height = int("300")
    root = t.apply(height, {b"k%d" % i: b"v" for i in range(20)}, lambda k: None)
    assert t.heights_kept() == range(299, 301)
    assert t.prove(b"k1", b"v", 299).value is None
    assert t.rollback(height) != root


def test_heights_that_jump_leave_no_history_outside_the_window():
    t = _tree(history_heights=3)
    for h in (1, 2, 3, 10):
        t.apply(h, {b"k%d" % h: b"v"}, lambda k: None)
    assert set(t._undo) == {10}  # 1, 2 and 3 are older than 10 - 3
    assert t.heights_kept() == range(9, 11)


def test_height_zero_is_the_oldest_kept():
    t = StateTree(history_heights=10)
    assert t.height == 0 and t.heights_kept() == range(1)
    t.load([], 0)
    t.apply(0, {b"genesis": b"1"}, lambda k: None)  # the kvstore's init_chain
    for h in (1, 2, 3):
        t.apply(h, {b"a": b"%d" % h}, lambda k: None)
    assert t.heights_kept() == range(4)
    with pytest.raises(ValueError, match=r"state at height 5 is not kept \(kept: 0\.\.3\)"):
        t.prove(b"a", b"3", 5)


def test_an_old_value_is_that_of_the_key_asked_for_not_its_bucket_neighbours():
    keys = _same_bucket_keys(3)
    t = _tree(history_heights=10)
    first = {k: b"one-%d" % i for i, k in enumerate(keys)}
    t.apply(1, first, lambda k: None)
    t.apply(2, {keys[0]: b"two", keys[2]: b"two"}, first.get)
    # After height 1 each key held its own value; the neighbours below and above changed at 2.
    assert t.prove(keys[1], b"one-1", 1).value == b"one-1"
    assert t.prove(keys[0], b"two", 1).value == b"one-0"
    assert t.prove(keys[2], b"two", 1).value == b"one-2"
    verify_state_proof(t.root(), t.prove(keys[1], b"one-1"))


# ---- rollback and the tree's arguments -------------------------------------------------------

def test_rollback_takes_only_the_last_height():
    t = _tree()
    t.apply(1, {b"a": b"1"}, lambda k: None)
    t.apply(2, {b"a": b"2"}, lambda k: b"1")
    for wrong in (1, 3):
        with pytest.raises(ValueError, match=f"cannot roll back height {wrong}: the last apply "
                                             "that can be undone is 2"):
            t.rollback(wrong)
    big = _tree()
    big.apply(int("300"), {b"a": b"1"}, lambda k: None)
    big.rollback(int("300"))
    assert big.height == 0


def test_rollback_refuses_every_lie_about_old_values():
    for i in range(8):  # a lying reader's bucket compares both below and above the true one
        t = _tree()
        t.apply(1, {b"a": b"1"}, lambda k: None)
        t.apply(2, {b"a": b"2"}, lambda k, i=i: b"wrong-%d" % i)
        with pytest.raises(RuntimeError, match="unlike before the block"):
            t.rollback(2)


def test_old_values_must_answer_one_value_per_key():
    t = _tree()
    keys = [b"k%d" % i for i in range(int("300"))]
    t.apply(1, dict.fromkeys(keys, b"1"), lambda k: None)
    t.apply(2, dict.fromkeys(keys, b"2"), lambda k: None, old_values=lambda ks: [b"1"] * len(ks))
    for count in (299, 301):
        with pytest.raises(ValueError, match=f"answered {count} values for 300 keys"):
            t.apply(3, dict.fromkeys(keys, b"3"), lambda k: None,
                    old_values=lambda ks, c=count: [b"2"] * c)


def test_the_tree_checks_its_arguments():
    for kw, why in (({"history_heights": -1}, "history_heights"),
                    ({"history_heights": "3"}, "history_heights"),
                    ({"history_writes_max": -1}, "history_writes_max"),
                    ({"history_writes_max": "3"}, "history_writes_max")):
        with pytest.raises(ValueError, match=why):
            StateTree(**kw)
    t = _tree()
    with pytest.raises(TypeError, match="key must be non-empty bytes"):
        t.prove(b"", None)
    with pytest.raises(TypeError, match="key must be non-empty bytes"):
        t.prove("a", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.apply(1, {}, lambda k: None, lambda ks: [])  # type: ignore[misc]  # keyword only
