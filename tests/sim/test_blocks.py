"""The simulator's block validity: parent link, the parent's commit certificate, evidence."""
from engine import crypto, hashing
from engine.consensus import CommitCertificate, VoteType
from engine.consensus.types import vote_sign_bytes
from engine.sim.blocks import GENESIS_HASH, SimBlock, make_validity
from engine.sim.world import CHAIN_ID, SimConfig, World


def _setup():
    world = World(0, SimConfig(validators=4))
    keys = [n.key for n in world.nodes]
    parent = SimBlock(1, GENESIS_HASH, 0, False, (), b"", b"p").encode()
    ph = hashing.blake3(parent)
    msg = vote_sign_bytes(CHAIN_ID, VoteType.PRECOMMIT, 1, 0, ph)
    cert = CommitCertificate.build(1, 0, ph, {i: keys[i].sign(msg) for i in (0, 1, 2)}, 4)
    valid = make_validity(CHAIN_ID, world.validator_set, crypto.verify, crypto.verify_batch,
                          lambda h: {1: GENESIS_HASH, 2: ph}.get(h))
    return valid, parent, ph, cert


def test_parent_and_last_commit_are_checked():
    valid, parent, ph, cert = _setup()
    assert valid(1, parent)
    assert valid(2, SimBlock(2, ph, 1, False, (), cert.encode(), b"x").encode())
    assert not valid(2, SimBlock(2, ph, 1, False, (), b"", b"x").encode())  # no last commit
    weak = CommitCertificate.build(1, 0, ph, {0: cert.signatures[0], 1: cert.signatures[1]}, 4)
    assert not valid(2, SimBlock(2, ph, 1, False, (), weak.encode(), b"x").encode())
    forged = CommitCertificate(1, 0, ph, cert.bitmap, (bytes(64),) + cert.signatures[1:])
    assert not valid(2, SimBlock(2, ph, 1, False, (), forged.encode(), b"x").encode())
    assert not valid(2, SimBlock(2, bytes(32), 1, False, (), cert.encode(), b"x").encode())
    assert not valid(2, SimBlock(2, ph, 1, True, (), cert.encode(), b"x").encode())  # flagged
    assert not valid(3, SimBlock(3, ph, 1, False, (), cert.encode(), b"x").encode())
    assert not valid(2, b"short")
