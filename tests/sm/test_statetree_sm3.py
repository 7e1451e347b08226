"""The state commitment on an SM2/SM3 chain: every hash of the tree is SM3 (keys, values, the
buckets' leaf hashes SM3(0x00 || bucket) and the SM3 Merkle tree over them). The native SM3
buckets against a reference built from OpenSSL's SM3 (or the pure-Python one) and the
reference Merkle tree; proofs of the SM3 tree verify only as SM3 ones; the kvstore hashes its
state in the chain's suite (``app.crypto``, set by the node)."""
from __future__ import annotations

import hashlib
import random

import pytest

from engine import _native_sm, tx
from engine._reference import sm3 as ref_sm3
from engine._reference.merkle import root_from_hashes
from engine.app import KVStoreApp, MemoryState
from engine.statetree import BUCKETS, StateProof, StateTree, bucket_of, verify_state_proof
from engine.suite import ED25519_BLAKE3, SM2_SM3, get_suite

SM = get_suite(SM2_SM3)

try:
    hashlib.new("sm3")

    def _sm3(data: bytes) -> bytes:
        return hashlib.new("sm3", data).digest()
except ValueError:  # an OpenSSL without SM3: the pure-Python reference (slower)
    _sm3 = ref_sm3.sm3


def _reference_root(state: dict[bytes, bytes]) -> bytes:
    """The SM3 state root from the definition (statetree.py's docstring), with nothing of the
    engine's native hashing: buckets of SM3(key) || SM3(value) sorted by key hash, leaf
    SM3(0x00 || bucket), node SM3(0x01 || left || right), RFC 6962 shape."""
    buckets: list[list[bytes]] = [[] for _ in range(BUCKETS)]
    for k, v in state.items():
        kh = _sm3(k)
        buckets[int.from_bytes(kh[:2], "big") >> 4].append(kh + _sm3(v))
    leaves = [_sm3(b"\x00" + b"".join(sorted(entries))) for entries in buckets]
    return root_from_hashes(leaves, lambda a, b: _sm3(b"\x01" + a + b), _sm3(b""))


def _apply(state: dict, writes: dict) -> None:
    for k, v in writes.items():
        if v is None:
            state.pop(k, None)
        else:
            state[k] = v


def test_sm3_buckets_match_the_reference_under_inserts_replaces_and_deletes():
    rng = random.Random(32)
    tree, state = StateTree(history_heights=5, suite=SM2_SM3), {}
    assert tree.suite is SM
    for h in range(1, 13):
        n = rng.choice([1, 3, 40, 300]) if h % 6 else 5000
        writes: dict[bytes, bytes | None] = {}
        for _ in range(n):
            k = b"key-%d" % rng.randrange(6000 if h % 6 == 0 else 1500)
            writes[k] = None if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 90))
        root = tree.apply(h, writes, state.get)
        _apply(state, writes)
        assert len(tree) == len(state)
        assert root == _reference_root(state), f"height {h}"
    blake3_tree = StateTree()
    blake3_tree.load(state.items(), 12)
    assert blake3_tree.root() != tree.root()  # not the default suite's tree
    assert tree.apply(13, dict.fromkeys(state), state.get) == _reference_root({})


def test_sm3_native_buckets_start_empty_and_hash_with_the_leaf_prefix():
    t = _native_sm.BucketTree()
    assert len(t) == 0 and t.leaves() == _sm3(b"\x00") * BUCKETS
    kh, vh = _sm3(b"k"), _sm3(b"v")
    touched, old = t.apply(kh, vh, None)
    b = bucket_of(kh)
    assert touched == b.to_bytes(2, "little") and old == _sm3(b"\x00")
    assert t.leaves()[32 * b:32 * b + 32] == _sm3(b"\x00" + kh + vh)
    with pytest.raises(ValueError, match="khs"):
        t.apply(b"x" * 33, b"", None)


def test_sm3_proofs_verify_as_sm3_only_and_history_rolls_back():
    tree, state = StateTree(history_heights=10, suite=SM2_SM3), {}
    roots = {}
    for h in range(1, 6):
        writes = {b"k%d" % i: b"v%d-%d" % (i, h) for i in range(h * 50)}
        if h == 4:
            writes[b"k1"] = None
        roots[h] = tree.apply(h, writes, state.get)
        _apply(state, writes)
    for h, key in ((5, b"k7"), (3, b"k7"), (4, b"k1"), (5, b"absent")):
        proof = tree.prove(key, state.get(key), h)
        verify_state_proof(roots[h], proof, SM2_SM3)
        verify_state_proof(roots[h], proof, SM)
        with pytest.raises(ValueError):
            verify_state_proof(roots[h], proof)  # the default suite reads it as BLAKE3
        with pytest.raises(ValueError):
            verify_state_proof(roots[h], proof, ED25519_BLAKE3)
    assert tree.prove(b"k1", state.get(b"k1"), 4).value is None
    assert tree.prove(b"k1", state.get(b"k1"), 3).value == b"v1-3"
    forged = tree.prove(b"k7", state[b"k7"])
    forged = StateProof(forged.key, b"forged", forged.height, forged.bucket, forged.entries,
                        forged.path)
    with pytest.raises(ValueError, match="another value"):
        verify_state_proof(roots[5], forged, SM2_SM3)
    assert tree.rollback(5) == roots[4]
    with pytest.raises(ValueError, match="crypto must be one of"):
        StateTree(suite="sm9")


def _kv_tx(key, nonce, payload):
    return tx.decode_tx(tx.encode_tx(key, nonce, payload, "kv"))


def test_the_kvstore_hashes_its_state_in_the_chain_suite():
    signer = SM.generate_key()
    kv = KVStoreApp()
    kv.state = MemoryState()
    kv.crypto = SM2_SM3  # what the node sets from genesis.json before init_chain / restore
    genesis = kv.init_chain("kv", {"seed": "1"}).app_hash
    assert genesis == _reference_root({b"seed": b"1"})
    kv.commit()
    r1 = kv.finalize_block(1, [_kv_tx(signer, 0, b"a=1"), _kv_tx(signer, 1, b"b=2")])
    kv.commit()
    assert r1.app_hash == _reference_root({b"seed": b"1", b"a": b"1", b"b": b"2"})
    q = kv.query("/key", b"a", 1)
    verify_state_proof(r1.app_hash, StateProof.from_json(q.proof), SM2_SM3)
    entries = sorted(kv.state.items(b""))
    assert kv.snapshot_state_hash(entries) == r1.app_hash
    again = KVStoreApp()
    again.state, again.crypto = kv.state, SM2_SM3
    again.restore(1, r1.app_hash)
    assert again.tree.suite is SM and again.tree.root() == r1.app_hash
    # A kvstore left on the default suite cannot restore an SM2 chain's state: the roots differ.
    default = KVStoreApp()
    default.state = kv.state
    with pytest.raises(ValueError, match="does not hash"):
        default.restore(1, r1.app_hash)
