"""Validator-set changes in fault scenarios: the `set_power` step and the final proof.

``set_power`` signs the kvstore admin transaction ``val:<validator key of node i>=<power>`` with
the testnet's ``admin_key.json`` (written by ``engine testnet``), submits it to a live member
and waits for its commit. At the end, :func:`check_history` proves every change happened where
the rule says (engine/valset.py): the store of every honest node holds one set-history record
per change, at ``height + 2``, naming node i with its new power (absent for 0), and the set of
``height + 1`` is still the one before.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from engine import config as cfgmod
from engine import tx
from engine.client import Client, ClientError
from engine.store import Store, store_path
from engine.valset import decode_set

if TYPE_CHECKING:
    from engine.faults.runner import Runner

__all__ = ["SetPowerFailed", "check_history", "submit_power"]


class SetPowerFailed(Exception):
    """The change could not be committed (the runner reports it as a failed scenario)."""


def submit_power(runner: Runner, i: int, power: int, members: list[int]) -> int:
    """Commit `val:<key of node i>=<power>`; the height it was committed at."""
    if not members:
        raise SetPowerFailed(f"set_power node{i}: no live member to send the transaction to")
    homes_dir = os.path.dirname(runner.homes[0])
    home = cfgmod.load_home(runner.homes[i])
    admin = cfgmod._read_key(os.path.join(homes_dir, cfgmod.ADMIN_KEY_FILE), home.genesis.suite)
    key = home.validator_key.public_key
    env = tx.encode_tx(admin, time.time_ns() // 1000, f"val:{key.hex()}={power}".encode(),
                       runner.chain_id)
    last: Exception | None = None
    for target in members:
        try:
            answer = Client(runner.rpc_urls[target], timeout_s=40).submit_tx(
                env, wait_commit=True, timeout_ms=30_000)
        except ClientError as e:  # e.g. the node died meanwhile: try the next member
            last = e
            continue
        result = answer.get("result") or {}
        if result.get("code", 0) != 0 or "height" not in answer:
            raise SetPowerFailed(f"set_power node{i}={power} was refused: {answer}")
        return int(answer["height"])
    raise SetPowerFailed(f"set_power node{i}={power}: no member committed it ({last})")


def check_history(runner: Runner, homes: dict[int, str]) -> list[str]:
    """Every change in every honest store's set history, with the h + 2 delay."""
    problems: list[str] = []
    keys = [cfgmod.load_home(h).validator_key.public_key for h in runner.homes]
    expected = sorted(runner.valset_changes)
    for node, home in homes.items():
        with Store(store_path(home), readonly=True) as store:
            records = {h: decode_set(raw, len(keys[0])) for h, raw in store.validator_sets()}
        if len(records) != len(expected):
            problems.append(f"node{node}: {len(records)} set-history records, "
                            f"{len(expected)} changes were committed")
            continue
        for height, i, power in expected:
            vset = records.get(height + 2)
            if vset is None:
                problems.append(f"node{node}: no set record at {height + 2} for node{i}")
                continue
            index = vset.index_of(keys[i])
            got = 0 if index is None else vset.validators[index].power
            if got != power:
                problems.append(f"node{node}: node{i} has power {got} from {height + 2}, "
                                f"not {power}")
            if height + 1 in records:
                problems.append(f"node{node}: a change took effect at {height + 1}, one "
                                f"height early")
    runner.report.faults_seen["valset_changes"] = len(expected)
    return problems
