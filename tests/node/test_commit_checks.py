"""What the committer checks of an application's BlockResult and how it packs the results:
the C-level fast paths (a dict of bytes, one shared result object) answer exactly as the
per-item loops they skip (engine/node/commit.py)."""
from __future__ import annotations

import types

import msgpack
import pytest

from engine.app import STATE_KEY_BYTES_MAX, BlockResult, Event, TxResult
from engine.node.commit import _check_result, _packed_results


class _Key(bytes):
    """A bytes subclass: refused as a key like any other non-bytes type."""


@pytest.mark.parametrize("writes", [
    {}, {b"k": b"v"}, {b"k": None}, {b"k" * STATE_KEY_BYTES_MAX: b""},
    {b"a": b"1", b"b": None, b"c" * 40: b"3" * 1000},
    types.MappingProxyType({b"a": b"1", b"b": None}),  # any Mapping: the per-key loop
])
def test_good_writes_pass(writes):
    _check_result(BlockResult([TxResult()], b"h" * 32, writes), 1)


@pytest.mark.parametrize("bad, error, words", [
    ({b"": b"v"}, ValueError, "must be 1.."),
    ({b"k" * (STATE_KEY_BYTES_MAX + 1): b"v"}, ValueError, "STATE_KEY_BYTES_MAX"),
    ({"k": b"v"}, ValueError, "'k'"),
    ({7: b"v"}, ValueError, "7 must be"),
    ({_Key(b"k"): b"v"}, ValueError, "must be 1.."),
    ({b"k": "v"}, TypeError, "not str"),
    ({b"k": bytearray(b"v")}, TypeError, "not bytearray"),
    ({b"k": 1}, TypeError, "not int"),
])
@pytest.mark.parametrize("shape", ["dict", "proxy"])
def test_each_bad_write_is_named_whatever_its_place(bad, error, words, shape):
    """A bad key or value is caught among good writes, before or after them, in a dict (the
    fast path falls back to the loop) and in another Mapping."""
    for writes in ({**bad, b"ok": b"1"}, {b"ok": b"1", **bad}):
        mapping = writes if shape == "dict" else types.MappingProxyType(writes)
        with pytest.raises(error, match=words.replace(".", r"\.").replace("(", r"\(")):
            _check_result(BlockResult([TxResult()], b"h" * 32, mapping), 1)


def test_result_shape_and_count_are_checked():
    with pytest.raises(TypeError, match="no 'writes'"):
        _check_result(types.SimpleNamespace(tx_results=[], app_hash=b""), 0)
    with pytest.raises(RuntimeError, match="result count"):
        _check_result(BlockResult([TxResult()], b"h" * 32, {}), 2)
    with pytest.raises(TypeError, match="Mapping"):
        _check_result(BlockResult([], b"h" * 32, [(b"k", b"v")]), 0)  # type: ignore[arg-type]


def _packed_one_by_one(results: list) -> list[bytes]:
    """The format (docs/formats.md), written out here for each result alone."""
    out = []
    for r in results:
        fields = [r.code, r.log, r.data]
        if r.events:
            fields.append([[e.type, [[k, v] for k, v in e.attributes.items()]]
                           for e in r.events])
        out.append(msgpack.packb(fields))
    return out


def test_packed_results_match_the_format_for_shared_and_distinct_objects():
    ok = TxResult()
    bad = TxResult(code=3, log="malformed")
    noted = TxResult(data=b"x", events=[Event("transfer", {"to": "ab"})])
    cases = [
        [], [ok], [ok] * 500, [bad] * 3, [noted] * 4,
        [ok, bad, ok, ok], [ok] * 10 + [bad], [bad] + [ok] * 10,
        [TxResult(), TxResult()],  # equal, not the same object
        [noted, TxResult(data=b"x", events=[Event("transfer", {"to": "cd"})])],
    ]
    for results in cases:
        assert _packed_results(results) == _packed_one_by_one(results)


def test_packed_results_share_only_the_same_object():
    """Results an application made of its own class (any object with the attributes will
    do): one that claims equality with every other is still packed by its own fields."""

    class Loose:
        events = ()

        def __init__(self, code: int):
            self.code, self.log, self.data = code, "", b""

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    results = [Loose(0), Loose(1), Loose(0)]
    assert _packed_results(results) == _packed_one_by_one(results)
