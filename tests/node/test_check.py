"""`engine store check` with the node's block format: hashes, certificates, app-hash links."""
import json

import pytest

from engine import consensus as cs
from engine.block import Block
from engine.crypto import SigningKey
from engine.hashing import blake3, blake3_many
from engine.node.check import make_verifier
from engine.store import Store, check_store

CHAIN = b"test-chain"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store"))
    yield s
    s.close()


KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
VALIDATORS = [(k.public_key, 10) for k in KEYS]
VSET_HASH = cs.ValidatorSet([cs.Validator(pk, p) for pk, p in VALIDATORS]).hash()


def _cert(height: int, block_hash: bytes, signers=range(3)) -> bytes:
    msg = cs.vote_sign_bytes(CHAIN, cs.VoteType.PRECOMMIT, height, 0, block_hash)
    sigs = {i: KEYS[i].sign(msg) for i in signers}
    return cs.CommitCertificate.build(height, 0, block_hash, sigs, len(KEYS)).encode()


def _chain(store: Store, heights: int, *, bad_cert_at: int | None = None,
           vset_hash: bytes = VSET_HASH) -> None:
    parent, app, last_commit = bytes(32), blake3(b"genesis app"), b""
    for h in range(1, heights + 1):
        txs = [b"tx %d %d" % (h, i) for i in range(5)]
        block = Block.make(chain_id=CHAIN, height=h, time_ms=1000 * h, parent_hash=parent,
                           app_hash=app, proposer_index=0, last_commit=last_commit,
                           evidence=[], txs=txs, validators_hash=vset_hash,
                           next_validators_hash=vset_hash)
        block_hash = block.hash()
        cert = _cert(h, block_hash, signers=range(2) if h == bad_cert_at else range(3))
        new_app = blake3(b"app %d" % h)
        store.save_block(h, block_hash, block.head(), txs, cert, parent_hash=parent,
                         app_hash=new_app, tx_ids=blake3_many(txs))
        parent, app, last_commit = block_hash, new_app, cert


def test_node_verifier_accepts_a_valid_chain(store):
    _chain(store, 6)
    report = check_store(store, verify_block=make_verifier(CHAIN, VALIDATORS))
    assert report.ok, report.summary()


def test_node_verifier_reports_a_certificate_without_quorum(store):
    _chain(store, 6, bad_cert_at=4)  # 2 of 4 equal-power signers: not more than 2/3
    report = check_store(store, verify_block=make_verifier(CHAIN, VALIDATORS))
    text = report.summary()
    assert "height 4: commit certificate does not verify" in text
    assert "height 5: parent certificate (last_commit) does not verify" in text


def test_node_verifier_reports_wrong_validators_and_chain(store):
    _chain(store, 3)
    others = [(SigningKey(bytes([9 + i]) * 32).public_key, 10) for i in range(4)]
    assert "does not verify" in check_store(
        store, verify_block=make_verifier(CHAIN, others)).summary()
    assert "chain id" in check_store(
        store, verify_block=make_verifier(b"other", VALIDATORS)).summary()


def test_node_verifier_reports_a_header_naming_another_validator_set(store):
    _chain(store, 2, vset_hash=blake3(b"another set"))
    text = check_store(store, verify_block=make_verifier(CHAIN, VALIDATORS)).summary()
    assert "height 1: header validators_hash is not the hash of the set that signs it" in text


def _write_genesis(home) -> None:
    genesis = {"chain_id": CHAIN.decode(), "validators": [
        {"name": f"v{i}", "power": p, "public_key": pk.hex()}
        for i, (pk, p) in enumerate(VALIDATORS)]}
    (home / "genesis.json").write_text(json.dumps(genesis))


def test_cli_uses_the_home_genesis(tmp_path, capsys):
    from engine.cli import main

    home = tmp_path / "home"
    with Store(str(home / "store")) as s:
        _chain(s, 4, bad_cert_at=2)
    _write_genesis(home)
    assert main(["store", "check", "--home", str(home)]) == 1
    out = capsys.readouterr().out
    assert "height 2: commit certificate does not verify" in out


def accept_everything(block, parent):
    return []


def test_cli_verifier_option(tmp_path, capsys):
    """--verifier MODULE:FUNCTION replaces the node's hook; a bad spec is a clear error."""
    from engine.cli import main

    home = tmp_path / "home"
    with Store(str(home / "store")) as s:
        _chain(s, 3, bad_cert_at=2)
    _write_genesis(home)
    # The custom hook sees nothing wrong (it replaces the certificate check).
    assert main(["store", "check", "--home", str(home), "--verifier",
                 "tests.node.test_check:accept_everything"]) == 0
    capsys.readouterr()
    for spec, why in (("no_colon", "MODULE:FUNCTION"), ("engine.nothere:f", "nothere"),
                      ("tests.node.test_check:missing", "missing"),
                      ("tests.node.test_check:CHAIN", "not callable")):
        assert main(["store", "check", "--home", str(home), "--verifier", spec]) == 1
        assert why in capsys.readouterr().out, spec
