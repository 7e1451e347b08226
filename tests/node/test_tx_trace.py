"""Tracing a sample of transactions (engine/node/txtrace.py) and merging the traces into where
a transaction's latency goes (engine/benchmarks/txpath.py): the sampling, the records, the
segments of synthetic paths, and a 4-validator network whose traces show every transaction's
steps on every node."""
from __future__ import annotations

import asyncio
import os
import random

import pytest

from engine import config
from engine.benchmarks.txpath import SEGMENTS, parse_trace, tx_path
from engine.node.txtrace import SAMPLE_ONE_IN, STEPS, TRACE_FILE, TxTrace, sample_keys, sampled
from tests.node.helpers import make_testnet, make_txs, run, start_nodes

CHAIN = "trace"


def _envelope(first_signature_byte: int, tail: bytes = b"") -> bytes:
    signature = bytes([first_signature_byte]) + os.urandom(63)
    return b"header and payload" + tail + signature


def test_the_sample_is_chosen_by_the_signature_alone():
    low, high = _envelope(SAMPLE_ONE_IN * 0), _envelope(256 // SAMPLE_ONE_IN)
    short = b"\x00" * 63  # shorter than a signature: never sampled
    assert sample_keys([low, high, short]) == [low[-64:-56].hex()]
    assert sampled([high, low]) == [(1, low[-64:-56].hex())]
    # The same envelope gets the same key wherever it is seen (entry node, peers, blocks).
    assert sample_keys([low]) == sample_keys([bytes(low)]) == sample_keys([memoryview(low)])
    # About one in SAMPLE_ONE_IN real signatures.
    envs = make_txs(CHAIN, 3200)
    share = len(sample_keys(envs)) / len(envs)
    assert 0.5 / SAMPLE_ONE_IN < share < 1.5 / SAMPLE_ONE_IN, share


def test_marks_are_written_at_once_with_the_step_and_time(tmp_path):
    path = str(tmp_path / TRACE_FILE)
    clock = iter([10.5, 11.25])
    trace = TxTrace(path, clock=lambda: next(clock))
    a, b, skipped = _envelope(0), _envelope(3), _envelope(200)
    trace.mark("verified", [a, skipped, b])
    trace.mark("stored", [skipped])  # nothing sampled: no line, no clock read
    trace.mark("stored", [b])
    with open(path) as f:  # readable before close(): a killed node keeps its trace
        lines = f.read().splitlines()
    assert lines == [f"{a[-64:-56].hex()} verified 10.500000",
                     f"{b[-64:-56].hex()} verified 10.500000",
                     f"{b[-64:-56].hex()} stored 11.250000"]
    with pytest.raises(ValueError, match="unknown trace step 'pooled'"):
        trace.mark("pooled", [a])
    trace.close()
    trace.mark("stored", [a])  # after close: ignored
    with open(path) as f:
        assert len(f.read().splitlines()) == 3


def test_trace_txs_must_be_a_bool():
    cfg = config.NodeConfig(trace_txs="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trace_txs must be true or false"):
        cfg.validate()


def test_parsing_keeps_the_first_time_of_each_step_and_skips_cut_lines():
    text = "k1 queued_local 2.0\nk1 queued_local 1.0\nk1 admitted 3.0\nk2 stor\nk2 stored x\n"
    assert parse_trace(text) == {"k1": {"queued_local": 1.0, "admitted": 3.0}}


def _node(**steps: float) -> dict[str, float]:
    return dict(steps)


def test_segments_of_a_transaction_posted_to_its_proposer_and_of_one_gossiped_to_it():
    # Node 1 proposes both. "a" was posted to node 1 itself, "b" to node 2 (gossiped to 1).
    nodes = [
        {"a": _node(queued_peer=1.0, admitted=1.01, decided=1.10, stored=1.12),
         "b": _node(queued_peer=2.0, admitted=2.01, decided=2.20, stored=2.23)},
        {"a": _node(queued_local=1.000, admitted=1.004, proposed=1.05),
         "b": _node(queued_peer=1.99, admitted=1.995, proposed=2.10)},
        {"a": _node(queued_peer=1.01, admitted=1.02),
         "b": _node(queued_local=1.90, admitted=1.95)},
    ]
    posted = {"a": 0.999, "b": 1.899}
    seen = {"a": 1.13, "b": 2.25}
    out = tx_path(nodes, posted, seen)
    assert (out["traced"], out["used"]) == (2, 2)
    seg = out["segments"]
    assert list(seg) == list(SEGMENTS)  # in path order
    # Gossip and the proposer's admission concern "b" only.
    assert seg["gossip"]["samples"] == seg["proposer_admission"]["samples"] == 1
    assert seg["gossip"]["p50"] == pytest.approx(40.0)           # 1.95 -> 1.99
    assert seg["proposer_admission"]["p50"] == pytest.approx(5.0)
    assert seg["post"]["samples"] == seg["answer"]["samples"] == 2
    a_wait, b_wait = (1.05 - 1.004) * 1000, (2.10 - 1.995) * 1000
    assert sorted([seg["wait_for_cut"]["p50"], seg["wait_for_cut"]["mean"]]) == \
        pytest.approx(sorted([b_wait, (a_wait + b_wait) / 2]))
    whole = out["posted_to_seen"]
    assert whole["samples"] == 2 and whole["mean"] == pytest.approx(
        ((1.13 - 0.999) + (2.25 - 1.899)) / 2 * 1000)


def test_incomplete_and_out_of_order_paths_are_counted_and_left_out():
    complete = {"queued_local": 1.0, "admitted": 1.01, "proposed": 1.05, "decided": 1.1,
                "stored": 1.12}
    nodes = [{"ok": complete,
              "no_proposer": {**complete, "proposed": None},
              "two_entries": complete,
              "backwards": {**complete, "stored": 1.09}},
             {"two_entries": {"queued_local": 1.0, "admitted": 1.01}}]
    nodes = [{k: {s: t for s, t in v.items() if t is not None} for k, v in n.items()}
             for n in nodes]
    posted = {k: 0.99 for k in ("ok", "no_proposer", "two_entries", "backwards", "unseen")}
    seen = {k: 1.2 for k in ("ok", "no_proposer", "two_entries", "backwards")}
    out = tx_path(nodes, posted, seen)
    assert (out["traced"], out["used"]) == (4, 1)
    assert out["posted_to_seen"]["mean"] == pytest.approx(210.0)
    assert tx_path(nodes, {}, {}) == {"traced": 0, "used": 0, "segments": {},
                                      "posted_to_seen": {}}


@pytest.mark.parametrize("seed", range(30))
def test_the_segments_of_every_path_add_up_to_its_posted_to_seen_time(seed):
    rng = random.Random(seed)
    nodes: list[dict] = [{} for _ in range(4)]
    posted, seen = {}, {}
    for k in range(40):
        key = f"t{k}"
        entry, proposer = rng.randrange(4), rng.randrange(4)
        t = rng.uniform(0, 100)
        posted[key] = t
        t += rng.uniform(0, 0.01)
        nodes[entry][key] = {"queued_local": t, "admitted": (t := t + rng.uniform(0, 0.05))}
        if proposer != entry:
            nodes[proposer][key] = {"queued_peer": (t := t + rng.uniform(0, 0.02)),
                                    "admitted": (t := t + rng.uniform(0, 0.05))}
        nodes[proposer][key]["proposed"] = (t := t + rng.uniform(0, 0.1))
        n0 = nodes[0].setdefault(key, {})
        n0["decided"] = (t := t + rng.uniform(0, 0.05))
        n0["stored"] = (t := t + rng.uniform(0, 0.02))
        seen[key] = t + rng.uniform(0, 0.01)
    out = tx_path(nodes, posted, seen)
    assert out["used"] == 40
    # Means are additive: a segment a path skips (gossip when posted to its proposer) adds 0.
    total = sum(st["mean"] * st["samples"] for st in out["segments"].values()) / 40
    assert total == pytest.approx(out["posted_to_seen"]["mean"], abs=0.01 * len(SEGMENTS))


def test_a_network_traces_every_step_of_every_sampled_transaction(tmp_path):
    homes = make_testnet(tmp_path, 4, CHAIN, trace_txs=True)
    txs = make_txs(CHAIN, 400)
    keys = sample_keys(txs)
    assert keys, "no transaction sampled"

    async def main():
        nodes = await start_nodes(homes)
        try:
            results = await nodes[2].submit_txs(txs)
            assert all(r.ok for r in results)
            infos = await asyncio.gather(*(n.wait_for_tx(r.tx_id, 30) for n in nodes
                                           for r in results))
            assert all(i is not None for i in infos)
        finally:
            for n in nodes:
                await n.stop()

    run(main())
    traces = []
    for h in homes:
        with open(os.path.join(h.path, TRACE_FILE)) as f:
            traces.append(parse_trace(f.read()))
    for key in keys:
        steps = [t.get(key, {}) for t in traces]
        # Queued from the API on the node it was submitted to, from gossip on the others
        # (unless a block brought it first), proposed by a node (by one, unless a round
        # failed), and decided and stored everywhere, in that order.
        assert "queued_local" in steps[2] and all("queued_local" not in s for i, s in
                                                   enumerate(steps) if i != 2), steps
        assert any("proposed" in s for s in steps), steps
        for s in steps:
            assert s["decided"] <= s["stored"]
            if "admitted" in s:
                assert s["verified"] <= s["admitted"], s
        assert steps[2]["queued_local"] <= steps[2]["verified"] <= steps[2]["admitted"] \
            <= min(s["stored"] for s in steps)
        assert set().union(*steps) <= set(STEPS)
    # Nothing but sampled transactions was traced.
    assert set().union(*traces) <= set(keys)
