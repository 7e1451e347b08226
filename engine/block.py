"""The block format the node proposes, validates, stores and syncs (all integers little-endian).

Header (fixed size but for the chain id; what a commit certificate signs, through its hash)::

    version u8 = 2 | u8 len(chain_id) | chain_id | height u64 | time_ms u64
    | parent_hash 32 (zero at height 1) | app_hash 32 (application state after height - 1)
    | tx_root 32 (Merkle root over the transaction ids, docs/formats.md) | tx_count u32
    | last_commit_hash 32 (BLAKE3 of the last commit bytes) | evidence_hash 32 (Merkle root over
      the BLAKE3 ids of the evidence items) | validators_hash 32 (the set that signs this height)
    | next_validators_hash 32 (the set that signs height + 1) | proposer_index u32

Block = header | u32 len | last_commit (commit certificate of height - 1; empty at height 1)
| evidence_count u16 | (u32 len | duplicate-vote evidence) * evidence_count
| (u32 len | envelope) * tx_count.

The block id (the consensus value id, what proposals, votes and certificates name) is BLAKE3 of
the header alone: a light client checks a certificate against a header of ~270 bytes without any
transaction. Every hash named here is the chain suite's (engine/suite.py): SM3 on an ``sm2-sm3``
chain; the functions take ``suite`` (default ``ed25519-blake3``). The header commits to the rest of the block through ``tx_root``,
``last_commit_hash`` and ``evidence_hash``; :func:`block_id` checks that binding before it
answers, so two different blocks never share an id (a body that does not match its header is a
malformed block, refused like any other).

Carrying ``app_hash`` of the parent state makes every validator vote on the result of executing
the previous block: a node whose application diverged rejects the next proposal instead of
silently forking. ``decode`` raises ProtocolError on anything malformed (blocks come from peers).
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from engine._txcodec import join_chunks, split_chunks
from engine.net.errors import ProtocolError
from engine.suite import Suite, get_suite

VERSION = 2
_FIXED = struct.Struct("<QQ32s32s32sI32s32s32s32sI")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")

__all__ = ["Block", "Header", "block_id", "check_body", "evidence_root", "header_size",
           "tx_root_of", "with_txs"]


def tx_root_of(tx_ids: Sequence[bytes], suite: Suite | None = None) -> bytes:
    """The Merkle root over the transaction ids, in the chain's suite."""
    return get_suite(suite).tx_root(list(tx_ids))


def evidence_root(evidence: Sequence[bytes], suite: Suite | None = None) -> bytes:
    """Merkle root over the BLAKE3 ids of the evidence items (the id the evidence pool keys)."""
    s = get_suite(suite)
    return s.tx_root(s.hash_many(list(evidence)) if evidence else [])


def header_size(chain_id_len: int) -> int:
    return 2 + chain_id_len + _FIXED.size


@dataclass(frozen=True)
class Header:
    """A block header: everything a light client needs to follow the chain, and the only bytes
    a commit certificate's block hash covers."""

    chain_id: bytes
    height: int
    time_ms: int
    parent_hash: bytes
    app_hash: bytes
    tx_root: bytes
    tx_count: int
    last_commit_hash: bytes
    evidence_hash: bytes
    validators_hash: bytes
    next_validators_hash: bytes
    proposer_index: int

    def encode(self) -> bytes:
        return b"".join((bytes([VERSION, len(self.chain_id)]), self.chain_id, _FIXED.pack(
            self.height, self.time_ms, self.parent_hash, self.app_hash, self.tx_root,
            self.tx_count, self.last_commit_hash, self.evidence_hash, self.validators_hash,
            self.next_validators_hash, self.proposer_index)))

    def hash(self, suite: Suite | None = None) -> bytes:
        """The block id."""
        return get_suite(suite).hash(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Header:
        """Exactly one header, nothing after it."""
        header, end = cls._parse(memoryview(data))
        if end != len(data):
            raise ProtocolError(f"{len(data) - end} trailing bytes after the header")
        return header

    @classmethod
    def _parse(cls, view: memoryview) -> tuple[Header, int]:
        try:
            if view[0] != VERSION:
                raise ProtocolError(f"block version {view[0]} is not {VERSION}")
            n = view[1]
            chain_id = bytes(view[2:2 + n])
            if len(chain_id) != n:
                raise ProtocolError("truncated chain id")
            fields = _FIXED.unpack_from(view, 2 + n)
        except (struct.error, IndexError) as e:
            raise ProtocolError(f"truncated header: {e}") from None
        return cls(chain_id, *fields), header_size(n)


@dataclass(frozen=True)
class Block:
    chain_id: bytes
    height: int
    time_ms: int
    parent_hash: bytes
    app_hash: bytes
    tx_root: bytes
    proposer_index: int
    last_commit: bytes
    evidence: tuple[bytes, ...]
    txs: tuple[bytes, ...]
    validators_hash: bytes
    next_validators_hash: bytes

    @classmethod
    def make(cls, *, chain_id: bytes, height: int, time_ms: int, parent_hash: bytes,
             app_hash: bytes, proposer_index: int, last_commit: bytes,
             evidence: list[bytes], txs: list[bytes], validators_hash: bytes,
             next_validators_hash: bytes, tx_ids: list[bytes] | None = None,
             suite: Suite | None = None) -> Block:
        s = get_suite(suite)
        ids = tx_ids if tx_ids is not None else s.hash_many(txs) if txs else []
        return cls(chain_id, height, time_ms, parent_hash, app_hash, tx_root_of(ids, s),
                   proposer_index, last_commit, tuple(evidence), tuple(txs), validators_hash,
                   next_validators_hash)

    @property
    def tx_count(self) -> int:
        return getattr(self, "_count", len(self.txs))

    def header(self, suite: Suite | None = None) -> Header:
        s = get_suite(suite)
        return Header(self.chain_id, self.height, self.time_ms, self.parent_hash, self.app_hash,
                      self.tx_root, self.tx_count, s.hash(self.last_commit),
                      evidence_root(self.evidence, s), self.validators_hash,
                      self.next_validators_hash, self.proposer_index)

    def hash(self, suite: Suite | None = None) -> bytes:
        """The block id (the suite's hash, BLAKE3 by default, of the header)."""
        return self.header(suite).hash(suite)

    def head(self, suite: Suite | None = None) -> bytes:
        """Everything but the transactions: header, last commit and evidence (what the store
        keeps as the block's ``header`` bytes; ``decode(head, header_only=True)`` reads it)."""
        parts = [self.header(suite).encode(), _U32.pack(len(self.last_commit)), self.last_commit,
                 _U16.pack(len(self.evidence))]
        for e in self.evidence:
            parts += [_U32.pack(len(e)), e]
        return b"".join(parts)

    def encode(self, suite: Suite | None = None) -> bytes:
        txs = self.txs if type(self.txs) is list else list(self.txs)
        if set(map(type, txs)) <= {bytes}:  # the usual case: one native pass, one allocation
            return join_chunks(self.head(suite), txs)
        return self.head(suite) + b"".join(_U32.pack(len(t)) + t for t in txs)

    @classmethod
    def decode(cls, data: bytes, *, header_only: bool = False) -> Block:
        """Parse a block (or, with ``header_only``, a stored head whose txs are kept apart).
        Only the structure is checked here; :func:`check_body` checks that the last commit,
        evidence and transactions are the ones the header commits to."""
        view = memoryview(data)
        h, off = Header._parse(view)
        try:
            commit, off = _chunk(view, off)
            (n_ev,) = _U16.unpack_from(view, off)
            off += 2
            evidence = []
            for _ in range(n_ev):
                e, off = _chunk(view, off)
                evidence.append(e)
            txs: list[bytes] = []
            if not header_only:
                if h.tx_count > (len(view) - off) // 5:  # each tx needs at least 5 bytes
                    raise ProtocolError(f"block claims {h.tx_count} transactions, "
                                        "too many for its size")
                try:  # one native pass over the transaction list
                    txs, off = split_chunks(view, off, h.tx_count)
                except ValueError as e:
                    raise ProtocolError(f"transaction list: {e}") from None
            if off != len(view):
                raise ProtocolError(f"{len(view) - off} trailing bytes after the block")
        except (struct.error, IndexError) as e:
            raise ProtocolError(f"truncated block: {e}") from None
        block = cls(h.chain_id, h.height, h.time_ms, h.parent_hash, h.app_hash, h.tx_root,
                    h.proposer_index, commit, tuple(evidence), tuple(txs), h.validators_hash,
                    h.next_validators_hash)
        object.__setattr__(block, "_count", h.tx_count)
        object.__setattr__(block, "_header", h)
        return block

    def decoded_header(self, suite: Suite | None = None) -> Header:
        """The header as decoded (with the hashes it claims), for a block from :meth:`decode`;
        the header this block's contents imply otherwise."""
        return getattr(self, "_header", None) or self.header(suite)


def check_body(block: Block, tx_ids: Sequence[bytes], suite: Suite | None = None) -> None:
    """Raise ProtocolError unless ``block``'s last commit, evidence and transactions (whose ids
    are ``tx_ids``) are the ones its decoded header commits to."""
    s = get_suite(suite)
    h = block.decoded_header(s)
    if h.tx_count != len(block.txs) or tx_root_of(tx_ids, s) != h.tx_root:
        raise ProtocolError("the transactions do not match the header's tx root")
    if s.hash(block.last_commit) != h.last_commit_hash:
        raise ProtocolError("the last commit does not match the header's last_commit_hash")
    if evidence_root(block.evidence, s) != h.evidence_hash:
        raise ProtocolError("the evidence does not match the header's evidence_hash")


def block_id(raw: bytes, suite: Suite | None = None) -> bytes:
    """The id of an encoded block: the suite's hash (BLAKE3 by default) of its header, once the
    body is checked to be the one the header commits to (ProtocolError otherwise)."""
    s = get_suite(suite)
    block = Block.decode(raw)
    check_body(block, s.hash_many(list(block.txs)) if block.txs else [], s)
    return s.hash(raw[:header_size(len(block.chain_id))])


def _chunk(view: memoryview, off: int) -> tuple[bytes, int]:
    (n,) = _U32.unpack_from(view, off)
    off += 4
    if off + n > len(view):
        raise ProtocolError(f"a {n}-byte field runs past the end of the block")
    return bytes(view[off:off + n]), off + n


def with_txs(head_block: Block, txs: list[bytes]) -> Block:
    """Re-assemble a stored block from its head and its transactions."""
    b = Block(head_block.chain_id, head_block.height, head_block.time_ms,
              head_block.parent_hash, head_block.app_hash, head_block.tx_root,
              head_block.proposer_index, head_block.last_commit, head_block.evidence,
              tuple(txs), head_block.validators_hash, head_block.next_validators_hash)
    hdr = getattr(head_block, "_header", None)
    if hdr is not None:
        object.__setattr__(b, "_header", hdr)
    return b
