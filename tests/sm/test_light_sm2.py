"""The light client on an SM2/SM3 chain: light blocks decoded in the chain's suite (64-byte
keys, SM3 block ids and set hashes, SM2 certificates), verification across set changes and by
bisection, forged and mixed-suite blocks refused, fork evidence, SM3 transaction proofs, and
against a 4-validator SM2 testnet: SM3 state proofs of its kvstore and `engine light verify
--crypto sm2-sm3`."""
from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import pytest

from engine import tx
from engine.consensus.types import Validator, ValidatorSet
from engine.errors import ProtocolError
from engine.hashing import blake3
from engine.light import (
    ForkDetected,
    LightBlock,
    LightClient,
    MemorySource,
    RpcSource,
    VerificationFailed,
    conflict_evidence,
    decode_validator_set,
    tx_proof_from_json,
    verify_light_block,
    verify_state_proof,
    verify_tx_inclusion,
)
from engine.light.synthetic import SyntheticChain, make_keys
from engine.statetree import StateProof
from engine.suite import get_suite
from tests.node.helpers import make_testnet, run, start_nodes

SM = get_suite("sm2-sm3")
ED = get_suite(None)
CHAIN = b"light-sm2"
KEYS = make_keys(8, suite=SM)
T0 = 1_700_000_000_000


def _members(keys, power=10):
    return [(k, power) for k in keys]


def _chain(epochs, length=24, suite=SM, **kw) -> SyntheticChain:
    return SyntheticChain(CHAIN, epochs, length, start_time_ms=T0, suite=suite, **kw)


def _client(chain, trusted_height=1, **kw) -> LightClient:
    kw.setdefault("now_ms", lambda: chain.header(chain.length).time_ms + 1000)
    return LightClient(MemorySource(chain.light_block), chain.light_block(trusted_height), **kw)


def test_an_sm2_light_block_is_named_and_signed_in_its_suite():
    chain = _chain([(1, _members(KEYS[:4]))])
    lb = chain.light_block(5)
    assert all(len(k) == 64 for k in (v.public_key for v in lb.validators.validators))
    assert lb.suite is SM
    assert lb.hash() == SM.hash(lb.header.encode()) != blake3(lb.header.encode())
    assert lb.header.validators_hash == lb.validators.hash(SM.hash)
    lb.check_basic()
    # The same bytes taken as a default-suite block: 72-byte set entries do not decode.
    with pytest.raises(ProtocolError, match="a set of 4 validators is 164 bytes, not 292"):
        LightBlock.decode(lb.encode())
    assert LightBlock.decode(lb.encode(), SM) == lb
    assert LightBlock.decode(lb.encode(), "sm2-sm3").suite is SM
    assert LightBlock.from_json(lb.to_json(), SM) == lb
    assert decode_validator_set(lb.validators.encode(), SM) == lb.validators


def test_sequential_and_bisection_across_sm2_set_changes():
    chain = _chain([(1, _members(KEYS[:4])), (8, _members(KEYS[:5])),
                    (16, _members(KEYS[4:8]))])  # the whole set replaced at 16
    lc = _client(chain)
    assert lc.verify_sequential(10).hash() == chain.header(10).hash(SM)
    lc2 = _client(chain)
    assert lc2.verify_to(24).hash() == chain.header(24).hash(SM)
    assert lc2.verified_count > 1  # bisected: nobody of the trusted set signs 24


def test_from_trusted_hash_with_the_sm3_id():
    chain = _chain([(1, _members(KEYS[:4]))])
    src = MemorySource(chain.light_block)
    lc = LightClient.from_trusted_hash(src, 2, chain.header(2).hash(SM),
                                       now_ms=lambda: chain.header(24).time_ms + 1000)
    assert lc.verify_to(20).hash() == chain.header(20).hash(SM)
    with pytest.raises(VerificationFailed, match="not the trusted hash"):
        LightClient.from_trusted_hash(src, 2, chain.header(2).hash(ED))  # the BLAKE3 of it


def test_forged_sm2_certificates_and_sets_are_refused():
    chain = _chain([(1, _members(KEYS[:4]))])
    good = chain.light_block(6)
    sigs = list(good.certificate.signatures)
    sigs[1] = bytes(reversed(sigs[1]))
    forged = dataclasses.replace(good, certificate=dataclasses.replace(
        good.certificate, signatures=tuple(sigs)))
    lc = _client(chain)
    with pytest.raises(VerificationFailed, match="invalid signatures"):
        lc.verify(forged)
    other = ValidatorSet([Validator(k.public_key, 10) for k in make_keys(4, b"x", SM)])
    with pytest.raises(VerificationFailed, match="not the one its header names"):
        lc.verify(dataclasses.replace(good, validators=other))
    with pytest.raises(VerificationFailed, match="signs another block hash"):
        lc.verify(dataclasses.replace(good, header=dataclasses.replace(
            good.header, app_hash=bytes(32))))
    assert lc.verify(good) is good


def test_a_block_of_the_other_suite_is_refused_not_mixed_in():
    sm_chain = _chain([(1, _members(KEYS[:4]))])
    ed_chain = _chain([(1, _members(make_keys(4)))], suite=ED)
    trusted = sm_chain.light_block(1)
    now = sm_chain.header(24).time_ms + 1000
    with pytest.raises(VerificationFailed, match="of the ed25519-blake3 suite, the trusted "
                                                 "chain's is sm2-sm3"):
        verify_light_block(CHAIN, trusted, ed_chain.light_block(2), now_ms=now,
                           trusting_period_ms=10**12)
    with pytest.raises(VerificationFailed, match="not one chain"):
        conflict_evidence(CHAIN, sm_chain.light_block(3), ed_chain.light_block(3))


def test_fork_evidence_on_an_sm2_chain():
    members = [(1, _members(KEYS[:4]))]
    chain = _chain(members)
    forked = _chain(members, app_hash=lambda h: bytes(32) if h > 1 else chain.header(1).app_hash)
    lc = _client(chain, witnesses=[MemorySource(forked.light_block, "witness")])
    lc.verify_to(20)
    with pytest.raises(ForkDetected) as e:
        lc.detect_fork(20)
    assert e.value.evidence.double_signers() == sorted(k.public_key for k in KEYS[:4])


def test_sm3_transaction_proofs_against_a_verified_sm2_header():
    envelopes = [b"envelope %d" % i for i in range(5)]
    ids = SM.hash_many(envelopes)
    chain = _chain([(1, _members(KEYS[:4]))], tx_ids=lambda h: ids if h == 7 else [])
    lb = _client(chain).verify_to(7)
    assert lb.header.tx_root == SM.tx_root(ids)
    proof = SM.tx_proof(envelopes, 3)
    verify_tx_inclusion(lb, envelopes[3], proof)
    verify_tx_inclusion(lb.header, envelopes[3], proof, SM)  # a bare header names its suite
    with pytest.raises(VerificationFailed, match="not in block 7"):
        verify_tx_inclusion(lb, envelopes[2], proof)
    with pytest.raises(VerificationFailed, match="not in block 7"):
        verify_tx_inclusion(lb.header, envelopes[3], proof)  # hashed as BLAKE3: no
    with pytest.raises(ValueError, match="not the light block's"):
        verify_tx_inclusion(lb, envelopes[3], proof, ED)


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "light", "verify", *argv],
                          check=False, capture_output=True, text=True, timeout=60)


def test_light_client_against_an_sm2_testnet(tmp_path):
    homes = make_testnet(tmp_path, 4, chain_id="light-sm2", crypto="sm2-sm3")
    sender = SM.generate_key()

    async def main():
        nodes = await start_nodes(homes)
        loop = asyncio.get_running_loop()
        try:
            node = nodes[0]
            env = tx.encode_tx(sender, 1, b"city=xian", "light-sm2")
            r = await node.submit_tx(env)
            assert r.ok, r.log
            info = await node.wait_for_tx(r.tx_id, 30)
            await node.wait_for_height(info["height"] + 2, 30)
            url = node.rpc.url
            h1 = node.light_block(1)
            target = info["height"] + 1

            def verify_in_python():
                src = RpcSource(url, suite="sm2-sm3")
                try:
                    lc = LightClient.from_trusted_hash(src, 1, bytes.fromhex(h1["hash"]))
                    block = lc.verify_to(info["height"])
                    assert block.hash().hex() == node.block_info(info["height"])["hash"]
                    verify_tx_inclusion(block, env, tx_proof_from_json(info["proof"]))
                    # The kvstore's state tree is SM3 on this chain: a proof of the value
                    # verifies against the next header in its suite, not as a BLAKE3 tree.
                    answer = src.client.query("/key", b"city", height=info["height"],
                                              prove=True)
                    proof = StateProof.from_json(answer["proof"])
                    assert proof.value == b"xian"
                    after = lc.verify_to(info["height"] + 1)
                    verify_state_proof(after, proof)
                    verify_state_proof(after.header, proof, "sm2-sm3")
                    with pytest.raises(VerificationFailed, match="audit path|bucket"):
                        verify_state_proof(after.header, proof)  # read as the default suite
                finally:
                    src.close()
                default = RpcSource(url)  # the SM2 chain's blocks read as Ed25519 ones
                try:
                    with pytest.raises(VerificationFailed, match="malformed light block"):
                        default.light_block(1)
                finally:
                    default.close()

            await loop.run_in_executor(None, verify_in_python)
            good = await loop.run_in_executor(None, lambda: _cli(
                "--rpc", url, "--trusted-height", "1", "--trusted-hash", h1["hash"],
                "--height", str(target), "--witness", nodes[1].rpc.url,
                "--crypto", "sm2-sm3"))
            assert good.returncode == 0, good.stderr
            assert good.stdout.strip() == node.block_info(target)["hash"]
            as_default = await loop.run_in_executor(None, lambda: _cli(
                "--rpc", url, "--trusted-height", "1", "--trusted-hash", h1["hash"],
                "--height", str(target)))
            assert as_default.returncode == 1 and "malformed light block" in as_default.stderr
            bad = await loop.run_in_executor(None, lambda: _cli(
                "--rpc", url, "--trusted-height", "1", "--trusted-hash", h1["hash"],
                "--crypto", "sm9"))
            assert bad.returncode == 2 and "--crypto" in bad.stderr
        finally:
            for n in reversed(nodes):
                await n.stop()

    run(main(), timeout_s=180)
