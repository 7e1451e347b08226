"""Fault-injection scenarios (tests/scenarios/*.toml) against real validator processes.

`make test` runs the scenarios marked ``quick``; `make test-faults` (ENGINE_FAULTS_ALL=1) runs
all of them. Scenarios with ``netns = true`` need root, `ip` and `nft`, and skip with the reason
otherwise. A scenario with ``known_bug`` reproduces an open bug and is expected to fail.
"""
from __future__ import annotations

import glob
import os
import random
import shutil
import subprocess
import sys

import pytest

from engine.faults import netns
from engine.faults.invariants import double_signs, parse_sign_bytes
from engine.faults.runner import ROOT, ScenarioFailed, run_scenario
from engine.faults.scenario import load_scenario
from engine.net.chaos import Chaos, ChaosConfig
from engine.suite import ED25519_BLAKE3, SM2_SM3, get_suite

SCENARIOS = sorted(glob.glob(os.path.join(ROOT, "tests", "scenarios", "*.toml")))
RUN_ALL = os.environ.get("ENGINE_FAULTS_ALL") == "1"
NET_FAULTS = ("partition", "isolate_proposer", "block", "loss")


def _params():
    for path in SCENARIOS:
        sc = load_scenario(path)
        marks = [] if sc.quick or RUN_ALL else [pytest.mark.skip(
            reason="not in the quick subset (make test-faults runs it)")]
        if sc.known_bug:
            marks.append(pytest.mark.xfail(reason=sc.known_bug, raises=ScenarioFailed,
                                           strict=False))
        yield pytest.param(path, id=sc.name, marks=marks)


@pytest.mark.parametrize("path", list(_params()))
def test_scenario(path, tmp_path):
    sc = load_scenario(path)
    if sc.netns and netns.missing_tools():
        pytest.skip("network namespaces unavailable: " + ", ".join(netns.missing_tools()))
    report = run_scenario(sc, workdir=str(tmp_path / sc.name), log=lambda s: None)
    print(report.summary())
    assert report.crypto == sc.crypto  # the stores hold a chain of it (the runner checks)
    assert report.heights and min(report.heights.values()) > 2
    # Each scenario proves its fault happened (the runner fails otherwise; checked here too).
    if any(step.action == "damage_wal" for step in sc.steps):
        assert any(k.startswith("wal_damaged") for k in report.faults_seen), report.faults_seen
    if sc.chaos is not None:
        assert report.faults_seen.get("chaos"), report.faults_seen
    if sc.rate_tps:
        assert report.txs_acknowledged > 0
    if sc.rate_tps >= 1000:  # heavy load really offered and taken (not throttled to a trickle)
        assert report.txs_acknowledged >= sc.rate_tps * sc.duration_s // 2, report.summary()
    restarted = {f"node{i}" for step in sc.steps if step.action == "start"
                 for i in step.args["nodes"]
                 if any(s.action == "kill" and i in s.args["nodes"] and s.at_s < step.at_s
                        for s in sc.steps)}
    if restarted:  # every node killed and restarted came back behind the network and caught up
        behind = report.faults_seen.get("restart_behind", {})
        assert set(behind) >= restarted, report.faults_seen
        if sc.rate_tps >= 1000:  # seconds down under load: tens of heights of full blocks
            assert max(behind[n] for n in restarted) >= 10, behind
    paused = {f"node{i}" for step in sc.steps if step.action == "pause"
              for i in step.args["nodes"]}
    if paused:  # each paused node answered nothing while stopped and fell behind
        behind = report.faults_seen.get("paused_behind", {})
        assert set(behind) >= paused and all(behind[n] > 0 for n in paused), behind
    net_steps = [s for s in sc.steps if s.action in NET_FAULTS]
    if net_steps:  # each network fault window dropped packets (the runner checks each node)
        windows = report.faults_seen.get("net", [])
        assert sum(len(w["steps"]) for w in windows) == len(net_steps), windows
        assert all(sum(w["dropped"].values()) > 0 for w in windows), windows
    # Optimistic execution ran under the faults, and decisions used it (the runner checks).
    assert report.faults_seen["early_execution"].get("reused", 0) > 0, report.faults_seen
    if sc.expect_evidence:
        assert report.evidence and report.equivocations
    changes = [s for s in sc.steps if s.action == "set_power"]
    if changes:  # every change is in every honest store's set history (checked by the runner)
        assert report.faults_seen.get("valset_changes") == len(changes), report.faults_seen


def test_scenario_files_are_checked(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nvalidators = 3\nbyzantine = [0]\n')
    with pytest.raises(ValueError, match="not below 1/3"):
        load_scenario(str(bad))
    bad.write_text('name = "x"\n[[step]]\nat_s = 1\naction = "partition"\ngroups = [[0]]\n')
    with pytest.raises(ValueError, match="needs netns"):
        load_scenario(str(bad))
    bad.write_text('name = "x"\n[[step]]\nat_s = 1\naction = "explode"\n')
    with pytest.raises(ValueError, match="unknown action"):
        load_scenario(str(bad))
    bad.write_text('name = "x"\ncrypto = "rsa"\n')
    with pytest.raises(ValueError, match="crypto must be one of .*'rsa'"):
        load_scenario(str(bad))
    bad.write_text('name = "x"\ncrypto = "sm2-sm3"\n')
    assert load_scenario(str(bad)).crypto == "sm2-sm3"


def test_chaos_layer_faults_are_seeded_and_bounded():
    with pytest.raises(ValueError, match="drop_pct"):
        ChaosConfig(drop_pct=101)
    with pytest.raises(ValueError, match="unknown chaos settings"):
        ChaosConfig.from_dict({"latency": 5})
    delivered: list[bytes] = []

    counts = {}

    def run(seed: int) -> list[bytes]:
        delivered.clear()
        chaos = Chaos(ChaosConfig(drop_pct=30, duplicate_pct=30, seed=seed))
        for i in range(200):
            chaos.intercept(b"k", bytes([0x92, 3, i]), lambda k, m: delivered.append(m)
                            or True)
        counts.update(chaos.counts)
        return list(delivered)

    first = run(1)
    assert first == run(1) and first != run(2)
    run(1)
    # Every one of 200 distinct messages is delivered once, twice or not at all, exactly as
    # counted; ~30% dropped and ~30% of the rest doubled.
    assert 40 <= counts["dropped"] <= 80 and 25 <= counts["duplicated"] <= 65, counts
    assert len(set(first)) == 200 - counts["dropped"]
    assert len(first) == 200 - counts["dropped"] + counts["duplicated"]


def test_double_sign_detection(tmp_path):
    from engine.consensus.types import vote_sign_bytes

    chain = b"c"
    a = vote_sign_bytes(chain, 1, 5, 0, bytes(32))
    b = vote_sign_bytes(chain, 1, 5, 0, b"\1" * 32)
    assert parse_sign_bytes(a) == ("vote", 5, 0, 2)
    home = tmp_path / "h"
    (home / "testing").mkdir(parents=True)
    (home / "testing" / "signatures.log").write_text(f"own aa {a.hex()}\nrecv aa {a.hex()}\n"
                                                     f"recv bb {a.hex()}\nrecv bb {b.hex()}\n")
    found = double_signs([str(home)])
    assert list(found) == ["bb"] and "h=5 r=0 step=2" in found["bb"][0]


@pytest.mark.skipif(bool(netns.missing_tools()) or not shutil.which("ping"),
                    reason="needs root, ip, nft and ping")
def test_namespaces_partition_and_cleanup():
    net = netns.Network(2)
    try:
        net.open()
        ping = [*net.exec_prefix(0), "ping", "-c1", "-W1", net.addresses[1]]
        assert subprocess.run(ping, capture_output=True, check=False).returncode == 0
        net.block(0, 1)
        assert subprocess.run(ping, capture_output=True, check=False).returncode != 0
        net.heal()
        assert subprocess.run(ping, capture_output=True, check=False).returncode == 0
    finally:
        net.close()
    assert net.leftovers() == []


def test_wal_damage_is_repaired_on_open(tmp_path):
    from engine.faults.walfault import damage_wal
    from engine.store import Store
    from engine.store.wal_repair import repair_wal

    (tmp_path / "store").mkdir()
    with Store(str(tmp_path / "store")) as st:
        for i in range(5):
            st.wal_append(3, bytes([i]) * 50)
    done = damage_wal(str(tmp_path), "truncate", 70, random.Random(0))
    assert done["deleted"] and done["shortened"]
    with Store(str(tmp_path / "store")) as st:
        dropped = repair_wal(st)
        assert dropped == ["height 3 entry 3"]
        assert [e[0] for e in st.wal_replay(3)] == [0, 1, 2]
    out = subprocess.run([sys.executable, "-m", "engine", "faults", "list"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "kill-restart" in out.stdout


def test_wal_damage_that_does_nothing_fails_the_scenario(tmp_path):
    """An empty WAL cannot be damaged: the runner must say so rather than pass a WAL scenario
    that tested nothing; a torn (shortened) record counts as damage."""
    from engine.faults.runner import Runner
    from engine.faults.scenario import load_scenario
    from engine.store import Store

    sc = load_scenario(os.path.join(ROOT, "tests", "scenarios", "wal-truncate.toml"))
    runner = Runner(sc, str(tmp_path), log=lambda s: None)
    home = tmp_path / "n0"
    (home / "store").mkdir(parents=True)
    Store(str(home / "store")).close()
    runner.homes, runner.state = [str(home)], ["killed"]
    with pytest.raises(ScenarioFailed, match="did nothing"):
        runner.apply("damage_wal", {"nodes": [0], "mode": "truncate", "tail_bytes": 100})
    with Store(str(home / "store")) as st:
        st.wal_append(3, b"x" * 50)
    runner.apply("damage_wal", {"nodes": [0], "mode": "truncate", "tail_bytes": 10})
    assert runner.report.faults_seen["wal_damaged_node0"] == 1


def test_a_run_where_no_decision_reused_an_early_execution_fails(tmp_path, monkeypatch):
    """The runner reads every live node's optimistic-execution counters: none reused (a node
    with the feature broken or off) fails the scenario instead of passing it untested."""
    from engine.faults import runner as runner_mod

    metrics = {0: 'engine_node_events_total{event="optimistic_executions"} 5.0\n'
                  'engine_node_events_total{event="optimistic_discarded"} 5.0\n',
               1: 'engine_node_events_total{event="txs_committed"} 9.0\n'}

    class FakeClient:
        def __init__(self, url, timeout_s):
            self.url = url

        def metrics(self):
            return metrics[int(self.url)]

    monkeypatch.setattr(runner_mod, "Client", FakeClient)
    sc = load_scenario(os.path.join(ROOT, "tests", "scenarios", "kill-restart.toml"))
    r = runner_mod.Runner(sc, str(tmp_path), log=lambda s: None)
    r.rpc_urls, r.state = ["0", "1"], ["running", "running"]
    with pytest.raises(ScenarioFailed, match="no decision reused an early execution"):
        r._check_early_execution()
    metrics[1] = 'engine_node_events_total{event="optimistic_reused"} 3.0\n'
    r._check_early_execution()
    assert r.report.faults_seen["early_execution"] == {"executions": 5, "discarded": 5,
                                                        "reused": 3}


@pytest.mark.parametrize("crypto", [ED25519_BLAKE3, SM2_SM3])
def test_chain_suite_tells_which_suite_a_store_holds(tmp_path, crypto):
    """The end-of-run check that an SM2 scenario really ran an SM2/SM3 chain: a store of
    either suite passes for its own suite and fails for the other (block id and envelopes)."""
    from engine import tx
    from engine.block import Block, header_size
    from engine.faults.invariants import chain_suite
    from engine.store import Store, store_path

    suite = get_suite(crypto)
    other = get_suite(SM2_SM3 if crypto == ED25519_BLAKE3 else ED25519_BLAKE3)
    envs = [tx.encode_tx(suite.generate_key(), n, b"k=v", "c") for n in range(3)]
    block = Block(b"c", 1, 5, bytes(32), bytes(32), b"", 0, b"", (), tuple(envs),
                  bytes(32), bytes(32))
    head = block.head(suite)
    home = str(tmp_path / "n0")
    with Store(store_path(home), suite=suite) as st:
        st.save_block(1, suite.hash(head[:header_size(1)]), head, envs, b"cert",
                      parent_hash=bytes(32), app_hash=bytes(32))
    assert chain_suite({0: home}, suite) == []
    problems = chain_suite({0: home}, other)
    assert any(f"not the {other.name} hash" in p for p in problems), problems
    assert any(f"are not {other.name} envelopes" in p for p in problems), problems
    empty = str(tmp_path / "n1")
    Store(store_path(empty), suite=suite).close()
    assert chain_suite({1: empty}, suite) == ["node1 holds no block"]
