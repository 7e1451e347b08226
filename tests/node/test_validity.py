"""Block validity (engine/node/validity.py) in isolation: every rule, each with a block that
breaks only it. The validator is built from its parts (a mempool, a tip, a lookup function),
no node, no network: the seams of the node wing at work."""
from __future__ import annotations

import dataclasses

import pytest

from engine import consensus as cs
from engine import tx as txmod
from engine.block import Block, header_size
from engine.crypto import SigningKey
from engine.hashing import blake3
from engine.mempool import Mempool
from engine.node.ports import Counters
from engine.node.tip import ChainTip
from engine.node.validity import BlockValidator

CHAIN = b"validity"
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
VSET = cs.ValidatorSet([cs.Validator(k.public_key, 10) for k in KEYS])
SENDER = SigningKey(b"\x42" * 32)
PARENT = blake3(b"parent block")
APP = blake3(b"app after parent")


def _cert(height: int, block_hash: bytes, signers=range(3)) -> bytes:
    msg = cs.vote_sign_bytes(CHAIN, cs.VoteType.PRECOMMIT, height, 0, block_hash)
    return cs.CommitCertificate.build(height, 0, block_hash, {i: KEYS[i].sign(msg)
                                                              for i in signers}, 4).encode()


def _txs(n: int, start: int = 0) -> list[bytes]:
    return [txmod.encode_tx(SENDER, start + i, b"k%d=v" % i, CHAIN.decode()) for i in range(n)]


def _validator(*, committed: set[bytes] = frozenset(), committed_evidence=frozenset(),
               height: int = 5) -> tuple[BlockValidator, Counters]:
    counters = Counters()
    mempool = Mempool(chain_id=CHAIN, check_tx=lambda t: None,
                      find_committed=lambda ids: [i in committed for i in ids])
    v = BlockValidator(chain_id=CHAIN, validators=VSET,
                       tip=ChainTip(height=height - 1, block_hash=PARENT, app_hash=APP),
                       mempool=mempool, find_committed=lambda ids: [i in committed for i in ids],
                       evidence_committed=lambda h: h in committed_evidence, block_txs_max=100,
                       block_bytes_max=1 << 20, counters=counters)
    return v, counters


def _block(height: int = 5, **changes) -> bytes:
    fields = {"chain_id": CHAIN, "height": height, "time_ms": 1000, "parent_hash": PARENT,
              "app_hash": APP, "proposer_index": 0, "last_commit": _cert(height - 1, PARENT),
              "evidence": [], "txs": _txs(3), "validators_hash": VSET.hash(),
              "next_validators_hash": VSET.hash()}
    fields.update(changes)
    return Block.make(**fields).encode()


def _evidence(height: int) -> bytes:
    votes = []
    for block_hash in (b"\1" * 32, b"\2" * 32):
        sb = cs.vote_sign_bytes(CHAIN, cs.VoteType.PREVOTE, height, 0, block_hash)
        votes.append(cs.Vote(cs.VoteType.PREVOTE, height, 0, block_hash, 3, KEYS[3].sign(sb)))
    return cs.DuplicateVoteEvidence(*votes).encode()


def test_a_valid_block_is_valid():
    v, counters = _validator()
    assert v.is_valid(5, _block())
    assert v.is_valid(5, _block(evidence=[_evidence(4)]))
    assert counters.get("invalid_block") == 0


def _forged_signature_txs() -> list[bytes]:
    txs = _txs(3)
    bad = bytearray(txs[1])
    bad[-1] ^= 1
    return [txs[0], bytes(bad), txs[2]]


@pytest.mark.parametrize("why,height,block", [
    ("other chain", 5, lambda: _block(chain_id=b"other")),
    ("other height", 5, lambda: _block(height=6)),
    ("not after the tip", 6, lambda: _block(height=6)),
    ("wrong parent", 5, lambda: _block(parent_hash=bytes(32))),
    ("wrong app hash", 5, lambda: _block(app_hash=bytes(32))),
    ("too many txs", 5, lambda: _block(txs=_txs(101))),
    ("parent certificate short of power", 5, lambda: _block(last_commit=_cert(4, PARENT, [0, 1]))),
    ("parent certificate for another block", 5, lambda: _block(last_commit=_cert(4, APP))),
    ("transaction twice", 5, lambda: _block(txs=_txs(2) + _txs(1))),
    ("forged transaction signature", 5, lambda: _block(txs=_forged_signature_txs())),
    ("evidence from the future", 5, lambda: _block(evidence=[_evidence(5)])),
    ("another validator set", 5, lambda: _block(validators_hash=blake3(b"other set"))),
    ("another next validator set", 5, lambda: _block(next_validators_hash=blake3(b"other"))),
])
def test_each_rule_rejects_what_breaks_it(why, height, block):
    v, counters = _validator()
    assert not v.is_valid(height, block()), why
    assert counters.get("invalid_block") == 1


def test_wrong_tx_root_is_rejected():
    good = Block.decode(_block())
    raw = dataclasses.replace(good, tx_root=bytes(32)).encode()
    v, _ = _validator()
    assert not v.is_valid(5, raw)


def test_a_body_swapped_under_a_header_is_refused_without_poisoning_the_verdict_cache():
    """A relayer that pairs the proposer's header with another body must not make the honest
    block (same id) look invalid: the mismatch is refused and not remembered."""
    good = _block()
    n = header_size(len(CHAIN))
    forged = good[:n] + _block(txs=_txs(3, start=7))[n:]
    v, counters = _validator()
    assert not v.is_valid(5, forged)
    assert counters.get("invalid_block") == 1
    assert v.is_valid(5, good)


def test_committed_transactions_and_evidence_are_rejected():
    txs = _txs(3)
    v, _ = _validator(committed={blake3(txs[2])})
    assert not v.is_valid(5, _block(txs=txs))
    ev = _evidence(3)
    v, _ = _validator(committed_evidence={blake3(ev)})
    assert not v.is_valid(5, _block(evidence=[ev]))


def test_block_one_has_no_last_commit():
    v, _ = _validator(height=1)
    assert v.is_valid(1, _block(height=1, last_commit=b""))
    v, _ = _validator(height=1)
    assert not v.is_valid(1, _block(height=1, last_commit=_cert(1, PARENT)))


def test_verdicts_are_cached_and_cleared_at_commit():
    v, counters = _validator()
    bad = _block(parent_hash=bytes(32))
    assert not v.is_valid(5, bad) and not v.is_valid(5, bad)
    assert counters.get("invalid_block") == 1  # judged once
    v.clear()
    assert not v.is_valid(5, bad)
    assert counters.get("invalid_block") == 2


def test_a_remembered_block_is_not_parsed_or_hashed_again():
    """``remember_block`` (compact proposals) keeps a block's id and decoded form as ``block_hash``
    and ``decoded`` would compute them; a block whose body does not match its header is not
    kept, so ``block_hash`` still finds the fault. Fails if remembering skipped the body check
    or kept something other than what parsing gives."""
    from engine.block import block_id
    from engine.errors import ProtocolError

    v, counters = _validator()
    raw = _block()
    parsed = Block.decode(raw)
    ids = [blake3(t) for t in parsed.txs]
    mine = Block.decode(raw)
    v.remember_block(raw, block_id(raw), mine, ids)
    assert v.block_hash(raw) == block_id(raw)
    kept = v.decoded(block_id(raw), raw)
    assert kept[0] is mine and kept[1] == ids  # the remembered objects, not a new parse
    assert v.is_valid(5, raw)
    # Not kept: a body its header does not commit to (another last commit), ids that do not
    # have the header's tx root, a key that is not the header's hash.
    forged = dataclasses.replace(parsed, last_commit=_cert(4, PARENT, signers=range(1, 4)))
    swapped = [ids[1], ids[0], ids[2]]
    for block, tx_ids, key in ((forged, ids, block_id(raw)), (parsed, swapped, block_id(raw)),
                               (parsed, ids, b"\x01" * 32)):
        v.clear()
        v.remember_block(raw, key, block, tx_ids)
        assert v.block_hash(raw) == block_id(raw)
        again = v.decoded(block_id(raw), raw)
        assert again[0] is not block and again[0] == parsed and again[1] == ids
    with pytest.raises(ProtocolError):
        v.block_hash(raw[:-1] + bytes([raw[-1] ^ 1]))
    assert counters.get("invalid_block") == 0
