"""engine/light/proofs.py rule by rule, on synthetic chains of both suites: which header and
suite a proof is checked against, the transaction proof's JSON form, every refusal of a
transaction or state proof with its reason, and the bounds (the block's transaction count, the
height a state proof names)."""
from __future__ import annotations

import dataclasses

import pytest

from engine.hashing import MerkleProof
from engine.light import VerificationFailed
from engine.light.proofs import tx_proof_from_json, verify_state_proof, verify_tx_inclusion
from engine.light.synthetic import SyntheticChain, make_keys
from engine.statetree import StateTree
from engine.suite import ED25519_BLAKE3, SM2_SM3, get_suite

SUITES = [ED25519_BLAKE3, SM2_SM3]
ENVS = [b"envelope-%d" % i for i in range(5)]


def _chain(crypto: str, length: int = 12, tx_height: int = 7, envs: list[bytes] = ENVS,
           writes_at: tuple[int, ...] = (3, 5), key: bytes = b"price"):
    """A ``length``-height chain of ``crypto`` whose block ``tx_height`` holds ``envs`` and
    whose app hashes are the roots of a state tree of that suite (``key`` written at the
    heights ``writes_at``, its value the height)."""
    suite = get_suite(crypto)
    tree = StateTree(history_heights=20, suite=suite)
    tree.load([], 0)
    state: dict[bytes, bytes] = {}
    roots = {0: tree.root()}
    for h in range(1, length + 1):
        writes = {key: b"%d" % h} if h in writes_at else {}
        roots[h] = tree.apply(h, writes, state.get)
        state.update(writes)
    keys = make_keys(4, b"proofs-" + crypto.encode(), suite=suite)
    chain = SyntheticChain(b"proofs", [(1, [(k, 10) for k in keys])], length, suite=suite,
                           app_hash=lambda h: roots[h - 1],
                           tx_ids=lambda h: suite.hash_many(envs) if h == tx_height else [])
    return chain, tree, state


@pytest.fixture(params=SUITES)
def chain(request):
    return _chain(request.param)


def _tx_proof(suite, index: int) -> MerkleProof:
    return suite.tx_proof(ENVS, index)


def test_a_transaction_of_the_block_is_proven_in_the_chain_suite(chain):
    c, _, _ = chain
    lb = c.light_block(7)
    for i in range(len(ENVS)):
        verify_tx_inclusion(lb, ENVS[i], _tx_proof(c.suite, i))
        verify_tx_inclusion(lb.header, bytearray(ENVS[i]), _tx_proof(c.suite, i), c.suite)
    verify_tx_inclusion(lb, ENVS[2], _tx_proof(c.suite, 2), c.suite.name)  # named: same suite


def test_transaction_refusals_name_the_reason(chain):
    c, _, _ = chain
    lb, proof = c.light_block(7), _tx_proof(c.suite, 1)
    with pytest.raises(VerificationFailed, match="is not in block 7"):
        verify_tx_inclusion(lb, b"not-in-block", proof)
    with pytest.raises(VerificationFailed, match="is not in block 7"):
        verify_tx_inclusion(lb, ENVS[2], proof)  # another transaction's path
    with pytest.raises(VerificationFailed, match="a block of 4 transactions, block 7 has 5"):
        verify_tx_inclusion(lb, ENVS[1], dataclasses.replace(proof, size=4))
    with pytest.raises(VerificationFailed, match="a block of 6 transactions, block 7 has 5"):
        verify_tx_inclusion(lb, ENVS[1], dataclasses.replace(proof, size=6))
    with pytest.raises(VerificationFailed, match="malformed transaction proof"):
        verify_tx_inclusion(lb, ENVS[1], dataclasses.replace(proof, path=(b"short",)))
    with pytest.raises(TypeError, match="envelope must be non-empty bytes"):
        verify_tx_inclusion(lb, b"", proof)
    with pytest.raises(TypeError, match="envelope must be non-empty bytes"):
        verify_tx_inclusion(lb, ENVS[1].hex(), proof)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="proof must be a MerkleProof, not dict"):
        verify_tx_inclusion(lb, ENVS[1], {"index": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="block must be a LightBlock or a Header, not bytes"):
        verify_tx_inclusion(b"header", ENVS[1], proof)  # type: ignore[arg-type]
    empty = c.light_block(6)  # no transactions: any proof is for another block
    with pytest.raises(VerificationFailed, match="block 6 has 0"):
        verify_tx_inclusion(empty, ENVS[1], proof)


def test_a_proof_is_checked_in_the_light_block_suite_or_the_one_named(chain):
    c, _, _ = chain
    other = get_suite(SM2_SM3 if c.suite.name == ED25519_BLAKE3 else ED25519_BLAKE3)
    lb, proof = c.light_block(7), _tx_proof(c.suite, 1)
    with pytest.raises(ValueError, match=f"suite {other.name} is not the light block's "
                                         rf"\({c.suite.name}\)"):
        verify_tx_inclusion(lb, ENVS[1], proof, other)
    # A bare header has no suite: the one named (default ed25519-blake3) reads the tree.
    if c.suite.name == ED25519_BLAKE3:
        verify_tx_inclusion(lb.header, ENVS[1], proof)
    else:
        with pytest.raises(VerificationFailed, match="is not in block 7"):
            verify_tx_inclusion(lb.header, ENVS[1], proof)
    with pytest.raises(VerificationFailed, match="is not in block 7"):
        verify_tx_inclusion(lb.header, ENVS[1], proof, other)


def test_a_state_value_and_an_absence_are_proven_against_the_next_header(chain):
    c, tree, state = chain
    for h, key, value in ((5, b"price", b"5"), (4, b"price", b"3"), (2, b"price", None),
                          (9, b"volume", None)):
        proof = tree.prove(key, state.get(key), h)
        assert proof.value == value
        verify_state_proof(c.light_block(h + 1), proof)
        verify_state_proof(c.light_block(h + 1).header, proof, c.suite)


def test_state_refusals_name_the_reason(chain):
    c, tree, state = chain
    proof = tree.prove(b"price", state[b"price"], 5)
    with pytest.raises(VerificationFailed, match="after height 5 is checked against the header "
                                                 "of height 6, not 5"):
        verify_state_proof(c.light_block(5), proof)
    with pytest.raises(VerificationFailed, match="of height 6, not 7"):
        verify_state_proof(c.light_block(7), proof)
    with pytest.raises(VerificationFailed, match="state proof of key b'price' at height 5: "
                                                 "the bucket holds another value"):
        verify_state_proof(c.light_block(6), dataclasses.replace(proof, value=b"99"))
    moved = dataclasses.replace(tree.prove(b"price", state[b"price"], 2), height=5)
    with pytest.raises(VerificationFailed, match="at height 5"):
        verify_state_proof(c.light_block(6), moved)
    with pytest.raises(TypeError, match="proof must be a StateProof, not dict"):
        verify_state_proof(c.light_block(6), proof.to_json())  # type: ignore[arg-type]
    other = get_suite(SM2_SM3 if c.suite.name == ED25519_BLAKE3 else ED25519_BLAKE3)
    with pytest.raises(ValueError, match="is not the light block's"):
        verify_state_proof(c.light_block(6), proof, other)
    with pytest.raises(VerificationFailed, match="state proof of key"):
        verify_state_proof(c.light_block(6).header, proof, other)  # read in the other suite


def test_transaction_proof_json():
    proof = tx_proof_from_json({"index": 1, "size": 5, "path": ["aa" * 32, "bb" * 32]})
    assert proof == MerkleProof(1, 5, (b"\xaa" * 32, b"\xbb" * 32))
    for bad, why in (({"size": 5, "path": []}, "malformed transaction proof: KeyError"),
                     ({"index": "1", "size": 5, "path": []}, "index and size must be ints"),
                     ({"index": 1, "size": 5.0, "path": []}, "index and size must be ints"),
                     ({"index": 1, "size": 5, "path": "aa"}, "a list"),
                     ({"index": 1, "size": 5, "path": [5]}, "malformed transaction proof"),
                     ([1, 5], "malformed transaction proof")):
        with pytest.raises(ValueError, match=why):
            tx_proof_from_json(bad)
    with pytest.raises(ValueError):
        tx_proof_from_json({"index": 1, "size": 5, "path": ["zz"]})


@pytest.mark.parametrize("crypto", SUITES)
def test_heights_and_sizes_above_256_compare_by_value(crypto):
    """Python caches small ints: a height or a transaction count compared by identity would
    pass below 257 and refuse good proofs above. Block 300 of a 301-height chain holds 300
    transactions; the state after 299 is proven against header 300."""
    suite = get_suite(crypto)
    envs = [b"tx-%d" % i for i in range(int("300"))]
    chain, tree, state = _chain(crypto, length=301, tx_height=300, envs=envs, writes_at=(299,),
                                key=b"h")
    lb = chain.light_block(300)
    assert lb.header.tx_count == 300
    verify_tx_inclusion(lb, envs[299], suite.tx_proof(envs, 299))
    proof = tree.prove(b"h", state[b"h"], 299)
    verify_state_proof(lb, proof)
