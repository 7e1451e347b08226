"""The node's half of `engine store check` rule by rule (engine/node/check.py): a chain piece
across a validator-set change verifies block by block, and each stored record or header made
wrong in one place is reported with exactly the problems that place causes, nothing else. The
wrong values are taken on both sides of the right one (a hash all zeros and all ones, a height
one below and one above) and the heights are above 256, where ``is`` on two equal ints is not
``==``. Written against the survivors of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from engine import consensus as cs
from engine.block import Block
from engine.hashing import blake3_many
from engine.node.check import make_verifier, verifier_for_home
from engine.store import Store, StoredBlock
from engine.suite import get_suite

CHAIN = b"check-unit"
ED = get_suite(None)
SM = get_suite("sm2-sm3")
KEYS = {s.name: ([s.key_from_seed(bytes([i + 1]) * 32) for i in range(4)],
                 [s.key_from_seed(bytes([i + 40]) * 32) for i in range(4)]) for s in (ED, SM)}
SETS = {name: tuple(cs.ValidatorSet([cs.Validator(k.public_key, 10) for k in keys])
                    for keys in pair) for name, pair in KEYS.items()}
SET_A, SET_B = SETS[ED.name]
GENESIS = [(k.public_key, 10) for k in KEYS[ED.name][0]]
BASE, TOP = 298, 305  # heights BASE..TOP; above 256 so that `is` on equal ints fails
CHANGE = 302  # SET_B signs from here
RECORDS = [(CHANGE, SET_B.encode())]
LOW, HIGH = bytes(32), b"\xff" * 32
H = 299  # the height most cases spoil: sets A at H and H + 1, a parent in the chain


def _set(height: int, suite=ED) -> cs.ValidatorSet:
    return SETS[suite.name][1 if height >= CHANGE else 0]


def _cert(height: int, block_hash: bytes, signers=range(3), *, cert_height: int | None = None,
          suite=ED) -> bytes:
    """A commit certificate for ``block_hash`` at ``cert_height`` (default ``height``), signed
    by ``signers`` of the set of ``height``."""
    h = height if cert_height is None else cert_height
    keys = KEYS[suite.name][1 if height >= CHANGE else 0]
    msg = cs.vote_sign_bytes(CHAIN, cs.VoteType.PRECOMMIT, h, 0, block_hash)
    return cs.CommitCertificate.build(h, 0, block_hash, {i: keys[i].sign(msg) for i in signers},
                                      4).encode()


def _chain(header_at: dict[int, dict] | None = None,
           last_commit_at: dict[int, bytes] | None = None, suite=ED, *, base: int = BASE,
           top: int = TOP, n_txs: int = 5) -> list[StoredBlock]:
    """Stored blocks base..top of ``n_txs`` transactions, each signed by more than 2/3 of its
    height's set and carrying its parent's certificate (none at height 1); ``header_at[h]``
    overrides header fields at ``h`` (the block is still hashed and signed as built),
    ``last_commit_at[h]`` its last commit."""
    header_at, last_commit_at = header_at or {}, last_commit_at or {}
    parent = suite.hash(b"the block before the piece")
    app = suite.hash(b"app before the piece")
    last_commit = _cert(base - 1, parent, suite=suite) if base > 1 else b""
    blocks = []
    for h in range(base, top + 1):
        txs = [b"tx %d %d" % (h, i) for i in range(n_txs)]
        fields = {"chain_id": CHAIN, "height": h, "time_ms": 1000 * h, "parent_hash": parent,
                  "app_hash": app, "proposer_index": h % 4,
                  "last_commit": last_commit_at.get(h, last_commit), "evidence": [], "txs": txs,
                  "validators_hash": _set(h, suite).hash(suite.hash),
                  "next_validators_hash": _set(h + 1, suite).hash(suite.hash)}
        fields.update(header_at.get(h, {}))
        block = Block.make(**fields, suite=suite)  # type: ignore[arg-type]
        block_hash = block.hash(suite)
        cert = _cert(h, block_hash, suite=suite)
        new_app = suite.hash(b"app %d" % h)
        blocks.append(StoredBlock(height=h, block_hash=block_hash, parent_hash=parent,
                                  header=block.head(suite), txs=txs, results=[],
                                  certificate=cert, app_hash=new_app, tx_root=block.tx_root,
                                  app_chain=b""))
        parent, app, last_commit = block_hash, new_app, cert
    return blocks


def _at(blocks: list[StoredBlock], height: int) -> tuple[StoredBlock, StoredBlock | None]:
    i = height - BASE
    return blocks[i], blocks[i - 1] if i else None


def _problems(blocks, at=H, verifier=None, **replace) -> list[str]:
    block, parent = _at(blocks, at)
    verify = verifier or make_verifier(CHAIN, GENESIS, RECORDS)
    return list(verify(dataclasses.replace(block, **replace), parent))


HASH = "block hash is not the ed25519-blake3 hash of the stored header"
NOT_THIS = "commit certificate is not for this block"
HEIGHT_OR_PARENT = "header height or parent hash differs from the store's record"
VSET = "header validators_hash is not the hash of the set that signs it"
NEXT = "header next_validators_hash is not the hash of the set that signs the next height"
ROOT = "header tx root differs from the root of the stored transactions"
LAST = "last_commit is not a certificate for the parent block"


def test_every_block_of_a_piece_across_a_set_change_verifies():
    blocks = _chain()
    verify = make_verifier(CHAIN, GENESIS, RECORDS)
    for h in range(BASE, TOP + 1):
        assert verify(*_at(blocks, h)) == [], h


def test_without_the_set_history_the_heights_of_the_new_set_are_reported():
    blocks = _chain()
    verify = make_verifier(CHAIN, GENESIS)  # the genesis set only: it "signs" every height
    assert verify(*_at(blocks, CHANGE - 2)) == []
    assert verify(*_at(blocks, CHANGE - 1)) == [NEXT]
    problems = verify(*_at(blocks, CHANGE))
    assert problems[:2] == [VSET, NEXT]
    assert problems[2].startswith("commit certificate does not verify")
    assert len(problems) == 3  # the parent's certificate is one of set A's: it holds
    problems = verify(*_at(blocks, CHANGE + 1))
    assert problems[:2] == [VSET, NEXT]
    assert problems[2].startswith("commit certificate does not verify")
    assert problems[3].startswith("parent certificate (last_commit) does not verify")
    assert len(problems) == 4


def test_an_unreadable_set_history_is_reported_on_every_block_and_the_check_goes_on():
    blocks = _chain()
    verify = make_verifier(CHAIN, GENESIS, [(CHANGE, b"not a validator set")])
    for h in (BASE, CHANGE - 2):
        problems = verify(*_at(blocks, h))
        assert len(problems) == 1 and problems[0].startswith(
            "validator-set history is unreadable: "), problems
    assert verify(*_at(blocks, CHANGE - 1))[1:] == [NEXT]  # checked with the genesis set


@pytest.mark.parametrize("block_hash", [LOW, HIGH])
def test_a_stored_block_hash_that_is_not_the_headers_hash(block_hash):
    assert _problems(_chain(), block_hash=block_hash) == [HASH, NOT_THIS]


def test_stored_transactions_fewer_or_more_than_the_header_counts():
    blocks = _chain()
    block = _at(blocks, H)[0]
    fewer = _problems(blocks, txs=block.txs[:-1])
    assert fewer[0] == "header counts 5 txs, the store holds 4"
    assert fewer[1].startswith("stored block does not match its header: ") and len(fewer) == 2
    more = _problems(blocks, txs=[*block.txs, b"one more"])
    assert more[0] == "header counts 5 txs, the store holds 6"
    assert more[1].startswith("stored block does not match its header: ") and len(more) == 2


def test_stored_transactions_that_are_not_the_ones_the_header_commits_to():
    blocks = _chain()
    txs = list(_at(blocks, H)[0].txs)
    txs[2] = b"another tx"
    problems = _problems(blocks, txs=txs)
    assert len(problems) == 1
    assert problems[0].startswith("stored block does not match its header: ")


@pytest.mark.parametrize("tx_root", [LOW, HIGH])
def test_a_stored_tx_root_that_is_not_the_headers(tx_root):
    assert _problems(_chain(), tx_root=tx_root) == [ROOT]


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_stored_height_that_is_not_the_headers(delta):
    # H - 1, H and H + 1 are all signed by set A: only the height itself is wrong.
    assert _problems(_chain(), height=H + delta) == [HEIGHT_OR_PARENT, NOT_THIS]


@pytest.mark.parametrize("parent_hash", [LOW, HIGH])
def test_a_stored_parent_hash_that_is_not_the_headers(parent_hash):
    assert _problems(_chain(), parent_hash=parent_hash) == [HEIGHT_OR_PARENT]


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_header_claiming_another_height(delta):
    blocks = _chain(header_at={H: {"height": H + delta}})
    assert _problems(blocks) == [HEIGHT_OR_PARENT]


@pytest.mark.parametrize("chain_id", [b"check-unis", b"check-univ"])  # just below, just above
def test_a_header_of_another_chain(chain_id):
    blocks = _chain(header_at={H: {"chain_id": chain_id}})
    assert _problems(blocks) == [f"chain id {chain_id!r} is not the genesis chain id"]


@pytest.mark.parametrize("field,message", [("validators_hash", VSET),
                                           ("next_validators_hash", NEXT)])
@pytest.mark.parametrize("value", [LOW, HIGH])
def test_a_header_naming_another_validator_set(field, message, value):
    assert _problems(_chain(header_at={H: {field: value}})) == [message]


@pytest.mark.parametrize("app_hash", [LOW, HIGH])
def test_a_header_app_hash_that_is_not_the_one_stored_after_the_parent(app_hash):
    blocks = _chain(header_at={H: {"app_hash": app_hash}})
    assert _problems(blocks) == [f"header app hash is not the app hash stored after {H - 1}"]


def test_a_block_of_more_than_256_transactions_counts_them_by_value():
    blocks = _chain(base=H - 1, top=H, n_txs=300)
    verify = make_verifier(CHAIN, GENESIS, RECORDS)
    assert verify(blocks[1], blocks[0]) == []


def test_the_last_commit_of_block_2_is_checked():
    """Height 2 is the first with a parent certificate (block 1 carries none)."""
    good = _chain(base=1, top=3)
    verify = make_verifier(CHAIN, GENESIS, RECORDS)
    assert [verify(b, good[i - 1] if i else None) for i, b in enumerate(good)] == [[]] * 3
    bad = _chain(base=1, top=2, last_commit_at={2: _cert(1, LOW)})
    assert verify(bad[1], bad[0]) == [LAST]


def test_the_first_block_of_a_piece_is_checked_without_a_parent():
    """No parent: neither the app-hash link nor the last commit can be checked, and a wrong
    last commit or app hash there is not reported."""
    blocks = _chain(header_at={BASE: {"app_hash": LOW}},
                    last_commit_at={BASE: _cert(BASE - 1, LOW, signers=range(1))})
    verify = make_verifier(CHAIN, GENESIS, RECORDS)
    assert verify(blocks[0], None) == []


@pytest.mark.parametrize("cert_height", [H - 1, H + 1])
def test_a_certificate_for_another_height(cert_height):
    blocks = _chain()
    block = _at(blocks, H)[0]
    cert = _cert(H, block.block_hash, cert_height=cert_height)
    assert _problems(blocks, certificate=cert) == [NOT_THIS]


@pytest.mark.parametrize("other", [LOW, HIGH])
def test_a_certificate_for_another_block(other):
    assert _problems(_chain(), certificate=_cert(H, other)) == [NOT_THIS]


def test_a_certificate_without_quorum():
    blocks = _chain()
    cert = _cert(H, _at(blocks, H)[0].block_hash, signers=range(2))  # 20 of 40: not > 2/3
    problems = _problems(blocks, certificate=cert)
    assert len(problems) == 1 and problems[0].startswith("commit certificate does not verify: ")


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_last_commit_for_another_height(delta):
    parent_hash = _chain()[H - 1 - BASE].block_hash  # the header changes nothing above H - 1
    bad = _cert(H - 1, parent_hash, cert_height=H - 1 + delta)
    assert _problems(_chain(last_commit_at={H: bad})) == [LAST]


@pytest.mark.parametrize("other", [LOW, HIGH])
def test_a_last_commit_for_another_block(other):
    assert _problems(_chain(last_commit_at={H: _cert(H - 1, other)})) == [LAST]


def test_a_last_commit_without_quorum():
    parent_hash = _chain()[H - 1 - BASE].block_hash
    problems = _problems(_chain(last_commit_at={H: _cert(H - 1, parent_hash, range(2))}))
    assert len(problems) == 1
    assert problems[0].startswith("parent certificate (last_commit) does not verify: ")


def test_a_header_that_does_not_decode_is_reported_not_raised():
    problems = _problems(_chain(), header=b"\x01not a header")
    assert len(problems) == 1 and problems[0].startswith("malformed: ")


def _home(tmp_path, blocks: list[StoredBlock], records) -> str:
    home = tmp_path / "home"
    genesis = {"chain_id": CHAIN.decode(), "validators": [
        {"name": f"v{i}", "power": p, "public_key": pk.hex()}
        for i, (pk, p) in enumerate(GENESIS)]}
    (home / "store").mkdir(parents=True)
    (home / "genesis.json").write_text(json.dumps(genesis))
    with Store(str(home / "store")) as store:
        for b in blocks:
            store.save_block(b.height, b.block_hash, b.header, b.txs, b.certificate,
                             parent_hash=b.parent_hash, app_hash=b.app_hash,
                             tx_ids=blake3_many(b.txs),
                             validator_set=records.pop(0) if records and b.height
                             == records[0][0] - 2 else None)
    return str(home)


def test_a_home_without_genesis_has_no_verifier(tmp_path):
    assert verifier_for_home(str(tmp_path)) is None


def test_the_home_verifier_reads_the_set_history_from_the_store_it_is_given(tmp_path):
    blocks = _chain()
    home = _home(tmp_path, list(blocks), list(RECORDS))
    with Store(home + "/store") as store:
        assert store.validator_sets() == RECORDS
        with_history = verifier_for_home(home, store)
        assert with_history is not None
        assert [with_history(*_at(blocks, h)) for h in range(BASE, TOP + 1)] == [[]] * 8
    genesis_only = verifier_for_home(home)  # no store given: the genesis set alone
    assert genesis_only is not None
    assert list(genesis_only(*_at(blocks, CHANGE))) != []


def test_the_verifier_hashes_and_verifies_with_the_chains_suite():
    """An SM2/SM3 chain verifies with its suite's verifier; checked as a default-suite chain,
    its hashes and signatures are all wrong."""
    blocks = _chain(suite=SM)
    genesis = [(k.public_key, 10) for k in KEYS[SM.name][0]]
    records = [(CHANGE, SETS[SM.name][1].encode())]
    verify = make_verifier(CHAIN, genesis, records, SM)
    for h in range(BASE, TOP + 1):
        assert verify(*_at(blocks, h)) == [], h
    as_default = make_verifier(CHAIN, genesis, records)(*_at(blocks, H))
    assert as_default[0].startswith("stored block does not match its header: ")
    assert as_default[1:3] == [VSET, NEXT]
    assert as_default[3].startswith("commit certificate does not verify: ")
