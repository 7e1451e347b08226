"""The network faults and pauses of the scenarios prove that they happened: the nftables rules count
what they drop, and the runner fails a window whose rules dropped nothing or whose partition
did not act as one (a group without a quorum committing, a group with one standing still)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from engine.faults import netns
from engine.faults import runner as runner_mod
from engine.faults.invariants import partition_problem
from engine.faults.runner import ROOT, Runner, ScenarioFailed
from engine.faults.scenario import load_scenario

LISTING = """table inet engine_faults {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tip saddr 10.213.7.2 counter packets 12 bytes 900 drop
\t}
\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t\tip daddr 10.213.7.3 counter packets 30 bytes 2520 drop
\t\tip daddr 10.213.7.4 counter packets 0 bytes 0 drop
\t}
}
"""


def test_parse_dropped_sums_every_rule_counter():
    assert netns.parse_dropped(LISTING) == 42
    assert netns.parse_dropped("table inet engine_faults {\n}\n") == 0


@pytest.mark.parametrize("power,total,before,after,running,problem", [
    (10, 40, 20, 20, True, None),            # a minority stands still
    (10, 40, 20, 21, True, None),            # ... or finishes the height in flight
    (10, 40, 20, 22, True, "no quorum"),     # ... but no more
    (20, 40, 20, 23, True, "no quorum"),     # half is not a quorum
    (40, 70, 26, 28, True, "no quorum"),     # 4 of 7 is not a quorum either
    (30, 40, 20, 22, True, None),            # a majority carries on
    (30, 40, 20, 21, True, "did not commit"),
    (30, 40, 20, 21, False, None),           # ... unless one of its validators is down
    (30, 40, None, 30, True, "no node answering"),
    (10, 40, None, None, True, None),        # a silent minority has nothing to show
])
def test_partition_problem(power, total, before, after, running, problem):
    got = partition_problem(power, total, before, after, all_running=running)
    assert (got is None) if problem is None else (problem in got), got


class _FakeNet:
    """The runner's view of a network whose rules drop what ``dropped`` says."""

    def __init__(self, dropped):
        self.dropped_counts = dropped
        self.calls = []

    def partition(self, groups):
        self.calls.append(("partition", groups))

    def block(self, a, b):
        self.calls.append(("block", a, b))

    def loss(self, nodes, pct):
        self.calls.append(("loss", nodes, pct))

    def heal(self):
        self.calls.append(("heal",))
        return dict(self.dropped_counts)


def _runner(tmp_path, dropped, heights_seq):
    sc = load_scenario(os.path.join(ROOT, "tests", "scenarios", "partition-minority.toml"))
    r = Runner(sc, str(tmp_path), log=lambda s: None)
    r.net = _FakeNet(dropped)  # type: ignore[assignment]
    r.state = ["running"] * 4
    answers = iter(heights_seq)
    r.heights = lambda nodes: {i: h for i, h in next(answers).items() if i in nodes}
    r.wait_progress = lambda what, **kw: None
    return r


def test_a_partition_that_cut_nothing_fails(tmp_path):
    """Heights as a working partition would give, but the rules dropped nothing: a cut that
    never happened cannot pass."""
    r = _runner(tmp_path, {0: 0, 1: 0, 2: 0, 3: 0},
                [{0: 10, 1: 10, 2: 10, 3: 10}, {0: 20, 1: 20, 2: 20, 3: 10}])
    r.apply("partition", {"groups": [[0, 1, 2], [3]]})
    with pytest.raises(ScenarioFailed, match="dropped no packet"):
        r.apply("heal", {})


def test_a_minority_that_kept_committing_fails(tmp_path):
    r = _runner(tmp_path, {0: 5, 1: 5, 2: 5, 3: 5},
                [{0: 10, 1: 10, 2: 10, 3: 10}, {0: 20, 1: 20, 2: 20, 3: 14}])
    r.apply("partition", {"groups": [[0, 1, 2], [3]]})
    with pytest.raises(ScenarioFailed, match=r"group \[3\] committed heights 11..14"):
        r.apply("heal", {})


def test_a_majority_that_stood_still_fails(tmp_path, monkeypatch):
    """A majority must carry on once the partition has lasted CUT_PROGRESS_S (the fake
    clock of this test makes every partition that long); a shorter one need not."""
    heights = [{0: 10, 1: 10, 2: 10, 3: 10}, {0: 11, 1: 11, 2: 11, 3: 10}]
    r = _runner(tmp_path, {0: 5, 1: 5, 2: 5, 3: 5}, heights)
    r.apply("partition", {"groups": [[0, 1, 2], [3]]})
    r.apply("heal", {})  # lasted less than CUT_PROGRESS_S: nothing to require
    monkeypatch.setattr(runner_mod, "CUT_PROGRESS_S", 0.0)
    r = _runner(tmp_path, {0: 5, 1: 5, 2: 5, 3: 5}, heights)
    r.apply("partition", {"groups": [[0, 1, 2], [3]]})
    with pytest.raises(ScenarioFailed, match=r"group \[0, 1, 2\] did not commit"):
        r.apply("heal", {})


def test_a_partition_laid_over_another_ends_its_checks(tmp_path, monkeypatch):
    """Two partitions before one heal: the first is judged on the heights when the second
    began (its majority had committed by then), the second on those at the heal (its
    groups split the first majority: no quorum anywhere, nobody commits)."""
    monkeypatch.setattr(runner_mod, "CUT_PROGRESS_S", 0.0)
    r = _runner(tmp_path, {0: 5, 1: 5, 2: 5, 3: 5},
                [{0: 10, 1: 10, 2: 10, 3: 10},   # first partition in
                 {0: 15, 1: 15, 2: 15, 3: 10},   # first partition ends
                 {0: 15, 1: 15, 2: 15, 3: 10},   # second partition in
                 {0: 16, 1: 15, 2: 15, 3: 10}])  # the heal
    r.apply("partition", {"groups": [[0, 1, 2], [3]]})
    r.apply("partition", {"groups": [[0, 1], [2, 3]]})
    r.apply("heal", {})
    (seen,) = r.report.faults_seen["net"]
    assert [(v["group"], v["heights"]) for v in seen["partitions"]] == [
        ([0, 1, 2], [10, 15]), ([3], [10, 10]), ([0, 1], [15, 16]), ([2, 3], [15, 15])]


def test_a_working_partition_is_recorded(tmp_path):
    r = _runner(tmp_path, {0: 5, 1: 6, 2: 7, 3: 9},
                [{0: 10, 1: 10, 2: 10, 3: 10}, {0: 20, 1: 19, 2: 20, 3: 11}])
    r.apply("partition", {"groups": [[0, 1, 2], [3]]})
    r.apply("heal", {})
    (seen,) = r.report.faults_seen["net"]
    assert seen["dropped"] == {"node0": 5, "node1": 6, "node2": 7, "node3": 9}
    assert [(v["group"], v["heights"]) for v in seen["partitions"]] == [
        ([0, 1, 2], [10, 20]), ([3], [10, 11])]
    assert r.net.calls == [("partition", [[0, 1, 2], [3]]), ("heal",)]


def test_a_one_way_block_whose_sender_dropped_nothing_fails(tmp_path):
    """Each sender of a block must have dropped packets; a node the block does not name
    need not (its count is not looked at)."""
    r = _runner(tmp_path, {0: 0, 1: 0, 2: 0, 3: 8}, [])
    r.apply("block", {"from": [0, 3], "to": [1]})
    with pytest.raises(ScenarioFailed, match="node0 dropped no packet"):
        r.apply("heal", {})
    r = _runner(tmp_path, {0: 3, 1: 0, 2: 0, 3: 8}, [])
    r.apply("block", {"from": [0, 3], "to": [1]})
    r.apply("heal", {})
    assert r.report.faults_seen["net"][0]["dropped"] == {"node0": 3, "node3": 8}


def test_loss_on_a_node_that_was_killed_meanwhile_is_not_required(tmp_path):
    r = _runner(tmp_path, {1: 0, 3: 4}, [])
    r.apply("loss", {"nodes": [1, 3], "pct": 50})
    r.state[1] = "killed"
    r.apply("heal", {})
    r.state[1] = "running"
    r.apply("loss", {"nodes": [1, 3], "pct": 50})
    with pytest.raises(ScenarioFailed, match="node1 dropped no packet"):
        r.apply("heal", {})


@pytest.mark.skipif(bool(netns.missing_tools()) or not shutil.which("ping"),
                    reason="needs root, ip, nft and ping")
def test_namespace_rules_count_what_they_drop():
    """Real namespaces: a block and a 100 % loss (nft's random draw only takes 0..99, so
    that rule has no draw) each drop the pings, and heal() returns those counts."""
    net = netns.Network(2)
    try:
        net.open()

        def ping(src, dst, count):
            cmd = [*net.exec_prefix(src), "ping", "-c", str(count), "-i", "0.2", "-W", "1",
                   net.addresses[dst]]
            return subprocess.run(cmd, capture_output=True, check=False).returncode

        assert ping(0, 1, 1) == 0
        assert net.dropped() == {0: 0, 1: 0}
        net.block(0, 1)
        assert ping(0, 1, 3) != 0
        assert net.heal() == {0: 3, 1: 0}  # dropped on the way out: node 1 saw nothing
        assert ping(0, 1, 1) == 0 and net.dropped() == {0: 0, 1: 0}
        net.loss([1], 100)
        assert ping(0, 1, 2) != 0
        assert net.heal() == {0: 0, 1: 2}
        net.loss([1], 0)  # no rule at all
        assert ping(0, 1, 1) == 0 and net.dropped() == {0: 0, 1: 0}
        with pytest.raises(ValueError, match="pct"):
            net.loss([1], 101)
    finally:
        net.close()
    assert net.leftovers() == []


def test_a_pause_that_did_not_stop_the_node_fails(tmp_path, monkeypatch):
    """Before SIGCONT the runner asks each paused node for its status: a stopped process
    cannot answer, so an answer means the pause never happened. It also records how far the
    network went on without the node."""
    from engine.client import ClientError

    answering = {"0": True}

    class FakeClient:
        def __init__(self, url, timeout_s):
            self.url = url

        def status(self):
            if self.url == "0" and not answering["0"]:
                raise ClientError(0, "timeout", "timed out")
            return {"latest_height": {"0": 7, "1": 12, "2": 12, "3": 12}[self.url]}

    monkeypatch.setattr(runner_mod, "Client", FakeClient)
    sc = load_scenario(os.path.join(ROOT, "tests", "scenarios", "pause-resume.toml"))
    r = Runner(sc, str(tmp_path), log=lambda s: None)
    r.rpc_urls, r.state = ["0", "1", "2", "3"], ["running"] * 4
    r.wait_progress = lambda what, **kw: None
    monkeypatch.setattr(runner_mod.Runner, "_signal", lambda self, i, sig: None)
    r.apply("pause", {"nodes": [0]})
    with pytest.raises(ScenarioFailed, match="node0 answered its RPC while paused"):
        r.apply("resume", {"nodes": [0]})
    answering["0"] = False
    r.state[0] = "paused"
    r._height_at_pause[0] = 7
    r.apply("resume", {"nodes": [0]})
    assert r.report.faults_seen["paused_behind"] == {"node0": 5}
    assert r.state[0] == "running"
