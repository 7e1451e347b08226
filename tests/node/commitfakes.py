"""A BlockCommitter over fake ports, for the committer's unit tests (test_commit_unit.py,
test_optimistic_execution.py): signed blocks, a validator that decodes them, a store that
records what it is asked to save, and a decision carrying a stand-in certificate."""
from __future__ import annotations

import types

from engine import consensus as cs
from engine import tx
from engine.block import Block
from engine.crypto import SigningKey
from engine.node.commit import BlockCommitter
from engine.node.ports import Counters
from engine.node.queries import RecentBlocks
from engine.node.tip import ChainTip
from engine.suite import get_suite


def signed_block(chain: str, key: SigningKey, height: int, payloads: list[bytes], *,
                 last_commit: bytes = b"", proposer_index: int = 0,
                 time_ms: int = 1) -> tuple[bytes, bytes]:
    """(block hash, encoded block) of a block carrying ``payloads`` as transactions signed by
    ``key`` (nonces ``1000 * height + i``)."""
    txs = [tx.encode_tx(key, 1000 * height + i, p, chain) for i, p in enumerate(payloads)]
    b = Block.make(chain_id=chain.encode(), height=height, time_ms=time_ms,
                   parent_hash=bytes(32), app_hash=bytes(32), proposer_index=proposer_index,
                   last_commit=last_commit, evidence=[], txs=txs, validators_hash=bytes(32),
                   next_validators_hash=bytes(32))
    return b.hash(), b.encode()


class DecodingValidator:
    """What the committer asks of the block validator: decoded blocks, and a reset."""

    suite = get_suite(None)

    def decoded(self, key: bytes, raw: bytes):
        b = Block.decode(raw)
        return b, self.suite.hash_many(list(b.txs)) if b.txs else []

    def clear(self) -> None:
        pass


class RecordingStore:
    closed = False

    def __init__(self) -> None:
        self.saved: list[dict] = []
        self.compactions = 0

    def save_block(self, height, block_hash, head, txs, certificate, **kw) -> None:
        self.saved.append({"height": height, "block_hash": block_hash, **kw})

    def compact_index(self) -> None:
        self.compactions += 1


def make_committer(app, *, chain: str, history=None, deferred: list | None = None,
                   metrics=None) -> BlockCommitter:
    """A committer of ``app`` over the fakes; ``deferred`` collects what it defers (early
    executions), ``metrics`` records block intervals when given."""
    nothing = types.SimpleNamespace
    c = BlockCommitter(
        app=app, store=RecordingStore(),  # type: ignore[arg-type]
        mempool=nothing(decoded_many=lambda ids: [None] * len(ids),  # type: ignore[arg-type]
                        remove_committed=lambda ids: None),
        tip=ChainTip(), validator=DecodingValidator(),  # type: ignore[arg-type]
        evidence=nothing(on_committed=lambda ev: None),  # type: ignore[arg-type]
        metrics=metrics or nothing(observe_block=lambda dt, n: None),  # type: ignore[arg-type]
        recent=RecentBlocks(), waiters=nothing(committed=lambda h, ids: None),  # type: ignore
        counters=Counters(), chain_id=chain, history=history)
    if deferred is not None:
        c.defer = deferred.append
    return c


def decide(height: int, block_hash: bytes, block: bytes) -> cs.Decide:
    cert = types.SimpleNamespace(encode=lambda: b"certificate")
    return cs.Decide(height, 0, block, block_hash, cert)  # type: ignore[arg-type]
