"""Run one scenario: real validator processes, load, perturbations, invariants.

Timeline: build the homes (and namespaces), start every process, wait for the first blocks,
start the load, apply each step at its time, then heal everything, wait for progress, stop the
load, let every node catch up, stop the nodes and check the invariants on their stores and
signature logs (engine/faults/invariants.py). While running, the runner compares the block
hash of the highest height all honest running nodes share, once a second, and after every
heal, restart or resume it requires the chain to move within ``progress_timeout_s``.

Everything started is stopped in ``finally`` (and on SIGTERM/SIGINT): processes are killed,
namespaces, veths and the bridge deleted. A failure raises :class:`ScenarioFailed` whose text
names the scenario file, the seed, the work folder and the node logs (with their last lines).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from engine import config as cfgmod
from engine import tx
from engine.client import Client, ClientError
from engine.consensus.proposer import ProposerSchedule
from engine.faults import invariants, netns
from engine.faults.hooks import ENV_SWITCH, TESTING_FILE
from engine.faults.scenario import Scenario
from engine.faults.walfault import damage_wal, wal_bytes
from engine.localnet import free_base_port
from engine.store import Store, store_path
from engine.suite import get_suite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POWER = 10
#: A live honest node may miss this many running fork checks in a row, no more.
RPC_MISSES_MAX = 10
STARTUP_TIMEOUT_S = 60
LOAD_TICK_S = 0.1
LOG_TAIL_LINES = 15
#: How long a paused node's RPC is given to (not) answer.
PAUSED_PROBE_S = 1.0
#: A partition in force this long must see each side holding a quorum commit.
CUT_PROGRESS_S = 2.0
#: Looks at a frozen node's WAL before a ``wal_records`` kill gives up.
WAL_WAIT_TRIES = 100

__all__ = ["Report", "ScenarioFailed", "run_scenario"]


class ScenarioFailed(AssertionError):
    """An invariant was violated or the run could not proceed; the text says how to reproduce."""


@dataclass
class Report:
    scenario: str
    seed: int
    workdir: str
    crypto: str = "ed25519-blake3"
    heights: dict[int, int] = field(default_factory=dict)
    txs_submitted: int = 0
    #: Accepted by a node (POST /txs said so), and of those, accepted by a node that was
    #: killed later (its mempool died with it: only what it gossiped in time may commit).
    txs_acknowledged: int = 0
    txs_at_risk: int = 0
    txs_at_risk_lost: int = 0
    #: Proof that each perturbation happened (WAL damage done, chaos effects counted...).
    faults_seen: dict[str, Any] = field(default_factory=dict)
    evidence: list[tuple[int, int]] = field(default_factory=list)
    equivocations: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self) -> str:
        return (f"{self.scenario} seed={self.seed} crypto={self.crypto}: heights "
                f"{self.heights}, txs accepted {self.txs_acknowledged}/{self.txs_submitted} (at risk {self.txs_at_risk}, "
                f"lost {self.txs_at_risk_lost}), faults {self.faults_seen}, "
                f"evidence {len(self.evidence)} "
                f"{sorted({v for _, v in self.evidence})}, equivocating keys "
                f"{self.equivocations}, {self.elapsed_s:.0f}s")


class _Load(threading.Thread):
    """Offers ``rate_tps`` signed transactions to live nodes and records what each client was
    told: the transactions a node accepted (``POST /txs``) are the acknowledged ones, whatever
    the nodes' blocks say later. A node that is killed loses its mempool: what it accepted
    becomes "at risk" (committed only if its gossip got out in time) instead of acknowledged."""

    def __init__(self, runner: Runner, rate_tps: int, seed: int):
        super().__init__(daemon=True, name="faults-load")
        self.runner = runner
        self.rate_tps = rate_tps
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.submitted = 0
        #: tx id -> the node that accepted it
        self.accepted: dict[bytes, int] = {}
        self.at_risk: set[bytes] = set()
        #: tx id -> the state key its kvstore payload writes (proof of commit once pruned)
        self.state_keys: dict[bytes, bytes] = {}
        self.errors = 0
        self._clients: dict[int, Client] = {}

    def client(self, i: int) -> Client:
        if i not in self._clients:
            self._clients[i] = Client(self.runner.rpc_urls[i], timeout_s=3)
        return self._clients[i]

    def node_killed(self, i: int) -> None:
        with self.lock:
            self.at_risk.update(t for t, node in self.accepted.items() if node == i)

    def acknowledged(self) -> list[bytes]:
        with self.lock:
            return [t for t in self.accepted if t not in self.at_risk]

    def run(self) -> None:
        chain = self.runner.chain_id
        seq = 0
        carry = 0.0
        while not self.stop_event.wait(LOAD_TICK_S):
            carry += self.rate_tps * LOAD_TICK_S
            count, carry = int(carry), carry - int(carry)
            # Nodes outside the validator set are not offered load: a spare not yet added, a
            # removed validator (its peers drop it, so its mempool could never be committed).
            live = [i for i in self.runner.live() if i not in self.runner.outside]
            if not count or not live:
                continue
            key = self.runner.suite.key_from_seed(self.rng.randbytes(32))
            keys = [f"f{seq}-{n}".encode() for n in range(count)]
            envs = [tx.encode_tx(key, n, keys[n] + b"=v", chain) for n in range(count)]
            seq += 1
            target = self.rng.choice(live)
            try:
                answer = self.client(target).submit_txs(envs)
            except ClientError:
                self.errors += 1
                continue
            refused = {e["index"] for e in answer["errors"]}
            with self.lock:
                self.submitted += len(envs)
                for i, t in enumerate(answer["tx_ids"]):
                    if i not in refused:
                        self.accepted[bytes.fromhex(t)] = target
                        self.state_keys[bytes.fromhex(t)] = keys[i]


def _highest(heights: dict[int, int | None], nodes: list[int]) -> int | None:
    """The highest of ``nodes``' heights that are known (None: none is)."""
    known = [h for i in nodes if (h := heights.get(i)) is not None]
    return max(known) if known else None


@dataclass
class _NetWindow:
    """The network faults applied since the last heal: when the first came, the steps, the
    nodes each of which must have dropped packets (the senders of a one-way block, the
    nodes taking packet loss), and each partition (:class:`_Cut`)."""

    at_s: float
    steps: list[str] = field(default_factory=list)
    droppers: set[int] = field(default_factory=set)
    partitions: list[_Cut] = field(default_factory=list)


@dataclass
class _Cut:
    """One partition: its groups, every node's height once its rules were in and when it
    ended (the heal, or the next partition laid over it), and how long it lasted."""

    groups: list[list[int]]
    before: dict[int, int | None]
    started: float
    after: dict[int, int | None] | None = None
    lasted_s: float = 0.0


class Runner:
    def __init__(self, scenario: Scenario, workdir: str, log=print):
        self.sc = scenario
        self.workdir = workdir
        self.log = log
        self.rng = random.Random(scenario.seed)
        self.homes: list[str] = []
        self.rpc_urls: list[str] = []
        self.procs: list[subprocess.Popen | None] = []
        self.state: list[str] = []  # running | killed | paused
        self.log_paths: list[str] = []
        self.chain_id = f"faults-{scenario.name}"[:40]
        self.net: netns.Network | None = None
        self.honest = set(scenario.honest_processes)
        self.suite = get_suite(scenario.crypto)
        self.report = Report(scenario.path, scenario.seed, workdir, scenario.crypto)
        self._restarts = [0] * scenario.processes
        self._t0 = time.monotonic()
        self.load: _Load | None = None
        #: Consecutive running checks in which a live honest node did not answer its RPC.
        self._rpc_misses = [0] * scenario.processes
        #: Processes outside the validator set (spares not added yet, removed validators).
        self.outside: set[int] = set(range(scenario.validators,
                                           scenario.validators + scenario.spares))
        #: (height committed, process, power) of every set_power step.
        self.valset_changes: list[tuple[int, int, int]] = []
        #: The latest height in each killed node's store after its kill.
        self._height_at_kill: dict[int, int] = {}
        #: Each paused node's height when it was paused.
        self._height_at_pause: dict[int, int | None] = {}
        #: The network faults in force since the last heal (None: none).
        self._net_window: _NetWindow | None = None

    # ---------------------------------------------------------------- setup
    def _note(self, text: str) -> None:
        line = f"[{time.monotonic() - self._t0:6.1f}s] {text}"
        self.report.events.append(line)
        self.log(line)

    def setup(self) -> None:
        sc = self.sc
        n = sc.processes
        if sc.netns:
            why = netns.missing_tools()
            if why:
                raise RuntimeError("network namespaces unavailable: " + ", ".join(why))
            netns.sweep_stale()
            self.net = netns.Network(n)
            self.net.open()
            hosts, base = self.net.addresses, 26656
        else:
            hosts, base = ["127.0.0.1"] * n, free_base_port(2 * n, self.rng)
        homes_dir = os.path.join(self.workdir, "homes")
        homes = cfgmod.init_testnet(homes_dir, n - sc.full_nodes, base_port=base,
                                    chain_id=self.chain_id, hosts=hosts, crypto=sc.crypto,
                                    full_nodes=sc.full_nodes, **sc.config)
        self.homes = [h.path for h in homes]
        genesis_validators = [{"name": f"node{i}", "power": POWER,
                               "public_key": homes[i].validator_key.public_key.hex()}
                              for i in range(sc.validators)]
        if sc.duplicate_key >= 0:
            shutil.copy(os.path.join(self.homes[sc.duplicate_key], cfgmod.VALIDATOR_KEY_FILE),
                        os.path.join(self.homes[-1], cfgmod.VALIDATOR_KEY_FILE))
            # Its peers know it by the key it now runs (the peer set follows the validators).
            dup_node = homes[-1].node_key.public_key.hex()
            dup_validator = homes[sc.duplicate_key].validator_key.public_key.hex()
            for home in self.homes:
                conf = cfgmod.load_config(home)
                for p in conf.peers:
                    if p.node_key == dup_node:
                        p.validator = dup_validator
                cfgmod.save_config(home, conf)
        for i, home in enumerate(self.homes):
            self._finish_home(i, home, hosts[i], genesis_validators)
        self.rpc_urls = [cfgmod.load_home(h).rpc_url for h in self.homes]
        self.log_paths = [os.path.join(self.workdir, f"node{i}.log") for i in range(n)]
        self.procs = [None] * n
        self.state = ["killed"] * n

    def _finish_home(self, i: int, home: str, host: str, genesis_validators: list) -> None:
        sc = self.sc
        gpath = os.path.join(home, cfgmod.GENESIS_FILE)
        with open(gpath) as f:
            genesis = json.load(f)
        genesis["validators"] = genesis_validators
        with open(gpath, "w") as f:
            json.dump(genesis, f, indent=2)
        if sc.netns:
            conf = cfgmod.load_config(home)
            conf.rpc_host = host
            cfgmod.save_config(home, conf)
        testing: dict[str, Any] = {}
        if sc.chaos is not None:
            testing["chaos"] = {**sc.chaos, "seed": sc.seed * 1000 + i}
        if i in sc.byzantine:
            testing["byzantine"] = {"equivocate_votes": True, "equivocate_proposals": True}
        with open(os.path.join(home, TESTING_FILE), "wb") as f:
            tomli_w.dump(testing, f)

    # ---------------------------------------------------------------- processes
    def start(self, i: int) -> None:
        if i in self.sc.state_sync and not self._restarts[i]:
            self._trust_for_state_sync(i)
        prefix = self.net.exec_prefix(i) if self.net is not None else []
        suffix = "" if not self._restarts[i] else f".{self._restarts[i]}"
        self._restarts[i] += 1
        path = self.log_paths[i] + suffix
        env = {**os.environ, ENV_SWITCH: "1"}
        with open(path, "ab") as out:
            self.procs[i] = subprocess.Popen(
                [*prefix, sys.executable, "-m", "engine", "start", "--home", self.homes[i],
                 "--log-level", "INFO"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True)
        self.state[i] = "running"

    def _trust_for_state_sync(self, i: int) -> None:
        """Before its first start, a state-sync node trusts a recent block as a live
        validator reports it (an operator would take it from a source they trust)."""
        for j in self.live():
            if j >= self.sc.validators:
                continue
            with contextlib.suppress(ClientError):
                client = Client(self.rpc_urls[j], timeout_s=2)
                height = max(1, client.status()["latest_height"] - 2)
                block = client.block(height)
                conf = cfgmod.load_config(self.homes[i])
                conf.state_sync, conf.state_sync_trust_height = True, height
                conf.state_sync_trust_hash = block["hash"]
                cfgmod.save_config(self.homes[i], conf)
                self._note(f"node{i} state-syncs trusting block {height} "
                           f"{block['hash'][:16]}")
                return
        raise ScenarioFailed(f"no live validator to take node{i}'s trusted block from")

    def kill(self, i: int, *, wal_records: bool = False) -> None:
        p = self.procs[i]
        if wal_records and p is not None and p.poll() is None:
            self._stop_with_wal_records(i, p)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(20)
        self.state[i] = "killed"
        if self.load is not None:
            self.load.node_killed(i)
        # The height its store holds (read once the process is gone): where it resumes from.
        self._height_at_kill[i] = 0
        if os.path.exists(os.path.join(store_path(self.homes[i]), "data.mdb")):
            with Store(store_path(self.homes[i]), readonly=True) as store:
                self._height_at_kill[i] = store.latest_height()

    def _prove_paused(self, nodes: list[int]) -> None:
        """Before SIGCONT: a paused node answers no RPC (a stopped process cannot), and the
        network went on without it (``paused_behind``: the honest running nodes' height now
        minus the node's height when it was paused, which it must then catch up)."""
        if not nodes:
            return
        running = [j for j in self.live() if j in self.honest]
        network = _highest(self.heights(running), running)
        behind = self.report.faults_seen.setdefault("paused_behind", {})
        for i in nodes:
            with contextlib.suppress(ClientError):
                Client(self.rpc_urls[i], timeout_s=PAUSED_PROBE_S).status()
                raise ScenarioFailed(f"node{i} answered its RPC while paused: the pause did "
                                     "not stop it")
            at_pause = self._height_at_pause.pop(i, None)
            if network is None or at_pause is None:
                raise ScenarioFailed(f"cannot tell how far node{i} fell behind while paused "
                                     f"(heights: network {network}, node{i} at its pause "
                                     f"{at_pause})")
            behind[f"node{i}"] = max(0, network - at_pause)

    def _stop_with_wal_records(self, i: int, p: subprocess.Popen) -> None:
        """Freeze node ``i`` (SIGSTOP) at an instant when its WAL holds records, so that the
        SIGKILL that follows leaves a WAL to damage. A node's WAL is emptied at every commit;
        under load it fills again within milliseconds, but a kill can land in between."""
        for _ in range(WAL_WAIT_TRIES):
            p.send_signal(signal.SIGSTOP)
            if wal_bytes(self.homes[i]) > 0:
                self._note(f"node{i} frozen with WAL records")
                return
            p.send_signal(signal.SIGCONT)
            time.sleep(self.rng.uniform(0.01, 0.1))
        raise ScenarioFailed(f"node{i}'s WAL stayed empty over {WAL_WAIT_TRIES} looks: "
                             "the kill would not leave anything to damage")

    def live(self) -> list[int]:
        return [i for i, s in enumerate(self.state) if s == "running"]

    def heights(self, nodes: list[int]) -> dict[int, int | None]:
        out: dict[int, int | None] = {}
        for i in nodes:
            try:
                out[i] = Client(self.rpc_urls[i], timeout_s=2).status()["latest_height"]
            except ClientError:
                out[i] = None
        return out

    def _check_exited(self) -> None:
        for i in self.live():
            p = self.procs[i]
            if p is not None and p.poll() is not None:
                raise ScenarioFailed(f"node{i} exited by itself with code {p.returncode}")

    # ---------------------------------------------------------------- watching
    def wait_progress(self, what: str, timeout_s: float | None = None, advance: int = 2) -> None:
        """Every honest running node reaches (highest honest height now) + ``advance``."""
        timeout_s = timeout_s or self.sc.progress_timeout_s
        nodes = [i for i in self.live() if i in self.honest]
        if not nodes:
            return
        start = self.heights(nodes)
        goal = max((h for h in start.values() if h is not None), default=0) + advance
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            hs = self.heights(nodes)
            if all(h is not None and h >= goal for h in hs.values()):
                self._note(f"progress after {what}: {hs}")
                return
            self._check_exited()
            self.check_agreement()
            time.sleep(0.5)
        raise ScenarioFailed(f"no progress within {timeout_s}s after {what}: nodes {nodes} "
                             f"stayed at {self.heights(nodes)}, goal {goal}")

    def check_agreement(self) -> None:
        """Honest running nodes hold the same block at the highest height they share."""
        nodes = [i for i in self.live() if i in self.honest]
        hs = {i: h for i, h in self.heights(nodes).items() if h}
        if len(hs) < 2:
            return
        h = min(hs.values())
        hashes = {}
        for i in hs:
            try:
                hashes[i] = Client(self.rpc_urls[i], timeout_s=2).block(h)["hash"]
                self._rpc_misses[i] = 0
            except ClientError as e:
                # A node that stops answering cannot be checked: tolerated for a moment (a
                # busy node, a restart), never for good.
                self._rpc_misses[i] += 1
                if self._rpc_misses[i] >= RPC_MISSES_MAX:
                    raise ScenarioFailed(f"node{i} did not answer the running fork check "
                                         f"{RPC_MISSES_MAX} times in a row: {e}") from e
        if len(set(hashes.values())) > 1:
            raise ScenarioFailed(f"FORK at height {h} while running: {hashes}")

    # ---------------------------------------------------------------- steps
    def apply(self, action: str, args: dict[str, Any]) -> None:
        nodes = list(args.get("nodes", []))
        self._note(f"{action} {args or ''}")
        if action == "kill":
            for i in nodes:
                self.kill(i, wal_records=bool(args.get("wal_records", False)))
        elif action == "start":
            restarted = [i for i in nodes if self.state[i] == "killed"]
            network = max((h for h in self.heights(
                [j for j in self.live() if j in self.honest]).values() if h is not None),
                default=0)
            for i in restarted:
                self.start(i)
            self.wait_progress(f"restart of {nodes}")
            # How far behind each restarted node came back (proof of a real catch-up: it
            # reached the network's height + 2 above, so it fetched at least these heights).
            behind = self.report.faults_seen.setdefault("restart_behind", {})
            for i in restarted:
                if i in self._height_at_kill:
                    gap = max(0, network - self._height_at_kill[i])
                    behind[f"node{i}"] = max(gap, behind.get(f"node{i}", 0))
        elif action == "pause":
            for i in nodes:
                self._height_at_pause[i] = self.heights([i])[i]
                self._signal(i, signal.SIGSTOP)
                self.state[i] = "paused"
        elif action == "resume":
            self._prove_paused([i for i in nodes if self.state[i] == "paused"])
            for i in nodes:
                self._signal(i, signal.SIGCONT)
                self.state[i] = "running"
            self.wait_progress(f"resume of {nodes}")
        elif action == "set_power":
            for i in nodes:
                self._set_power(i, int(args["power"]))
            self.wait_progress(f"set_power {nodes}")
        elif action == "damage_wal":
            for i in nodes:
                if self.state[i] != "killed":
                    raise ScenarioFailed(f"damage_wal: node{i} must be killed first")
                tail = args.get("tail_bytes", self.rng.randrange(1, 1 << 20))
                done = damage_wal(self.homes[i], args["mode"], tail, self.rng,
                                  args.get("flips", 4))
                self._note(f"node{i} WAL {args['mode']} of the last {tail} bytes: {done}")
                # A shortened record is a torn write: the node drops it on open (wal_repair),
                # so it is lost as surely as a deleted one.
                damaged = len(done.get("deleted", ())) + len(done.get("flipped", ())) \
                    + (1 if done.get("shortened") else 0)
                if not damaged:
                    raise ScenarioFailed(f"damage_wal did nothing to node{i}'s WAL ({done}): "
                                         "the scenario would not test what it claims")
                self.report.faults_seen[f"wal_damaged_node{i}"] = damaged
        else:
            self._apply_net(action, args)

    def _set_power(self, i: int, power: int) -> None:
        """The kvstore admin's `val:<key>=<power>` for process i, sent to a live member and
        waited for until committed (engine/faults/valsets.py)."""
        from engine.faults.valsets import SetPowerFailed, submit_power

        members = [j for j in self.live() if j in self.honest and j not in self.outside
                   and j != i]
        try:
            height = submit_power(self, i, power, members)
        except SetPowerFailed as e:
            raise ScenarioFailed(str(e)) from e
        self.valset_changes.append((height, i, power))
        self._note(f"node{i} power {power}: committed at height {height}, signs from "
                   f"{height + 2}")
        if power == 0:
            self.outside.add(i)
            self.honest.discard(i)  # no longer kept up to date by its peers
            if self.load is not None:
                self.load.node_killed(i)  # its mempool will not be committed
        else:
            self.outside.discard(i)
            if i < self.sc.validators + self.sc.spares:
                self.honest.add(i)

    def _apply_net(self, action: str, args: dict[str, Any]) -> None:
        assert self.net is not None
        if action == "heal":
            self._heal_net()
            self.wait_progress("heal")
            return
        window = self._net_window
        if window is None:
            window = self._net_window = _NetWindow(round(time.monotonic() - self._t0, 1))
        window.steps.append(f"{action} {args}" if args else action)
        if action in ("partition", "isolate_proposer"):
            if action == "partition":
                groups = [list(g) for g in args["groups"]]
            else:
                victim = self._next_proposer()
                groups = [[victim], [i for i in range(self.sc.processes) if i != victim]]
                self._note(f"isolating node{victim}, the proposer")
            nodes = [i for g in groups for i in g]
            if window.partitions:  # the cut in force ends here, as far as its checks go
                self._end_cut(window.partitions[-1])
            self.net.partition(groups)
            # Read once the rules are in: from here on no group can hear another.
            window.partitions.append(_Cut(groups, self.heights(nodes), time.monotonic()))
        elif action == "block":
            for a in args["from"]:
                for b in args["to"]:
                    self.net.block(a, b)
            window.droppers.update(args["from"])
        elif action == "loss":
            self.net.loss(args["nodes"], int(args["pct"]))
            if int(args["pct"]):
                window.droppers.update(args["nodes"])

    def _heal_net(self) -> None:
        """Remove the network faults, and prove they happened: every live node the faults
        named dropped packets, and during each partition a group without a quorum of the
        voting power did not commit (beyond the height in flight) while a group with one
        whose validators all ran did."""
        assert self.net is not None
        window, self._net_window = self._net_window, None
        if window is None:
            self.net.heal()
            return
        # Heights before the rules go: what each side of a partition did on its own.
        if window.partitions:
            self._end_cut(window.partitions[-1])
        nodes = sorted({i for cut in window.partitions for g in cut.groups for i in g})
        dropped = self.net.heal()
        involved = window.droppers | set(nodes)
        seen: dict[str, Any] = {"at_s": window.at_s, "steps": window.steps,
                                "dropped": {f"node{i}": dropped.get(i, 0)
                                            for i in sorted(involved)}}
        running = {i for i in involved if self.state[i] == "running"}
        problems = [f"node{i} dropped no packet" for i in sorted(window.droppers & running)
                    if not dropped.get(i)]
        for cut in window.partitions:
            problems += self._cut_problems(cut.groups, dropped, running)
        if window.partitions:
            verdicts, skipped = self._partition_verdicts(window)
            seen["partitions"] = verdicts
            problems += [f"group {v['group']} {v['problem']}" for v in verdicts
                         if v.get("problem")]
            if skipped:
                seen["partition_check_skipped"] = skipped
        self.report.faults_seen.setdefault("net", []).append(seen)
        self._note(f"healed: {seen}")
        if problems:
            raise ScenarioFailed(f"the network faults from {window.at_s}s ({window.steps}) "
                                 f"did not act as claimed: {'; '.join(problems)}")

    def _cut_problems(self, groups: list[list[int]], dropped: dict[int, int],
                      running: set[int]) -> list[str]:
        """A partition dropped packets across its cut: in all, and from every group holding
        a running validator when another group holds one too (validators send each other
        their votes; a full node may have been dialled by no one)."""
        voters = [[i for i in g if i in running and i < self.sc.validators + self.sc.spares]
                  for g in groups]
        if sum(1 for g in groups if running & set(g)) < 2:
            return []
        problems = []
        if not sum(dropped.get(i, 0) for g in groups for i in g):
            problems.append(f"the partition {groups} dropped no packet")
        for g, v in zip(groups, voters):
            if v and sum(1 for w in voters if w) > 1 and not sum(dropped.get(i, 0) for i in g):
                problems.append(f"group {g} of the partition dropped no packet")
        return problems

    def _end_cut(self, cut: _Cut) -> None:
        cut.after = self.heights([i for g in cut.groups for i in g])
        cut.lasted_s = time.monotonic() - cut.started

    def _partition_verdicts(self, window: _NetWindow) -> tuple[list[dict[str, Any]], str]:
        """Per group of each partition of ``window``: its voting power, its highest height
        when the partition began and when it ended, and a ``problem`` when a group without
        a quorum went on committing or one with a quorum (all its validators running, the
        partition in force for at least ``CUT_PROGRESS_S``) did not
        (engine/faults/invariants.py ``partition_problem``)."""
        sc = self.sc
        if self.valset_changes or sc.duplicate_key >= 0:
            return [], "the voting power changed or a key runs twice"
        members = [i for i in range(sc.validators + sc.spares) if i not in self.outside]
        out = []
        for cut in window.partitions:
            for g in cut.groups:
                voters = [i for i in g if i in members]
                h0 = _highest(cut.before, g)
                h1 = _highest(cut.after or {}, g)
                verdict: dict[str, Any] = {
                    "group": g, "power": POWER * len(voters), "of": POWER * len(members),
                    "heights": [h0, h1]}
                problem = invariants.partition_problem(
                    POWER * len(voters), POWER * len(members), h0, h1,
                    all_running=cut.lasted_s >= CUT_PROGRESS_S
                    and all(self.state[i] == "running" for i in voters))
                if problem:
                    verdict["problem"] = problem
                out.append(verdict)
        return out, ""

    def _next_proposer(self) -> int:
        for i in self.live():
            with contextlib.suppress(ClientError):
                cons = Client(self.rpc_urls[i], timeout_s=2).status()["consensus"]
                schedule = ProposerSchedule([POWER] * self.sc.validators)
                return schedule.proposer(cons["height"] + 1, 0)
        raise ScenarioFailed("no live node to ask for the proposer")

    def _signal(self, i: int, sig: int) -> None:
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(sig)

    # ---------------------------------------------------------------- the run
    def run(self) -> Report:
        sc = self.sc
        self.setup()
        for i in range(sc.processes):
            if i not in sc.state_sync:  # those start later, from a snapshot
                self.start(i)
        self.wait_progress("start", timeout_s=STARTUP_TIMEOUT_S)
        load = self.load = _Load(self, sc.rate_tps, sc.seed)
        load.start()
        try:
            self._timeline()
            self._heal_all()
        finally:
            load.stop_event.set()
            load.join(30)
        self._finish(load)
        return self.report

    def _timeline(self) -> None:
        t_start = time.monotonic()
        steps = list(self.sc.steps)
        while True:
            elapsed = time.monotonic() - t_start
            while steps and steps[0].at_s <= elapsed:
                step = steps.pop(0)
                self.apply(step.action, step.args)
            if elapsed >= self.sc.duration_s and not steps:
                return
            self._check_exited()
            self.check_agreement()
            time.sleep(min(1.0, max(0.05, (steps[0].at_s - elapsed) if steps else 1.0)))

    def _heal_all(self) -> None:
        if self.net is not None:
            self._heal_net()
        self._prove_paused([i for i, s in enumerate(self.state) if s == "paused"])
        for i, s in enumerate(self.state):
            if s == "paused":
                self._signal(i, signal.SIGCONT)
                self.state[i] = "running"
            elif s == "killed":
                self.start(i)
        self.wait_progress("healing everything at the end")

    def _finish(self, load: _Load) -> None:
        sc = self.sc
        everyone = [i for i in range(sc.processes) if i not in self.outside]
        top = max(h or 0 for h in self.heights(everyone).values())
        end = time.monotonic() + sc.progress_timeout_s * 2
        while time.monotonic() < end:
            hs = self.heights(everyone)
            if all(h is not None and h >= top for h in hs.values()):
                break
            self._check_exited()
            time.sleep(0.5)
        else:
            raise ScenarioFailed(f"not every node caught up to height {top}: {hs}")
        self._drain_mempools()
        self._check_chaos()
        self._check_early_execution()
        codes = self.stop_all()
        bad = {i: c for i, c in codes.items() if c != 0}
        if bad:
            raise ScenarioFailed(f"nodes did not stop cleanly (exit codes {bad})")
        self._check_final(load)

    def _drain_mempools(self) -> None:
        """Wait until no honest node holds an uncommitted transaction: every acknowledged one
        is then committed or lost, and the final check tells which."""
        nodes = sorted(self.honest)
        end = time.monotonic() + self.sc.progress_timeout_s * 2
        waiting: dict[int, int] = {}
        while time.monotonic() < end:
            waiting = {}
            for i in nodes:
                try:
                    waiting[i] = Client(self.rpc_urls[i], timeout_s=2).status()["mempool"]["txs"]
                except ClientError:
                    waiting[i] = -1
            if all(n == 0 for n in waiting.values()):
                return
            self._check_exited()
            time.sleep(0.5)
        raise ScenarioFailed(f"mempools did not drain: {waiting} transactions still waiting")

    def _event_totals(self, prefix: str, names: tuple[str, ...], check: str) -> dict[str, int]:
        """Each event ``prefix + name`` (``engine_node_events_total`` in /metrics) summed over
        the live nodes; events no node counted are left out."""
        seen: dict[str, int] = {}
        for i in self.live():
            try:
                text = Client(self.rpc_urls[i], timeout_s=3).metrics()
            except ClientError as e:
                raise ScenarioFailed(f"cannot read node{i}'s metrics for the {check} check: {e}")
            for line in text.splitlines():
                for name in names:
                    if line.startswith(f'engine_node_events_total{{event="{prefix}{name}"}}'):
                        seen[name] = seen.get(name, 0) + int(float(line.split()[-1]))
        return seen

    def _check_chaos(self) -> None:
        """The chaos transport must have done what the scenario asks of it."""
        chaos = self.sc.chaos
        if chaos is None:
            return
        seen = self._event_totals("chaos:", ("delayed", "dropped", "duplicated"), "chaos")
        self.report.faults_seen["chaos"] = seen
        wanted = {"delayed": chaos.get("latency_ms", 0) or chaos.get("jitter_ms", 0),
                  "dropped": chaos.get("drop_pct", 0), "duplicated": chaos.get("duplicate_pct", 0)}
        missing = [e for e, asked in wanted.items() if asked and not seen.get(e)]
        if missing:
            raise ScenarioFailed(f"the chaos transport never {'/'.join(missing)} a message "
                                 f"(counted {seen})")

    def _check_early_execution(self) -> None:
        """Optimistic execution (engine/node/commit.py) must have run under the scenario's
        faults: blocks executed before their decision, and decisions that used the result."""
        seen = self._event_totals("optimistic_", ("executions", "reused", "discarded", "failed"),
                                  "early execution")
        self.report.faults_seen["early_execution"] = seen
        if not seen.get("reused"):
            raise ScenarioFailed(f"no decision reused an early execution (counted {seen})")

    def stop_all(self) -> dict[int, int | None]:
        for i in range(len(self.procs)):
            if self.state[i] == "paused":
                self._signal(i, signal.SIGCONT)
            self._signal(i, signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for i, p in enumerate(self.procs):
            if p is None:
                continue
            try:
                codes[i] = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[i] = p.wait(10)
            self.state[i] = "killed"
        return codes

    def _check_final(self, load: _Load) -> None:
        sc = self.sc
        rep = self.report
        problems: list[str] = []
        all_homes = dict(enumerate(self.homes))
        honest_homes = {i: self.homes[i] for i in sorted(self.honest)}
        fork, rep.heights = invariants.agreement(all_homes)
        problems += fork
        acked = load.acknowledged()
        rep.txs_submitted, rep.txs_acknowledged = load.submitted, len(acked)
        if sc.rate_tps and not acked:
            problems.append("no transaction was accepted by a node")
        problems += invariants.txs_present(honest_homes, acked, load.state_keys)
        at_risk = sorted(load.at_risk)
        rep.txs_at_risk = len(at_risk)
        rep.txs_at_risk_lost = invariants.txs_missing(honest_homes[min(self.honest)], at_risk,
                                                      load.state_keys)
        keys = [cfgmod.load_home(h).validator_key.public_key.hex() for h in self.homes]
        faulty_keys = {keys[i] for i in sc.faulty}
        # The double-sign check reads every node's signature log: a node without one (hooks
        # that failed to load) would pass it unseen.
        problems += invariants.signature_logs_present(all_homes, signers=range(sc.validators))
        doubles = invariants.double_signs(self.homes)
        rep.equivocations = {k[:12]: len(v) for k, v in doubles.items()}
        for key, items in doubles.items():
            if key not in faulty_keys:
                problems.append(f"HONEST validator {key[:12]} double-signed: {items[:3]}")
        rep.evidence = invariants.committed_evidence(self.homes[min(self.honest)])
        accused = {v for _, v in rep.evidence}
        if accused - sc.faulty:
            problems.append(f"evidence committed against honest validators {accused - sc.faulty}")
        if sc.expect_evidence and not accused & sc.faulty:
            problems.append("no evidence against the faulty validators was committed")
        problems += invariants.store_checks(all_homes, ROOT)
        problems += invariants.chain_suite(all_homes, self.suite)
        problems += invariants.state_synced({i: self.homes[i] for i in sc.state_sync})
        if self.valset_changes:
            from engine.faults.valsets import check_history

            problems += check_history(self, honest_homes)
        if problems:
            raise ScenarioFailed("; ".join(problems))

    def cleanup(self) -> list[str]:
        """Kill every process and remove the network; returns what could not be removed."""
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(20)
        left = []
        if self.net is not None:
            self.net.close()
            left = self.net.leftovers()
        return left

    def describe(self) -> str:
        lines = [f"scenario {self.sc.path} seed {self.sc.seed}",
                 f"reproduce: engine faults run {self.sc.path} --seed {self.sc.seed} --keep",
                 f"work folder: {self.workdir}"]
        for base in self.log_paths:
            for path in sorted(p for p in (base, *(f"{base}.{k}" for k in range(1, 20)))
                               if os.path.exists(p)):
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-LOG_TAIL_LINES:]
                lines.append(f"--- {path} (last {len(tail)} lines)")
                lines += [ln.rstrip() for ln in tail]
        lines.append("events:")
        lines += self.report.events
        return "\n".join(lines)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_scenario(scenario: Scenario, *, workdir: str | None = None, keep: bool = False,
                 log=print) -> Report:
    """Run ``scenario``; raises ScenarioFailed (with reproduction details) on any violation."""
    owned = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix=f"faults-{scenario.name}-")
    os.makedirs(workdir, exist_ok=True)
    runner = Runner(scenario, workdir, log)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    ok = False
    try:
        runner.run()
        ok = True
    except ScenarioFailed as e:
        raise ScenarioFailed(f"{e}\n{runner.describe()}") from None
    except Exception as e:
        raise ScenarioFailed(f"{type(e).__name__}: {e}\n{runner.describe()}") from e
    finally:
        left = runner.cleanup()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        runner.report.elapsed_s = time.monotonic() - runner._t0
        if left:
            raise ScenarioFailed(f"cleanup left {left} behind")
        if ok and owned and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return runner.report
