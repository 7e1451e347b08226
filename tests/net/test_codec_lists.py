"""The codec's checks of the lists peers send (transactions, votes, evidence, a compact
proposal's ids, the indices and envelopes of a proposal's missing transactions): a list passes
exactly when every item is well formed, and a refusal names the first bad item, whether the
list is checked in C-level passes (the usual case) or item by item (engine/net/codec.py)."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ProtocolError
from engine.net import codec
from engine.net.limits import NetLimits

LIM = NetLimits(tx_bytes_max=40, txs_per_message_max=50, proposal_txs_max=60)

#: kind -> (build the message from one list, the list's name in refusals, item rule)
_BYTES_MAX = {"txs": LIM.tx_bytes_max, "votes": 1024, "evidence": 4096}


def _message(kind: str, items: list) -> bytes:
    if kind in ("txs", "votes", "evidence"):
        code = {"txs": codec.TXS, "votes": codec.VOTES, "evidence": codec.EVIDENCE}[kind]
        return codec.encode(code, items)
    if kind == "ids":
        return codec.encode(codec.COMPACT_PROPOSAL, b"p", b"h", items)
    if kind == "indices":
        return codec.encode(codec.GET_PROPOSAL_TXS, 3, b"x" * 32, items)
    assert kind == "envelopes"
    return codec.encode(codec.PROPOSAL_TXS, 3, b"x" * 32, list(range(len(items))), items)


def _good(kind: str, item: Any) -> bool:
    if kind == "ids":
        return type(item) is bytes and len(item) == 32
    if kind == "indices":
        return type(item) is int and 0 <= item < LIM.proposal_txs_max
    bytes_max = LIM.tx_bytes_max if kind == "envelopes" else _BYTES_MAX[kind]
    return type(item) is bytes and len(item) <= bytes_max


def _first_bad_words(kind: str, i: int) -> str:
    return {"txs": f"txs[{i}]", "votes": f"votes[{i}]", "evidence": f"evidence[{i}]",
            "ids": f"compact proposal ids[{i}]", "indices": f"get_proposal_txs indices[{i}]",
            "envelopes": f"proposal_txs envelopes[{i}]"}[kind]


_ITEMS = st.one_of(
    st.binary(min_size=0, max_size=45), st.binary(min_size=31, max_size=33),
    st.integers(-2, 70), st.booleans(), st.text(max_size=3), st.none(), st.floats(0, 1),
    st.lists(st.integers(0, 3), max_size=2))


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(["txs", "votes", "evidence", "ids", "indices", "envelopes"]),
       good=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=12),
       extra=st.lists(_ITEMS, max_size=3), at=st.integers(0, 12))
def test_a_list_passes_exactly_when_every_item_is_good(kind, good, extra, at):
    items: list[Any] = list(range(len(good))) if kind == "indices" else list(good)
    for j, x in enumerate(extra):
        items.insert(min(at + j, len(items)), x)
    raw = _message(kind, items)
    bad = [i for i, x in enumerate(items) if not _good(kind, x)]
    if not bad:
        msg = codec.decode(raw, LIM)
        assert items in msg.fields  # the list itself, as sent
        return
    with pytest.raises(ProtocolError) as e:
        codec.decode(raw, LIM)
    assert _first_bad_words(kind, bad[0]) in str(e.value)


@pytest.mark.parametrize("kind", ["txs", "votes", "evidence", "ids", "indices", "envelopes"])
def test_bounds_of_each_item_rule(kind):
    """The edges: the largest item allowed passes, one past it is refused, and so is an item
    of another type that orders or measures like a good one (a bool among indices, text
    among bytes)."""
    if kind == "indices":
        ok, bads = [0, LIM.proposal_txs_max - 1], [[0, LIM.proposal_txs_max], [0, -1],
                                                    [0, True], [1, False]]
    elif kind == "ids":
        ok, bads = [b"a" * 32, b"b" * 32], [[b"a" * 32, b"b" * 31], [b"a" * 32, b"b" * 33],
                                            [b"a" * 32, "b" * 32]]
    else:
        top = LIM.tx_bytes_max if kind == "envelopes" else _BYTES_MAX[kind]
        ok, bads = [b"", b"x" * top], [[b"", b"x" * (top + 1)], [b"", "x"], [b"", 1]]
    assert ok in codec.decode(_message(kind, ok), LIM).fields
    for bad in bads:
        with pytest.raises(ProtocolError, match=_first_bad_words(kind, 1).replace("[", r"\[")):
            codec.decode(_message(kind, bad), LIM)
