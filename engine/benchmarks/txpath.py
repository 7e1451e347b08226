"""Where a transaction's latency goes: the nodes' traces (engine/node/txtrace.py) and the load
generator's post and seen times merged, transaction by transaction (``engine bench tps
--trace-txs``).

A traced transaction's path is a chain of moments, each the first time of a step on one node:
posted by the load generator; queued and through admission on the node it was posted to (its
*entry*); when another node proposed it, queued from gossip and through admission there too;
cut into a block by that *proposer*; decided and stored on node 0; seen committed by the load
generator (which follows node 0). The segments between consecutive moments are

===================  =========================================================================
``post``             posted -> queued at the entry (HTTP, and the entry's event loop)
``entry_admission``  queued -> through admission at the entry (batch wait, verification, pool)
``gossip``           through admission at the entry -> queued at the proposer (proposer only)
``proposer_admission``  queued -> through admission at the proposer (proposer only)
``wait_for_cut``     through admission where it was proposed -> cut into a block
``consensus``        cut -> decided on node 0 (proposal, votes; execution if not done early)
``store``            decided -> stored on node 0
``answer``           stored on node 0 -> seen by the load generator (the long poll's answer)
===================  =========================================================================

so a transaction's segments add up to its posted -> seen time. A transaction whose chain is
incomplete (posted to a node that did not trace, proposed twice by different nodes' rounds,
...) or out of order is counted and left out.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

__all__ = ["SEGMENTS", "parse_trace", "tx_path"]

SEGMENTS = ("post", "entry_admission", "gossip", "proposer_admission", "wait_for_cut",
            "consensus", "store", "answer")


def parse_trace(text: str) -> dict[str, dict[str, float]]:
    """One node's trace file: key -> step -> the first time of that step."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # a line cut short by a kill
        key, step, t = parts
        try:
            when = float(t)
        except ValueError:
            continue
        steps = out.setdefault(key, {})
        if step not in steps or when < steps[step]:
            steps[step] = when
    return out


def _chain(key: str, posted: float, seen: float,
           nodes: list[dict[str, dict[str, float]]]) -> list[tuple[str, float]] | None:
    """The (segment ending here, time) moments of one transaction, or None when incomplete."""
    steps = [n.get(key, {}) for n in nodes]
    entries = [i for i, s in enumerate(steps) if "queued_local" in s]
    proposers = [i for i, s in enumerate(steps) if "proposed" in s]
    if len(entries) != 1 or len(proposers) != 1:
        return None
    entry, proposer = entries[0], proposers[0]
    e, p, n0 = steps[entry], steps[proposer], steps[0]
    if "admitted" not in e or "decided" not in n0 or "stored" not in n0:
        return None
    chain = [("", posted), ("post", e["queued_local"]), ("entry_admission", e["admitted"])]
    if proposer != entry:
        if "queued_peer" not in p or "admitted" not in p:
            return None
        chain += [("gossip", p["queued_peer"]), ("proposer_admission", p["admitted"])]
    chain += [("wait_for_cut", p["proposed"]), ("consensus", n0["decided"]),
              ("store", n0["stored"]), ("answer", seen)]
    return chain


def _stats(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {"p50": round(v[len(v) // 2], 2), "p90": round(v[min(len(v) - 1, int(len(v) * 0.9))], 2),
            "mean": round(sum(v) / len(v), 2), "samples": len(v)}


def tx_path(nodes: list[dict[str, dict[str, float]]], posted: Mapping[str, float],
            seen: Mapping[str, float]) -> dict:
    """Per segment (ms): p50, p90, mean and how many transactions passed it, over the traced
    transactions posted and seen (``nodes[0]`` being node 0, the one the load generator
    follows); ``traced`` counts those, ``used`` those whose chain was complete and in order,
    and ``posted_to_seen`` is the same statistics of the whole path over the used ones."""
    keys: Iterable[str] = (k for k in posted if k in seen)
    by_segment: dict[str, list[float]] = {s: [] for s in SEGMENTS}
    whole: list[float] = []
    traced = 0
    for key in keys:
        traced += 1
        chain = _chain(key, posted[key], seen[key], nodes)
        if chain is None or any(b[1] < a[1] for a, b in itertools.pairwise(chain)):
            continue
        for (_, t0), (segment, t1) in itertools.pairwise(chain):
            by_segment[segment].append((t1 - t0) * 1000)
        whole.append((chain[-1][1] - chain[0][1]) * 1000)
    return {"traced": traced, "used": len(whole),
            "segments": {s: _stats(v) for s, v in by_segment.items() if v},
            "posted_to_seen": _stats(whole) if whole else {}}
