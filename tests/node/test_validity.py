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


# ---- each rule from both sides, and the parts the rules above do not reach ----------------
# (engine/node/validity.py under `make mutate-broad`: a `!=` turned into `<` or `>` survives a
# test that breaks a rule one way only; docs/mutation.md.)

LOW, HIGH = bytes(31) + b"\x01", b"\xff" * 32  # below and above any hash (not all zero)


@pytest.mark.parametrize("why,height,tip,block", [
    ("a chain id that sorts first", 5, 4, lambda: _block(chain_id=b"aaa")),
    ("a chain id that sorts last", 5, 4, lambda: _block(chain_id=b"zzz")),
    ("a block of the height before", 5, 4,
     lambda: _block(height=4, last_commit=_cert(4, PARENT))),
    ("a block of the height after", 5, 4,
     lambda: _block(height=6, last_commit=_cert(4, PARENT))),
    ("a parent certificate for a block below ours", 5, 4,
     lambda: _block(last_commit=_cert(4, LOW))),
    ("a parent certificate for a block above ours", 5, 4,
     lambda: _block(last_commit=_cert(4, HIGH))),
    ("a parent hash below ours", 5, 4, lambda: _block(parent_hash=LOW)),
    ("a parent hash above ours", 5, 4, lambda: _block(parent_hash=HIGH)),
    ("an app hash below ours", 5, 4, lambda: _block(app_hash=LOW)),
    ("an app hash above ours", 5, 4, lambda: _block(app_hash=HIGH)),
    ("a validator set hash below", 5, 4, lambda: _block(validators_hash=LOW)),
    ("a validator set hash above", 5, 4, lambda: _block(validators_hash=HIGH)),
    ("a next set hash below", 5, 4, lambda: _block(next_validators_hash=LOW)),
    ("a next set hash above", 5, 4, lambda: _block(next_validators_hash=HIGH)),
    ("a block for a height our tip already has", 4, 4, lambda: _block(height=4)),
    ("a parent certificate of the height before the parent", 5, 4,
     lambda: _block(last_commit=_cert(3, PARENT))),
    ("a parent certificate of the block's own height", 5, 4,
     lambda: _block(last_commit=_cert(5, PARENT))),
])
def test_each_rule_rejects_from_either_side(why, height, tip, block):
    v, counters = _validator(height=tip + 1)
    assert not v.is_valid(height, block()), why
    assert counters.get("invalid_block") == 1


@pytest.mark.parametrize("tip", [5, 6, 7])
def test_a_block_after_any_tip_is_valid(tip):
    """Odd and even tips (a height check written with ^ or | holds for some of them only)."""
    v, _ = _validator(height=tip + 1)
    h = tip + 1
    assert v.is_valid(h, _block(height=h, last_commit=_cert(tip, PARENT)))


def test_the_byte_bound_allows_a_megabyte_over_the_configured_size():
    raw = _block(txs=[txmod.encode_tx(SENDER, i, b"k%d=" % i + b"v" * 300_000, CHAIN.decode())
                      for i in range(4)])
    slack = 1 << 20
    assert slack < len(raw) < 2 * slack
    for limit, ok in ((len(raw) - slack, True), (len(raw) - slack - 1, False),
                      (1 << 20, True)):  # a megabyte configured: two allowed
        v, _ = _validator()
        v.block_bytes_max = limit
        assert v.is_valid(5, raw) is ok, limit


def test_a_block_of_exactly_the_transaction_bound_is_valid():
    for bound, ok in ((3, True), (2, False)):
        v, _ = _validator()
        v.block_txs_max = bound
        assert v.is_valid(5, _block(txs=_txs(3))) is ok, bound


def test_nonces_are_checked_when_enforced():
    from engine.nonces import NonceTable

    def validator():
        v, counters = _validator()
        v.nonces = NonceTable(lambda key: None)  # nothing committed yet: nonces from 0
        return v, counters

    v, _ = validator()
    assert v.is_valid(5, _block(txs=_txs(3)))
    again = txmod.encode_tx(SENDER, 1, b"another=tx", CHAIN.decode())  # nonce 1 once more
    v, counters = validator()
    assert not v.is_valid(5, _block(txs=_txs(3) + [again]))
    assert counters.get("invalid_block") == 1


def test_the_nonce_refusal_names_the_transaction_and_the_reason(caplog):
    from engine.nonces import NonceTable

    v, _ = _validator()
    v.nonces = NonceTable(lambda key: None)
    again = txmod.encode_tx(SENDER, 1, b"another=tx", CHAIN.decode())
    with caplog.at_level("WARNING", logger="engine.node.validity"):
        assert not v.is_valid(5, _block(txs=_txs(3) + [again]))
    assert "invalid block at height 5: transaction 3 has a used or too old nonce" in caplog.text


def test_evidence_is_accepted_exactly_as_far_back_as_the_limit(monkeypatch):
    from engine import limits

    for age_max, cases in ((2, ((3, True), (4, True), (2, False), (5, False), (6, False))),
                           (4, ((1, True), (4, True), (5, False)))):
        monkeypatch.setattr(limits, "evidence_age_heights_max", age_max)
        for ev_height, ok in cases:
            v, _ = _validator()
            assert v.is_valid(5, _block(evidence=[_evidence(ev_height)])) is ok, \
                (age_max, ev_height)


def test_the_applications_verdict_is_asked_last_and_obeyed():
    asked = []
    for verdict in (True, False):
        v, _counters = _validator()
        v.app_accepts = lambda h, txs, ids, verdict=verdict: asked.append((h, len(txs),
                                                                           len(ids))) or verdict
        assert v.is_valid(5, _block()) is verdict
    assert asked == [(5, 3, 3), (5, 3, 3)]


def test_stage_cpu_gets_the_time_one_check_took():
    v, _ = _validator()
    got = []
    v.stage_cpu = lambda stage, seconds: got.append((stage, seconds))
    assert v.is_valid(5, _block())
    (stage, seconds), = got
    assert stage == "validity" and 0 <= seconds < 0.05  # one check: about a millisecond


def test_decoding_a_block_not_seen_before_gives_its_transaction_ids():
    from engine.block import block_id

    raw = _block()
    v, _ = _validator()
    block, ids = v.decoded(block_id(raw), raw)
    assert block == Block.decode(raw) and ids == [blake3(t) for t in block.txs]
    empty = _block(txs=[])
    assert v.decoded(block_id(empty), empty)[1] == []


def test_a_remembered_block_under_another_key_is_not_kept_whichever_way_it_differs():
    from engine.block import block_id

    raw = _block()
    parsed = Block.decode(raw)
    ids = [blake3(t) for t in parsed.txs]
    for key in (LOW, HIGH):
        v, _ = _validator()
        v.remember_block(raw, key, parsed, ids)
        assert v.block_hash(raw) == block_id(raw) and v.decoded(block_id(raw), raw)[0] \
            is not parsed


def test_every_cache_is_bounded_and_keeps_what_fits(monkeypatch):
    from engine import limits

    for name in ("decoded_blocks_cached_max", "valid_blocks_cached_max",
                 "certificates_cached_max"):
        monkeypatch.setattr(limits, name, 3)
    v, _counters = _validator()
    blocks = [_block(time_ms=1000 + i) for i in range(3)]
    for raw in blocks:
        assert v.is_valid(5, raw)
    # Three fit: none is judged again (a verdict cache cleared too early would).
    checked = []
    v._check = lambda *a: checked.append(a)  # type: ignore[method-assign]
    for raw in blocks:
        assert v.is_valid(5, raw)
    assert checked == [] and len(v._verdicts) == len(v._ids) == len(v._decoded) == 3
    del v._check
    certs = [_cert(4, PARENT, signers) for signers in ([0, 1, 2], [0, 1, 3], [0, 2, 3])]
    for cert in certs:
        v._check_last_commit(5, cert)
    assert len(v._certificates_ok) == 3
    more = [_block(time_ms=2000 + i) for i in range(5)]
    for raw in more:
        assert v.is_valid(5, raw)
        assert len(v._verdicts) <= 3 and len(v._ids) <= 3 and len(v._decoded) <= 3
    v._check_last_commit(5, _cert(4, PARENT, [1, 2, 3]))
    assert len(v._certificates_ok) <= 3


def test_the_sets_of_a_changing_history_are_the_ones_asked():
    """Four sets, each signing its own heights: A 1..4, A2 5, B 6, C 7 on. A block at 6
    names B and C, and its parent certificate is A2's (a set asked of another height, one
    off, halved or doubled, names or verifies against another set)."""
    from engine.node.valset import ValidatorHistory

    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(16)]

    def vset(idx):
        return cs.ValidatorSet([cs.Validator(keys[i].public_key, 10) for i in idx])

    a, a2, b, c = vset(range(4)), vset(range(4, 8)), vset(range(8, 12)), vset(range(12, 16))
    history = ValidatorHistory(a, committed_height=5)
    for start, s in ((5, a2), (6, b), (7, c)):
        history.record(start, s)

    msg = cs.vote_sign_bytes(CHAIN, cs.VoteType.PRECOMMIT, 5, 0, PARENT)
    parent_cert = cs.CommitCertificate.build(
        5, 0, PARENT, {i: keys[4 + i].sign(msg) for i in range(3)}, 4).encode()

    def block(**changes):
        fields = {"height": 6, "last_commit": parent_cert, "validators_hash": b.hash(),
                  "next_validators_hash": c.hash()}
        return _block(**{**fields, **changes})

    def validator():
        v, _ = _validator(height=6)
        v.history = history
        return v

    assert validator().is_valid(6, block())
    assert validator().validator_hashes(6) == (b.hash(), c.hash())
    # And at an odd height, where `height | 1` would be the height itself, not the next.
    assert validator().validator_hashes(5) == (a2.hash(), b.hash())
    for wrong in ({"validators_hash": a2.hash()}, {"next_validators_hash": b.hash()},
                  {"last_commit": _cert(5, PARENT)}):  # signed by A
        assert not validator().is_valid(6, block(**wrong)), wrong
