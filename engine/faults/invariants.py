"""The end-of-run checks of a fault-injection testnet, on the stopped nodes' stores and
signature logs. Each returns a list of violations (strings); empty means the invariant held.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections import defaultdict

from engine import consensus as cs
from engine.block import Block, header_size
from engine.consensus.types import PROPOSAL_DOMAIN, VOTE_DOMAIN
from engine.faults.hooks import SIGNATURE_LOG
from engine.store import Store, store_path
from engine.suite import Suite

__all__ = ["agreement", "chain_suite", "committed_evidence", "double_signs",
           "partition_problem", "store_checks", "txs_present"]


def _open(home: str) -> Store:
    return Store(store_path(home), readonly=True)


def chain_hashes(home: str) -> dict[int, bytes]:
    """Block hashes by height, of every block the store holds (pruned or state-synced
    stores start above 1)."""
    with _open(home) as st:
        return {b.height: b.block_hash for b in st.blocks(1, st.latest_height() + 1)}


def agreement(homes: dict[int, str]) -> tuple[list[str], dict[int, int]]:
    """No fork: every pair of honest nodes holds the same hash at every height both have,
    and the same app hash after the highest height both have."""
    chains = {i: chain_hashes(h) for i, h in homes.items()}
    problems = []
    ref_i = max(chains, key=lambda i: max(chains[i], default=0))
    ref = chains[ref_i]
    for i, chain in chains.items():
        for height in sorted(set(ref) & set(chain)):
            a, b = ref[height], chain[height]
            if a != b:
                problems.append(f"FORK at height {height}: node{ref_i} {a.hex()[:16]} vs "
                                f"node{i} {b.hex()[:16]}")
                break
        common = max(set(ref) & set(chain), default=0)
        if common and i != ref_i:
            with _open(homes[ref_i]) as a_st, _open(homes[i]) as b_st:
                if a_st.app_hash(common) != b_st.app_hash(common):
                    problems.append(f"node{i}'s app hash after height {common} differs from "
                                    f"node{ref_i}'s")
    return problems, {i: max(c, default=0) for i, c in chains.items()}


def _not_found(st: Store, tx_ids: list[bytes],
               state_keys: dict[bytes, bytes] | None) -> list[bytes]:
    """The ids a store does not show as committed: absent from its tx index and, in a pruned
    (or state-synced) store whose index lost old blocks, also absent from the committed state
    (each load transaction writes a key of its own, and state is never pruned)."""
    found = st.find_txs(tx_ids) if tx_ids else []
    missing = [t for t, loc in zip(tx_ids, found) if loc is None]
    if missing and state_keys and st.base_height() > 1:
        missing = [t for t in missing
                   if t not in state_keys or st.state_get(state_keys[t]) is None]
    return missing


def txs_present(homes: dict[int, str], tx_ids: list[bytes],
                state_keys: dict[bytes, bytes] | None = None) -> list[str]:
    """Nothing lost: every transaction acknowledged as committed is in every honest store."""
    problems = []
    for i, home in homes.items():
        with _open(home) as st:
            missing = _not_found(st, tx_ids, state_keys)
        if missing:
            problems.append(f"node{i} lacks {len(missing)} of {len(tx_ids)} acknowledged "
                            f"transactions, e.g. {missing[0].hex()}")
    return problems


def txs_missing(home: str, tx_ids: list[bytes],
                state_keys: dict[bytes, bytes] | None = None) -> int:
    """How many of ``tx_ids`` are not in the store of ``home``."""
    if not tx_ids:
        return 0
    with _open(home) as st:
        return len(_not_found(st, tx_ids, state_keys))


def signature_logs_present(homes: dict[int, str], signers) -> list[str]:
    """Every node wrote a signature log, and every validator in ``signers`` logged at least
    one signature of its own: otherwise the fault hooks did not load and the double-sign check
    would have nothing to read."""
    problems = []
    for i, home in homes.items():
        path = os.path.join(home, SIGNATURE_LOG)
        if not os.path.exists(path):
            problems.append(f"node{i} wrote no signature log ({path}): hooks not loaded")
            continue
        if i in signers:
            with open(path) as f:
                if not any(line.startswith("own ") for line in f):
                    problems.append(f"node{i} logged no signature of its own")
    return problems


def committed_evidence(home: str) -> list[tuple[int, int]]:
    """(height of the block, accused validator index) of every committed evidence item."""
    out = []
    with _open(home) as st:
        for b in st.blocks(1, st.latest_height() + 1):
            for e in Block.decode(b.header, header_only=True).evidence:
                out.append((b.height, cs.DuplicateVoteEvidence.decode(e).vote_a.validator_index))
    return out


def parse_sign_bytes(data: bytes) -> tuple[str, int, int, int] | None:
    """(kind, height, round, step) of vote or proposal sign bytes."""
    for domain, kind in ((VOTE_DOMAIN, "vote"), (PROPOSAL_DOMAIN, "proposal")):
        if data.startswith(domain):
            off = len(domain) + 1 + data[len(domain)]
            if kind == "vote":
                vtype, h, r = struct.unpack_from("<BQI", data, off)
                return kind, h, r, vtype + 1
            h, r = struct.unpack_from("<QI", data, off)
            return kind, h, r, 1
    return None


def double_signs(homes: list[str]) -> dict[str, list[str]]:
    """Every (validator key, height, round, step) seen signed with two different sign bytes,
    from all nodes' signature logs (own signatures and verified received ones)."""
    seen: dict[tuple, set[bytes]] = defaultdict(set)
    for home in homes:
        path = os.path.join(home, SIGNATURE_LOG)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue  # a line torn by kill -9
                try:
                    data = bytes.fromhex(parts[2])
                except ValueError:
                    continue
                hrs = parse_sign_bytes(data)
                if hrs is not None:
                    seen[(parts[1],) + tuple(hrs)].add(data)
    out: dict[str, list[str]] = defaultdict(list)
    for (key, kind, h, r, step), variants in seen.items():
        if len(variants) > 1:
            out[key].append(f"{kind} h={h} r={r} step={step}: {len(variants)} versions")
    return dict(out)


def chain_suite(homes: dict[int, str], suite: Suite) -> list[str]:
    """Each store holds a chain of ``suite``, whatever its genesis says: the newest block's
    id is the suite's hash of its header, and every envelope of the newest block holding any
    (of the last 500) is of the suite's version (``engine store check`` judges a store by its own genesis, so a
    run that built the wrong chain would pass it)."""
    problems = []
    for i, home in homes.items():
        with _open(home) as st:
            top = st.latest_height()
            block = st.load_block(top) if top else None
            if block is None:
                problems.append(f"node{i} holds no block")
                continue
            header = block.header[:header_size(len(Block.decode(block.header,
                                                                header_only=True).chain_id))]
            if suite.hash(header) != block.block_hash:
                problems.append(f"node{i}: block {top}'s id is not the {suite.name} hash "
                                "of its header")
            # The envelopes of the newest block holding any (a run ends with empty blocks
            # while the nodes catch up; the block id above already names the suite).
            recent = list(st.blocks(max(st.base_height(), top - 500), top + 1))
            with_txs = next((b for b in reversed(recent) if b.txs), None)
            if with_txs is None:
                continue
            wrong = [t for t in with_txs.txs if t[0] != suite.tx_version]
            if wrong:
                problems.append(f"node{i}: {len(wrong)} envelopes of block {with_txs.height} "
                                f"are not {suite.name} envelopes (version {wrong[0][0]})")
    return problems


def partition_problem(power: int, total: int, height_before: int | None,
                      height_after: int | None, *, all_running: bool) -> str | None:
    """What is wrong with one side of a partition, or None. ``power`` is the voting power
    inside the group of ``total``; the heights are the group's highest when the partition
    began and just before it healed. Without a quorum (more than 2/3 of the power) a group
    can at most finish the height whose votes were already in flight: more is a fork risk, or a
    partition that did not cut. With a quorum and every one of its validators running, it
    must have committed at least two heights: otherwise the majority did not carry on. A
    group with a quorum must answer its heights; one without may be silent (its nodes down or
    starting), as it has nothing to show."""
    quorum = 3 * power > 2 * total
    if height_before is None or height_after is None:
        return "had no node answering its height" if quorum else None
    if not quorum and height_after > height_before + 1:
        return (f"committed heights {height_before + 1}..{height_after} with {power} of "
                f"{total} voting power (no quorum)")
    if quorum and all_running and height_after < height_before + 2:
        return (f"did not commit while partitioned (heights {height_before} -> "
                f"{height_after}) with {power} of {total} voting power (a quorum)")
    return None


def state_synced(homes: dict[int, str]) -> list[str]:
    """Each of these nodes joined from a snapshot: its store starts above height 1 and holds
    state (a node that replayed from genesis would hold block 1)."""
    problems = []
    for i, home in homes.items():
        with _open(home) as st:
            if st.base_height() <= 1 or not st.state_items():
                problems.append(f"node{i} did not join by state sync (its store holds "
                                f"heights {st.base_height()}..{st.latest_height()})")
    return problems


def store_checks(homes: dict[int, str], cwd: str) -> list[str]:
    """`engine store check --home H` passes for every node."""
    problems = []
    for i, home in homes.items():
        out = subprocess.run([sys.executable, "-m", "engine", "store", "check", "--home", home],
                             cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
        if out.returncode != 0:
            problems.append(f"node{i}: engine store check failed: "
                            f"{(out.stdout + out.stderr).strip()[-400:]}")
    return problems
