"""The node's half of `engine store check`: block format, block hashes and certificates.

The store itself knows blocks only as bytes; this hook (used by ``engine store check --home``
when the home holds a genesis.json) decodes each stored header with the node's block format
(engine/block.py), and checks that the suite's hash of the header is the stored block hash, that
height, parent hash and tx root agree with the store's record, that the header's app hash is the
one stored after the parent, and that both the block's own commit certificate and the parent
certificate it carries (``last_commit``) hold more than 2/3 of the power of the set that signs
their height, each with one batch signature verification, and that the header names the sets
of its height and the next (``validators_hash``, ``next_validators_hash``). Which set signs a
height comes from the genesis set and the store's set history (engine/node/valset.py). The
store knows bytes only: this half lives with the node, which knows the block format and the
validator set.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence

from engine import config
from engine import consensus as cs
from engine.block import Block, block_id, with_txs
from engine.errors import ProtocolError
from engine.node.valset import ValidatorHistory
from engine.store import Store, StoredBlock
from engine.suite import Suite, get_suite

Verifier = Callable[[StoredBlock, "StoredBlock | None"], Iterable[str]]


def verifier_for_home(home: str, store: Store | None = None) -> Verifier | None:
    """A block verifier for the node home ``home``, or None if it has no genesis.json;
    ``store`` (the home's) gives the validator-set history."""
    path = os.path.join(home, config.GENESIS_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        genesis = config.Genesis.from_json(json.load(f), path)
    return make_verifier(genesis.chain_id.encode(),
                         [(v.public_key, v.power) for v in genesis.validators],
                         store.validator_sets() if store is not None else (), genesis.suite)


def make_verifier(chain_id: bytes, validators: list[tuple[bytes, int]],
                  set_records: Sequence[tuple[int, bytes]] = (),
                  suite: Suite | str | None = None) -> Verifier:
    """A verifier for blocks of ``chain_id`` signed by ``validators`` ((public key, power)) at
    genesis, then by the sets of ``set_records`` ((first height, encoded set), the store's), on
    a chain of ``suite`` (default ``ed25519-blake3``)."""
    s = get_suite(suite)
    genesis = cs.ValidatorSet([cs.Validator(pk, power) for pk, power in validators])
    try:
        history = ValidatorHistory(genesis, set_records)
    except ValueError as e:
        history = ValidatorHistory(genesis)
        history_problem = f"validator-set history is unreadable: {e}"
    else:
        history_problem = ""

    def verify(block: StoredBlock, parent: StoredBlock | None) -> list[str]:
        problems: list[str] = [history_problem] if history_problem else []
        history.committed(block.height)  # the sets up to height + 2 are known
        try:
            _verify(block, parent, chain_id, history, problems, s)
        except ProtocolError as e:
            problems.append(f"malformed: {e}")
        return problems

    return verify


def _verify(block: StoredBlock, parent: StoredBlock | None, chain_id: bytes,
            history: ValidatorHistory, problems: list[str], suite: Suite) -> None:
    vset = history.set_at(block.height)
    header = Block.decode(block.header, header_only=True)
    if header.tx_count != len(block.txs):
        problems.append(f"header counts {header.tx_count} txs, the store holds {len(block.txs)}")
    try:
        if block_id(with_txs(header, block.txs).encode(suite), suite) != block.block_hash:
            problems.append(f"block hash is not the {suite.name} hash of the stored header")
    except ProtocolError as e:
        problems.append(f"stored block does not match its header: {e}")
    if header.chain_id != chain_id:
        problems.append(f"chain id {header.chain_id!r} is not the genesis chain id")
    if header.height != block.height or header.parent_hash != block.parent_hash:
        problems.append("header height or parent hash differs from the store's record")
    if header.validators_hash != vset.hash(suite.hash):
        problems.append("header validators_hash is not the hash of the set that signs it")
    if header.next_validators_hash != history.set_at(block.height + 1).hash(suite.hash):
        problems.append("header next_validators_hash is not the hash of the set that signs "
                        "the next height")
    if header.tx_root != block.tx_root:
        problems.append("header tx root differs from the root of the stored transactions")
    if parent is not None and header.app_hash != parent.app_hash:
        problems.append(f"header app hash is not the app hash stored after {parent.height}")
    cert = cs.CommitCertificate.decode(block.certificate, len(vset))
    if cert.height != block.height or cert.block_hash != block.block_hash:
        problems.append("commit certificate is not for this block")
    else:
        _verify_cert(cert, chain_id, vset, "commit certificate", problems, suite)
    if block.height > 1 and parent is not None:
        parent_set = history.set_at(parent.height)
        last = cs.CommitCertificate.decode(header.last_commit, len(parent_set))
        if last.height != parent.height or last.block_hash != parent.block_hash:
            problems.append("last_commit is not a certificate for the parent block")
        else:
            _verify_cert(last, chain_id, parent_set, "parent certificate (last_commit)",
                         problems, suite)


def _verify_cert(cert, chain_id: bytes, vset, what: str, problems: list[str],
                 suite: Suite) -> None:
    try:
        cert.verify(chain_id, vset, suite.verify_batch)
    except ProtocolError as e:
        problems.append(f"{what} does not verify: {e}")
