"""The p2p message codec: one msgpack array per frame, ``[kind, fields...]``.

Consensus objects (proposals, votes, evidence, blocks, certificates) travel as the opaque byte
strings their own codecs produce; this layer only frames them, batches them and bounds them.
``decode`` checks the shape, types and limits of everything and raises :class:`ProtocolError`
otherwise, so a handler only ever sees well-formed messages.

========  =======================================================================
kind      fields
========  =======================================================================
STATUS    height (0 <= int < 2^63, last committed), last block hash (32 bytes or empty)
PROPOSAL  proposal bytes, block bytes
VOTES     [vote bytes, ...]
EVIDENCE  [evidence bytes, ...]
TXS       [envelope bytes, ...]
GET_BLOCKS  from height (1 <= int < 2^63), count (int >= 1)
BLOCKS    [[height, block bytes, certificate bytes], ...]
PRUNED    requested from height, earliest height held (blocks below it are pruned: ask for
          a snapshot)
GET_SNAPSHOTS  (no fields)
SNAPSHOTS [[height, format, app hash 32, [chunk hash 32, ...], metadata, hash 32], ...]
GET_CHUNK snapshot hash 32, chunk index
CHUNK     snapshot hash 32, chunk index, chunk bytes (empty: not held)
COMPACT_PROPOSAL  proposal bytes, block head bytes, [tx id (32 bytes), ...] (may be empty)
GET_PROPOSAL_TXS  height, block hash (32), [tx index, ...]
PROPOSAL_TXS      height, block hash (32), [tx index, ...], [envelope bytes, ...] (same length)
========  =======================================================================

Heights are below 2^63 (the store keys them as int64); a larger one is a protocol fault.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from engine.net.errors import ProtocolError
from engine.net.limits import NetLimits

STATUS, PROPOSAL, VOTES, EVIDENCE, TXS, GET_BLOCKS, BLOCKS = range(1, 8)
PRUNED, GET_SNAPSHOTS, SNAPSHOTS, GET_CHUNK, CHUNK = range(8, 13)
COMPACT_PROPOSAL, GET_PROPOSAL_TXS, PROPOSAL_TXS = range(13, 16)
KIND_NAMES = {STATUS: "status", PROPOSAL: "proposal", VOTES: "votes", EVIDENCE: "evidence",
              TXS: "txs", GET_BLOCKS: "get_blocks", BLOCKS: "blocks", PRUNED: "pruned",
              GET_SNAPSHOTS: "get_snapshots", SNAPSHOTS: "snapshots", GET_CHUNK: "get_chunk",
              CHUNK: "chunk", COMPACT_PROPOSAL: "compact_proposal",
              GET_PROPOSAL_TXS: "get_proposal_txs", PROPOSAL_TXS: "proposal_txs"}
#: Bounds of the snapshot messages (engine.limits holds the node's own).
SNAPSHOTS_PER_MESSAGE_MAX = 16
SNAPSHOT_CHUNKS_MAX = 100_000
SNAPSHOT_METADATA_BYTES_MAX = 4096
_U64_MAX = 2**64 - 1
#: The largest height any message may carry (the store's int64 key).
HEIGHT_MAX = 2**63 - 1

__all__ = [
    "BLOCKS",
    "CHUNK",
    "COMPACT_PROPOSAL",
    "EVIDENCE",
    "GET_BLOCKS",
    "GET_CHUNK",
    "GET_PROPOSAL_TXS",
    "GET_SNAPSHOTS",
    "KIND_NAMES",
    "PROPOSAL",
    "PROPOSAL_TXS",
    "PRUNED",
    "SNAPSHOTS",
    "STATUS",
    "TXS",
    "VOTES",
    "Message",
    "decode",
    "encode",
]


@dataclass(frozen=True)
class Message:
    """A decoded, validated message: ``kind`` and its fields as a tuple."""

    kind: int
    fields: tuple

    @property
    def name(self) -> str:
        return KIND_NAMES[self.kind]


def encode(kind: int, *fields: Any) -> bytes:
    """Pack one message. The caller is trusted (these are our own messages)."""
    if kind not in KIND_NAMES:
        raise ValueError(f"kind must be one of {sorted(KIND_NAMES)}, not {kind!r}")
    return msgpack.packb([kind, *fields], use_bin_type=True)


def decode(data: bytes, limits: NetLimits) -> Message:
    """Unpack and validate one message from a peer. Raises ProtocolError on anything else."""
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as e:  # msgpack raises many types on garbage; all mean the same here
        raise ProtocolError(f"undecodable message: {type(e).__name__}") from e
    if not isinstance(obj, list) or not obj or type(obj[0]) is not int:
        raise ProtocolError("a message is an array starting with its kind")
    kind, fields = obj[0], obj[1:]
    check = _CHECKS.get(kind)
    if check is None:
        raise ProtocolError(f"unknown message kind {kind}")
    return Message(kind, tuple(check(fields, limits)))


def _arity(fields: list, n: int, what: str) -> None:
    if len(fields) != n:
        raise ProtocolError(f"{what} has {len(fields)} fields, not {n}")


def _uint(value: Any, what: str, minimum: int = 0, maximum: int = _U64_MAX) -> int:
    if type(value) is not int or not minimum <= value <= maximum:
        raise ProtocolError(f"{what} must be an integer in {minimum}..{maximum}")
    return value


def _bytes(value: Any, what: str, max_bytes: int) -> bytes:
    if type(value) is not bytes:
        raise ProtocolError(f"{what} must be bytes")
    if len(value) > max_bytes:
        raise ProtocolError(f"{what} of {len(value)} bytes exceeds {max_bytes}")
    return value


def _all_bytes(items: list, max_bytes: int, min_bytes: int = 0) -> bool:
    """Whether every item is bytes of ``min_bytes..max_bytes``: a well-formed message's list,
    checked in C-level passes (the per-item loops run only to name a bad item)."""
    return set(map(type, items)) <= _BYTES and (
        not items or (max(map(len, items)) <= max_bytes
                      and (not min_bytes or min(map(len, items)) >= min_bytes)))


_BYTES = {bytes}
_INT = {int}


def _byte_list(value: Any, what: str, count_max: int, item_bytes_max: int) -> list[bytes]:
    if not isinstance(value, list):
        raise ProtocolError(f"{what} must be an array")
    if not 0 < len(value) <= count_max:
        raise ProtocolError(f"{what} holds {len(value)} items, allowed 1..{count_max}")
    if not _all_bytes(value, item_bytes_max):
        for i, item in enumerate(value):
            _bytes(item, f"{what}[{i}]", item_bytes_max)
    return value


def _status(f: list, lim: NetLimits) -> list:
    _arity(f, 2, "status")
    height = _uint(f[0], "status height", 0, HEIGHT_MAX)
    block_hash = _bytes(f[1], "status block hash", 32)
    if len(block_hash) not in (0, 32):
        raise ProtocolError("status block hash must be 32 bytes or empty")
    return [height, block_hash]


def _proposal(f: list, lim: NetLimits) -> list:
    _arity(f, 2, "proposal")
    return [_bytes(f[0], "proposal", 4096), _bytes(f[1], "proposal block", lim.frame_bytes_max)]


def _votes(f: list, lim: NetLimits) -> list:
    _arity(f, 1, "votes")
    return [_byte_list(f[0], "votes", lim.votes_per_message_max, 1024)]


def _evidence(f: list, lim: NetLimits) -> list:
    _arity(f, 1, "evidence")
    return [_byte_list(f[0], "evidence", lim.evidence_per_message_max, 4096)]


def _txs(f: list, lim: NetLimits) -> list:
    _arity(f, 1, "txs")
    return [_byte_list(f[0], "txs", lim.txs_per_message_max, lim.tx_bytes_max)]


def _get_blocks(f: list, lim: NetLimits) -> list:
    _arity(f, 2, "get_blocks")
    start = _uint(f[0], "get_blocks from height", 1, HEIGHT_MAX)
    count = _uint(f[1], "get_blocks count", 1)
    return [start, min(count, lim.blocks_per_message_max)]


def _blocks(f: list, lim: NetLimits) -> list:
    _arity(f, 1, "blocks")
    items = f[0]
    if not isinstance(items, list) or not 0 < len(items) <= lim.blocks_per_message_max:
        raise ProtocolError(f"blocks must be an array of 1..{lim.blocks_per_message_max}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, list) or len(item) != 3:
            raise ProtocolError(f"blocks[{i}] must be [height, block, certificate]")
        out.append((_uint(item[0], f"blocks[{i}] height", 1, HEIGHT_MAX),
                    _bytes(item[1], f"blocks[{i}] block", lim.frame_bytes_max),
                    _bytes(item[2], f"blocks[{i}] certificate", lim.frame_bytes_max)))
    return [out]


def _list(value: Any, what: str, count_max: int, *, empty: bool = False) -> list:
    if not isinstance(value, list):
        raise ProtocolError(f"{what} must be an array")
    if not (0 if empty else 1) <= len(value) <= count_max:
        raise ProtocolError(f"{what} holds {len(value)} items, allowed "
                            f"{0 if empty else 1}..{count_max}")
    return value


def _compact_proposal(f: list, lim: NetLimits) -> list:
    _arity(f, 3, "compact proposal")
    ids = _list(f[2], "compact proposal ids", lim.proposal_txs_max, empty=True)
    if not _all_bytes(ids, 32, 32):
        for i, tx_id in enumerate(ids):
            if type(tx_id) is not bytes or len(tx_id) != 32:
                raise ProtocolError(f"compact proposal ids[{i}] must be 32 bytes")
    return [_bytes(f[0], "proposal", 4096), _bytes(f[1], "proposal head", lim.frame_bytes_max),
            ids]


def _indices(value: Any, what: str, lim: NetLimits) -> list[int]:
    items = _list(value, what, lim.proposal_txs_max)
    if not (set(map(type, items)) <= _INT and min(items) >= 0
            and max(items) <= lim.proposal_txs_max - 1):
        for i, x in enumerate(items):
            _uint(x, f"{what}[{i}]", 0, lim.proposal_txs_max - 1)
    return items


def _get_proposal_txs(f: list, lim: NetLimits) -> list:
    _arity(f, 3, "get_proposal_txs")
    block_hash = _bytes(f[1], "get_proposal_txs block hash", 32)
    if len(block_hash) != 32:
        raise ProtocolError("get_proposal_txs block hash must be 32 bytes")
    return [_uint(f[0], "get_proposal_txs height", 1, HEIGHT_MAX), block_hash,
            _indices(f[2], "get_proposal_txs indices", lim)]


def _proposal_txs(f: list, lim: NetLimits) -> list:
    _arity(f, 4, "proposal_txs")
    block_hash = _bytes(f[1], "proposal_txs block hash", 32)
    if len(block_hash) != 32:
        raise ProtocolError("proposal_txs block hash must be 32 bytes")
    indices = _indices(f[2], "proposal_txs indices", lim)
    envelopes = _list(f[3], "proposal_txs envelopes", lim.proposal_txs_max)
    if len(envelopes) != len(indices):
        raise ProtocolError("proposal_txs needs one envelope per index")
    if not _all_bytes(envelopes, lim.tx_bytes_max):
        for i, e in enumerate(envelopes):
            _bytes(e, f"proposal_txs envelopes[{i}]", lim.tx_bytes_max)
    return [_uint(f[0], "proposal_txs height", 1, HEIGHT_MAX), block_hash, indices, envelopes]


def _pruned(f: list, lim: NetLimits) -> list:
    _arity(f, 2, "pruned")
    return [_uint(f[0], "pruned from height", 1, HEIGHT_MAX),
            _uint(f[1], "pruned earliest height", 0, HEIGHT_MAX)]


def _get_snapshots(f: list, lim: NetLimits) -> list:
    _arity(f, 0, "get_snapshots")
    return []


def _hash32(value: Any, what: str) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise ProtocolError(f"{what} must be 32 bytes")
    return value


def _snapshots(f: list, lim: NetLimits) -> list:
    _arity(f, 1, "snapshots")
    items = f[0]
    if not isinstance(items, list) or len(items) > SNAPSHOTS_PER_MESSAGE_MAX:
        raise ProtocolError(f"snapshots must be an array of 0..{SNAPSHOTS_PER_MESSAGE_MAX}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, list) or len(item) != 6:
            raise ProtocolError(f"snapshots[{i}] must have 6 fields")
        hashes = item[3]
        if not isinstance(hashes, list) or not 0 < len(hashes) <= SNAPSHOT_CHUNKS_MAX:
            raise ProtocolError(f"snapshots[{i}] chunk hashes: 1..{SNAPSHOT_CHUNKS_MAX}")
        out.append([_uint(item[0], f"snapshots[{i}] height", 1, HEIGHT_MAX),
                    _uint(item[1], f"snapshots[{i}] format", 0, 2**32 - 1),
                    _hash32(item[2], f"snapshots[{i}] app hash"),
                    [_hash32(h, f"snapshots[{i}] chunk hash") for h in hashes],
                    _bytes(item[4], f"snapshots[{i}] metadata", SNAPSHOT_METADATA_BYTES_MAX),
                    _hash32(item[5], f"snapshots[{i}] hash")])
    return [out]


def _get_chunk(f: list, lim: NetLimits) -> list:
    _arity(f, 2, "get_chunk")
    return [_hash32(f[0], "get_chunk snapshot hash"),
            _uint(f[1], "get_chunk index", 0, SNAPSHOT_CHUNKS_MAX - 1)]


def _chunk(f: list, lim: NetLimits) -> list:
    _arity(f, 3, "chunk")
    return [_hash32(f[0], "chunk snapshot hash"),
            _uint(f[1], "chunk index", 0, SNAPSHOT_CHUNKS_MAX - 1),
            _bytes(f[2], "chunk", lim.frame_bytes_max)]


_CHECKS = {STATUS: _status, PROPOSAL: _proposal, VOTES: _votes, EVIDENCE: _evidence, TXS: _txs,
           GET_BLOCKS: _get_blocks, BLOCKS: _blocks, PRUNED: _pruned,
           GET_SNAPSHOTS: _get_snapshots, SNAPSHOTS: _snapshots, GET_CHUNK: _get_chunk,
           CHUNK: _chunk, COMPACT_PROPOSAL: _compact_proposal,
           GET_PROPOSAL_TXS: _get_proposal_txs, PROPOSAL_TXS: _proposal_txs}
