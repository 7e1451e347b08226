"""`engine bench tps`: committed transactions per second of a real local testnet, with proof
that nothing was lost.

Set-up: ``init_testnet`` homes in a temporary folder, each validator an ``engine start``
process on 127.0.0.1 (exactly as ``engine demo`` runs them; LMDB with sync on, the node's
default). Every transaction is signed before the clock starts (by worker processes, spread over
``SENDERS`` keys, kvstore payloads padded to ``tx_bytes``), so the load generator only posts
bytes. Load goes round-robin to every node's ``POST /txs`` in batches: at a fixed offered
rate (open loop: a batch every ``BATCH_INTERVAL_MS`` whatever the answers), or ``max`` (closed
loop: ``WINDOW_PER_NODE`` batches in flight per node, at most ``OUTSTANDING_TXS_MAX`` accepted
transactions not yet committed, a batch refused for a full mempool is offered again).

Measured: committed TPS over the steady-state window (after ``warmup``, until the load stops),
latency from the moment a batch is posted to the moment its block is seen committed on node 0
(followed with ``GET /blocks`` long polls, so node 0 answers the moment a block is
committed), blocks per second,
transactions per block, rounds per height (from each block's commit certificate) and CPU per
process (psutil); from each node's ``/metrics``, CPU per committed transaction by stage
(engine/node/stagecpu.py) and the mean wall-clock time of each phase of its heights (cut and
proposal, prevote, waiting for the prevotes, for the precommits, commit: engine/node/phases.py).
Then, with the load stopped and the chain drained, every node's chain is read
block by block over RPC: every accepted transaction must be committed exactly once on every node
and all nodes must hold the same block and app hash at every height, or the run fails.

``--find-max`` searches the highest offered rate the network sustains (:class:`MaxSearch`,
:func:`sustained`): rungs of open-loop load, each signed before its clock starts, doubling while
sustained and bisecting once a rung fails, at most ``find_max_rungs`` rungs on one testnet.

``--crypto sm2-sm3`` runs the testnet on the SM2/SM3 suite (engine/suite.py) and then, as the
same-run baseline, the same options on ``ed25519-blake3``; the report carries both and their
ratio (the baseline's own report under ``baseline``).

The crypto ceiling is measured in the same run once the nodes are stopped: ``verify_txs`` over
20,000 envelopes of the run's size from 1,000 senders on every core, keys cached (best of 3; a
node verifies the same senders again and again) — how fast one process could merely verify
them; N validators on one machine can commit at most ceiling / N (the physical limit). Since
Ed25519 batches give each distinct key one term, 20 envelopes per sender in one batch are
cheaper than the nodes' admission batches (consecutive envelopes, one per sender), so the
ceiling also reports ``tps_batches``: the same envelopes verified in batches of 1,000. The
calibration kernel (engine.benchmarks.kernels.calibration) is timed too, so `engine bench
compare` can normalise TPS across machines.
"""
from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from engine.benchmarks.txpath import parse_trace, tx_path
from engine.localnet import get_json, wait_ready
from engine.node.phases import PHASES
from engine.node.stagecpu import STAGES
from engine.node.txtrace import TRACE_FILE, sampled

CHAIN_ID = "bench-tps"
SENDERS = 1000
BATCH_INTERVAL_MS = 50
BATCH_TXS_MAX = 2000
WINDOW_PER_NODE = 2
#: ``max`` load holds back while this many accepted transactions are not yet seen committed, so
#: the figure is throughput at saturation, not the time to drain an ever longer mempool queue.
OUTSTANDING_TXS_MAX = 20_000
POLL_MS = 20
#: How long one GET /blocks long poll of node 0 waits for the next block.
LONG_POLL_MS = 1000
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_GRACE_S = 15.0
PROGRESS_INTERVAL_S = 2.0
#: Transactions signed for a ``max`` run, per second of load (the load stops when they run out).
MAX_RATE_PRESIGN_TPS = 25_000
#: The same for an sm2-sm3 run (SM2 signs ~2.5x slower and the chain commits fewer per second).
MAX_RATE_PRESIGN_TPS_SM2 = 10_000
RATE_MAX = 200_000
CEILING_SAMPLE_TXS = 20_000
DRAIN_TIMEOUT_S_MIN = 20.0
SWEEP_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25)
#: ``--find-max``: a rung is sustained when committed >= this fraction of the offered rate over
#: its steady-state window, p50 is within the SLO, nothing was refused and node 0 saw every
#: accepted transaction of the rung committed.
SUSTAINED_FRACTION = 0.98
SLO_P50_MS_DEFAULT = 500.0
FIND_MAX_START_TPS = 1000
FIND_MAX_RUNGS_MAX = 8
#: The search stops once the highest sustained and the lowest failed rate are this close.
FIND_MAX_RESOLUTION = 0.1
FIND_MAX_RATE_MIN = 100

__all__ = ["MaxSearch", "TpsOptions", "run_tps", "run_tps_command", "sustained"]


@dataclass
class TpsOptions:
    validators: int = 4
    duration_s: float = 30.0
    tx_bytes: int = 250
    rate: int | None = None  # None: max
    sweep: bool = False
    rates: list[int] | None = None
    base_port: int = 0
    profile_dir: str | None = None
    keep: bool = False
    progress: bool = True
    crypto: str = "ed25519-blake3"
    find_max: bool = False
    slo_p50_ms: float = SLO_P50_MS_DEFAULT
    find_max_rungs: int = FIND_MAX_RUNGS_MAX
    #: The nodes' ``block_interval_ms`` (None: the node default, 100 ms). Blocks are at least
    #: that far apart, so at moderate rates the interval, not the work, paces the chain.
    block_interval_ms: int | None = None
    #: A one-way delay added to every message between the nodes, in ms (0: none): the test
    #: chaos transport (engine/net/chaos.py, installed through ``testing.toml`` and
    #: ``ENGINE_TEST_FAULTS=1``), for heights paced by the network as across a WAN.
    net_latency_ms: int = 0
    #: The nodes' application (``package.module:Class``; None: the kvstore). It must take
    #: the kvstore's ``key=value`` payloads, e.g. ``engine.examples.costly:CostlyKVStore``.
    app: str | None = None
    #: The nodes' ``[app_settings]`` (values parsed as TOML scalars).
    app_settings: dict[str, Any] = field(default_factory=dict)
    #: The nodes' ``optimistic_execution`` (None: the node default, on).
    optimistic_execution: bool | None = None
    #: Trace a sample of the transactions through the nodes (``trace_txs``) and report where
    #: their latency goes (engine/benchmarks/txpath.py).
    trace_txs: bool = False
    #: The nodes' ``retain_blocks`` (None: the node default, 0 = keep every block). Blocks
    #: pruned before the final check are counted as node 0 reported them during the run.
    retain_blocks: int | None = None

    @classmethod
    def from_args(cls, args: Any) -> TpsOptions:
        rate: int | None
        if str(args.rate).lower() == "max":
            rate = None
        else:
            try:
                rate = int(args.rate)
            except ValueError:
                raise ValueError(f"--rate must be 'max' or an integer, not {args.rate!r}") from None
        rates = None
        if args.rates:
            try:
                rates = [int(r) for r in args.rates.split(",") if r.strip()]
            except ValueError:
                raise ValueError(f"--rates must be comma-separated integers, not {args.rates!r}"
                                 ) from None
        opts = cls(validators=args.validators, duration_s=args.duration, tx_bytes=args.tx_bytes,
                   rate=rate, sweep=args.sweep, rates=rates, base_port=args.base_port,
                   profile_dir=args.profile, keep=args.keep,
                   crypto=getattr(args, "crypto", None) or "ed25519-blake3",
                   find_max=getattr(args, "find_max", False),
                   slo_p50_ms=getattr(args, "slo_p50_ms", SLO_P50_MS_DEFAULT),
                   find_max_rungs=getattr(args, "find_max_rungs", FIND_MAX_RUNGS_MAX),
                   block_interval_ms=getattr(args, "block_interval_ms", None),
                   net_latency_ms=getattr(args, "net_latency_ms", None) or 0,
                   app=getattr(args, "app", None),
                   app_settings=parse_app_settings(getattr(args, "app_setting", None) or []),
                   optimistic_execution=False if getattr(args, "no_optimistic_execution",
                                                         False) else None,
                   trace_txs=bool(getattr(args, "trace_txs", False)),
                   retain_blocks=getattr(args, "retain_blocks", None))
        opts.validate()
        return opts

    def validate(self) -> None:
        from engine import tx as txmod
        from engine.benchmarks.kernels import make_envelopes  # noqa: F401  (size rule lives there)

        if type(self.validators) is not int or not 1 <= self.validators <= 16:
            raise ValueError(f"validators must be an integer in 1..16, not {self.validators!r}")
        if not 1 <= self.duration_s <= 3600:
            raise ValueError(f"duration must be 1..3600 s, not {self.duration_s!r}")
        from engine.suite import get_suite

        suite = get_suite(self.crypto)  # ValueError naming the choices
        low = txmod.TX_HEADER_BYTES + suite.public_key_bytes - 32 + txmod.SIGNATURE_BYTES + 16
        if type(self.tx_bytes) is not int or not low <= self.tx_bytes <= 4096:
            raise ValueError(f"tx_bytes must be an integer in {low}..4096, not {self.tx_bytes!r}")
        for r in [self.rate] + list(self.rates or []):
            if r is not None and not 1 <= r <= RATE_MAX:
                raise ValueError(f"rate must be 'max' or 1..{RATE_MAX} tx/s, not {r!r}")
        if self.rates and not self.sweep:
            raise ValueError("rates is only used with sweep")
        if self.find_max and (self.sweep or self.profile_dir):
            raise ValueError("find_max cannot be combined with sweep or profile")
        if type(self.find_max_rungs) is not int or not 1 <= self.find_max_rungs <= 20:
            raise ValueError(f"find_max_rungs must be an integer in 1..20, not "
                             f"{self.find_max_rungs!r}")
        if not isinstance(self.slo_p50_ms, (int, float)) or not 1 <= self.slo_p50_ms <= 60_000:
            raise ValueError(f"slo_p50_ms must be 1..60000 ms, not {self.slo_p50_ms!r}")
        interval = self.block_interval_ms
        if interval is not None and (type(interval) is not int or not 1 <= interval <= 60_000):
            raise ValueError(f"block_interval_ms must be an integer in 1..60000, not "
                             f"{interval!r}")
        from engine.net.chaos import CHAOS_LATENCY_MS_MAX

        latency = self.net_latency_ms
        if type(latency) is not int or not 0 <= latency <= CHAOS_LATENCY_MS_MAX:
            raise ValueError(f"net_latency_ms must be an integer in 0..{CHAOS_LATENCY_MS_MAX}, "
                             f"not {latency!r}")
        if self.app is not None:
            from engine.app import load_app

            load_app(self.app)  # ValueError/TypeError naming it, before any node starts
        if not isinstance(self.app_settings, dict):
            raise TypeError("app_settings must be a dict")
        if self.optimistic_execution not in (None, True, False):
            raise ValueError(f"optimistic_execution must be None, True or False, not "
                             f"{self.optimistic_execution!r}")
        if type(self.trace_txs) is not bool:
            raise ValueError(f"trace_txs must be True or False, not {self.trace_txs!r}")
        from engine import limits

        retain = self.retain_blocks
        if retain is not None and (type(retain) is not int
                                   or not limits.retain_blocks_min <= retain <= 10**9):
            raise ValueError(f"retain_blocks must be an integer of at least "
                             f"{limits.retain_blocks_min}, not {retain!r}")


def parse_app_settings(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items (``--app-setting``) as a dict, each value a TOML scalar (``20``,
    ``2.5``, ``true``, ``"text"``) or else the text itself."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--app-setting must be KEY=VALUE, not {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _latency_env(homes: list, latency_ms: int) -> dict[str, str] | None:
    """With a latency: each home's ``testing.toml`` asks for the chaos transport's delay, and
    the environment the nodes start in enables test seams (engine/faults/hooks.py); else
    None (the nodes start as any node does)."""
    if not latency_ms:
        return None
    from engine.faults.hooks import ENV_SWITCH, TESTING_FILE

    for h in homes:
        with open(os.path.join(h.path, TESTING_FILE), "w") as f:
            f.write(f"[chaos]\nlatency_ms = {latency_ms}\n")
    return {**os.environ, ENV_SWITCH: "1"}


# ---- signing before the clock starts ---------------------------------------------------------

def _sign_chunk(job: tuple[bytes, int, int, int, str, str]) -> list[bytes]:
    """Worker: envelopes ``start .. start+count`` of a run (keys derived from ``run_seed``)."""
    from engine import hashing
    from engine import tx as txmod
    from engine.suite import get_suite

    run_seed, start, count, tx_bytes, chain_id, crypto = job
    suite = get_suite(crypto)
    keys: dict[int, Any] = {}
    # An SM2 sender key is 32 bytes longer: the payload shrinks, the envelope size stays.
    header_bytes = txmod.TX_HEADER_BYTES + suite.public_key_bytes - 32
    payload_bytes = tx_bytes - header_bytes - txmod.SIGNATURE_BYTES
    out = []
    for i in range(start, start + count):
        s = i % SENDERS
        key = keys.get(s)
        if key is None:
            key = keys[s] = suite.key_from_seed(hashing.blake3(run_seed + s.to_bytes(4, "little")))
        head = b"k%d=" % (i % 100_000)
        body = head + (b"%x" % i).rjust(payload_bytes - len(head), b".")
        # Each sender's nonces in sequence (replay protection keeps a bounded window).
        out.append(txmod.encode_tx(key, i // SENDERS, body[:payload_bytes], chain_id))
    return out


def sign_envelopes(count: int, tx_bytes: int, chain_id: str = CHAIN_ID,
                   workers: int | None = None, crypto: str = "ed25519-blake3") -> list[bytes]:
    """``count`` signed envelopes of ``tx_bytes`` bytes, signed on every core."""
    run_seed = os.urandom(16)
    workers = workers or os.cpu_count() or 1
    chunk = max(1000, math.ceil(count / (workers * 4)))
    jobs = [(run_seed, s, min(chunk, count - s), tx_bytes, chain_id, crypto)
            for s in range(0, count, chunk)]
    if workers == 1 or count <= 2 * chunk:
        return [e for job in jobs for e in _sign_chunk(job)]
    with ProcessPoolExecutor(workers) as pool:
        return [e for part in pool.map(_sign_chunk, jobs) for e in part]


# ---- processes ---------------------------------------------------------------------------------

class CpuMeter:
    """CPU seconds of each node process and of this process between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int]):
        try:
            import psutil
        except ImportError:
            self.procs: dict[str, Any] = {}
            return
        self.procs = {}
        for name, pid in {**pids, "loadgen": os.getpid()}.items():
            try:
                self.procs[name] = psutil.Process(pid)
            except psutil.Error:
                continue
        self.t0: dict[str, float] = {}
        self.wall0 = 0.0

    def _cpu(self, p) -> float:
        try:
            t = p.cpu_times()
            return t.user + t.system + t.children_user + t.children_system
        except Exception:  # noqa: BLE001  (the process is gone: its CPU cannot be read)
            return float("nan")

    def start(self) -> None:
        self.wall0 = time.monotonic()
        self.t0 = {n: self._cpu(p) for n, p in self.procs.items()}

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.wall0, 1e-6)
        return {n: round((self._cpu(p) - self.t0[n]) / wall * 100, 1)
                for n, p in self.procs.items()}


# ---- the run -----------------------------------------------------------------------------------

@dataclass
class _Step:
    """One load phase (the whole run, or one rung of a sweep)."""

    rate: int | None
    start: float = 0.0
    end: float = 0.0
    offered: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    behind_s: float = 0.0  # how late the open-loop sender fell behind its schedule
    errors: list[str] = field(default_factory=list)
    cpu_percent: dict[str, float] = field(default_factory=dict)
    #: Per node: CPU microseconds per committed transaction by stage (engine/node/stagecpu.py).
    cpu_us_per_tx: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Per node: mean wall-clock ms of each phase of its heights (engine/node/phases.py).
    height_phases_ms: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class _State:
    urls: list[str]
    sent_at: dict[str, float] = field(default_factory=dict)      # tx id hex -> post time
    step_of: dict[str, int] = field(default_factory=dict)        # tx id hex -> step index
    seen_at: dict[str, float] = field(default_factory=dict)      # tx id hex -> commit seen
    blocks: list[tuple[float, int, int]] = field(default_factory=list)  # (seen, height, txs)
    #: With pruning: node 0's transaction ids of every height, as the watcher read them.
    block_ids: dict[int, list[str]] | None = None
    height0: int = 0
    node_heights: list[int] = field(default_factory=list)
    node_mempools: list[int] = field(default_factory=list)
    #: --trace-txs: the sampled transactions' trace keys (engine/node/txtrace.py) by tx id,
    #: and when each was posted and seen committed.
    tracing: bool = False
    trace_key_of: dict[str, str] = field(default_factory=dict)
    trace_posted: dict[str, float] = field(default_factory=dict)
    trace_seen: dict[str, float] = field(default_factory=dict)


async def _post(http, url: str, body: bytes) -> dict | None | str:
    import aiohttp

    try:
        async with http.post(f"{url}/txs", data=body,
                             timeout=aiohttp.ClientTimeout(total=30)) as r:
            return await r.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        return f"POST /txs to {url}: {e!r}"


def _record(state: _State, step: _Step, step_index: int, envelopes: list[bytes], out: Any,
            sent: float) -> list[bytes]:
    """Book a POST answer; returns the envelopes refused only because the mempool was full."""
    if isinstance(out, str) or out is None:
        step.errors.append(out or "no answer")
        return []
    refused_full = []
    bad = {}
    for e in out.get("errors", []):
        bad[e["index"]] = e.get("code", "")
    if state.tracing:
        ids = out.get("tx_ids", [])
        for i, key in sampled(envelopes):
            if i < len(ids) and i not in bad:
                state.trace_key_of[ids[i]] = key
                state.trace_posted.setdefault(key, sent)
    for i, tx_id in enumerate(out.get("tx_ids", [])):
        code = bad.get(i)
        if code is None:
            state.sent_at[tx_id] = sent
            state.step_of[tx_id] = step_index
            step.accepted += 1
        elif code == "mempool_full":
            refused_full.append(envelopes[i])
        else:
            step.rejected += 1
            if len(step.errors) < 20:
                step.errors.append(f"tx {tx_id[:16]} refused: {code}")
    return refused_full


async def _load_open(http, state: _State, step: _Step, index: int, from_pool: _Cursor,
                     duration_s: float) -> None:
    """Offer ``step.rate`` tx/s: a batch every BATCH_INTERVAL_MS, without waiting for answers."""
    from engine.rpc import join_envelopes

    assert step.rate is not None, "an open loop has a rate"
    per_batch = max(1, round(step.rate * BATCH_INTERVAL_MS / 1000))
    tasks: set[asyncio.Task] = set()
    target, next_at = 0, time.monotonic()
    end = step.start + duration_s

    async def send(url: str, envs: list[bytes]) -> None:
        sent = time.monotonic()
        out = await _post(http, url, join_envelopes(envs))
        full = _record(state, step, index, envs, out, sent)
        step.rejected += len(full)

    while time.monotonic() < end:
        envs = from_pool.take(per_batch)
        if not envs:
            step.errors.append("pre-signed transactions ran out")
            break
        step.offered += len(envs)
        t = asyncio.create_task(send(state.urls[target % len(state.urls)], envs))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        target += 1
        next_at += BATCH_INTERVAL_MS / 1000
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            step.behind_s = max(step.behind_s, -delay)
            await asyncio.sleep(0)
    if tasks:
        await asyncio.gather(*tasks)


async def _load_closed(http, state: _State, step: _Step, index: int, from_pool: _Cursor,
                       duration_s: float) -> None:
    """As fast as the nodes take them: WINDOW_PER_NODE batches in flight per node."""
    from engine.rpc import join_envelopes

    end = step.start + duration_s

    async def sender(url: str) -> None:
        retry: list[bytes] = []
        while time.monotonic() < end:
            if len(state.sent_at) - len(state.seen_at) > OUTSTANDING_TXS_MAX:
                await asyncio.sleep(POLL_MS / 1000)
                continue
            envs = retry or from_pool.take(BATCH_TXS_MAX // 2)
            if not envs:
                step.errors.append("pre-signed transactions ran out")
                return
            if not retry:
                step.offered += len(envs)
            sent = time.monotonic()
            out = await _post(http, url, join_envelopes(envs))
            retry = _record(state, step, index, envs, out, sent)
            if retry:
                step.retried += len(retry)
                await asyncio.sleep(BATCH_INTERVAL_MS / 1000)
        step.rejected += len(retry)  # refused for a full mempool and never taken

    await asyncio.gather(*(sender(u) for u in state.urls for _ in range(WINDOW_PER_NODE)))


class _Cursor:
    """Envelopes handed out in signing order. A sweep's rungs share one cursor over one signed
    sequence: what a rung leaves is where the next one starts, so no sender skips a nonce (a
    skipped nonce stays a gap in the sender's nonce record, engine/nonces.py, which every later
    block that carries the sender writes again: about half of the growth of CPU per
    transaction seen over six rungs when each rung left its unused tail, docs/performance.md)."""

    def __init__(self, pool: list[bytes]):
        self.pool, self.pos = pool, 0

    def take(self, n: int) -> list[bytes]:
        out = self.pool[self.pos:self.pos + n]
        self.pos += len(out)
        return out


async def _watch(http, state: _State, stop: asyncio.Event) -> None:
    """Follow node 0's blocks with GET /blocks long polls: node 0 answers as soon as the next
    block is committed, so the time a transaction is seen committed is not rounded up to a
    polling interval."""
    url0 = state.urls[0]
    while not stop.is_set():
        out = await get_json(http, f"{url0}/blocks?from={state.height0 + 1}"
                                    f"&wait_ms={LONG_POLL_MS}", LONG_POLL_MS / 1000 + 5)
        if out is None:  # node 0 busy or restarting: try again shortly
            await asyncio.sleep(POLL_MS / 1000)
            continue
        now = time.monotonic()
        for block in out["blocks"]:
            if block["height"] != state.height0 + 1:
                break
            state.height0 += 1
            state.blocks.append((now, block["height"], block["num_txs"]))
            if state.block_ids is not None:
                state.block_ids[block["height"]] = block["tx_ids"]
            for tx_id in block["tx_ids"]:
                state.seen_at.setdefault(tx_id, now)
            if state.trace_key_of:
                for tx_id in block["tx_ids"]:
                    key = state.trace_key_of.get(tx_id)
                    if key is not None:
                        state.trace_seen.setdefault(key, now)


async def _watch_nodes(http, state: _State, stop: asyncio.Event) -> None:
    while not stop.is_set():
        states = await asyncio.gather(*(get_json(http, f"{u}/status", 2.0) for u in state.urls))
        state.node_heights = [s["latest_height"] if s else -1 for s in states]
        state.node_mempools = [(s.get("mempool") or {}).get("txs", -1) if s else -1
                               for s in states]
        await asyncio.sleep(0.5)


async def _progress(state: _State, step: _Step, label: str, duration_s: float,
                    stop: asyncio.Event, enabled: bool) -> None:
    last_t, last_n = time.monotonic(), len(state.seen_at)
    while not stop.is_set():
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        if not enabled:
            continue
        now, n = time.monotonic(), len(state.seen_at)
        rate = (n - last_n) / max(now - last_t, 1e-3)
        last_t, last_n = now, n
        print(f"[{label} {now - step.start:5.1f}/{duration_s:.0f} s] offered {step.offered} "
              f"accepted {step.accepted} committed {n} ({rate:,.0f} tx/s now) heights "
              f"{state.node_heights} mempools {state.node_mempools}", flush=True)


async def _drain(http, state: _State, accepted_ids: int, timeout_s: float) -> None:
    """Wait until node 0 committed every accepted transaction and every node caught up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(state.seen_at.keys() & state.sent_at.keys()) >= accepted_ids:
            break
        await asyncio.sleep(0.2)
    # Every node must reach the height node 0 had then before the chains are compared (not
    # node 0's moving head: the chain keeps cutting empty blocks, and node heights are
    # sampled only every 0.5 s).
    goal = state.height0
    while time.monotonic() < deadline + 10:
        if state.node_heights and min(state.node_heights) >= goal:
            return
        await asyncio.sleep(0.2)


def _percentiles_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"),
                "max": float("nan"), "samples": 0}
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, int(p * len(v)))] * 1000, 1)

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": round(v[-1] * 1000, 1),
            "samples": len(v)}


def _step_summary(state: _State, step: _Step, index: int, warmup_s: float) -> dict[str, Any]:
    w0, w1 = step.start + warmup_s, step.end
    window_s = max(w1 - w0, 1e-3)
    blocks = [(t, h, n) for t, h, n in state.blocks if w0 <= t < w1]
    committed_in_window = sum(n for _, _, n in blocks)
    latencies = [state.seen_at[i] - t for i, t in state.sent_at.items()
                 if state.step_of.get(i) == index and w0 <= t < w1 and i in state.seen_at]
    unseen = sum(1 for i, k in state.step_of.items() if k == index and i not in state.seen_at)
    return {
        "offered_rate": step.rate if step.rate is not None else "max",
        "tps": round(committed_in_window / window_s, 1),
        "latency_ms": _percentiles_ms(latencies),
        "window_s": round(window_s, 2),
        "offered": step.offered, "accepted": step.accepted, "rejected": step.rejected,
        "retried_mempool_full": step.retried,
        "unseen": unseen,
        "sender_behind_s": round(step.behind_s, 3),
        "blocks": len(blocks),
        "blocks_per_s": round(len(blocks) / window_s, 2),
        "txs_per_block": round(committed_in_window / len(blocks), 1) if blocks else 0.0,
        "cpu_percent": step.cpu_percent,
        "cpu_us_per_tx": step.cpu_us_per_tx,
        "height_phases_ms": step.height_phases_ms,
        "errors": step.errors[:10],
    }


_PRUNED = "pruned"


async def _verify_chains(http, urls: list[str], height: int, accepted: set[str],
                         watched: dict[int, list[str]] | None = None) -> dict[str, Any]:
    """Read every node's chain 1..height; count each accepted id and compare hashes.

    With pruning (``watched``: node 0's transaction ids of each height as the run saw them),
    a block a node has pruned counts with the ids node 0 reported for that height, and the
    hashes are compared at the heights every node still holds (the last one included: a
    block's hash commits to its parent's, so equal hashes there mean equal chains before)."""
    import aiohttp

    sem = asyncio.Semaphore(8)

    async def fetch(url: str, h: int):
        """The block, ``_PRUNED`` when the node answers that it pruned it, else None."""
        async with sem:
            for _ in range(3):
                try:
                    async with http.get(f"{url}/block/{h}",
                                        timeout=aiohttp.ClientTimeout(total=30)) as r:
                        body = await r.json()
                        if r.status == 200:
                            return body
                        if r.status == 404 and body.get("error") == _PRUNED:
                            return _PRUNED
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    pass
            return None

    per_node_heads, lost_by_node, dup_by_node, rounds, missing = [], [], [], [], []
    pruned: list[int] = []
    for n, url in enumerate(urls):
        blocks = await asyncio.gather(*(fetch(url, h) for h in range(1, height + 1)))
        counts: dict[str, int] = {}
        heads: list[tuple[str, str] | None] = []
        node_pruned = 0
        for h, b in enumerate(blocks, start=1):
            if b == _PRUNED and watched is not None and h in watched:
                node_pruned += 1
                heads.append(None)
                ids = watched[h]
            elif b is None or b == _PRUNED:
                missing.append((n, h))
                heads.append(None)
                continue
            else:
                heads.append((b["hash"], b["result_app_hash"]))
                if n == 0:
                    rounds.append(b["certificate"]["round"])
                ids = b["tx_ids"]
            for tx_id in ids:
                counts[tx_id] = counts.get(tx_id, 0) + 1
        pruned.append(node_pruned)
        per_node_heads.append(heads)
        lost_by_node.append(sum(1 for i in accepted if i not in counts))
        dup_by_node.append(sum(1 for c in counts.values() if c > 1))
    held = [h for h in range(height)
            if all(heads[h] is not None for heads in per_node_heads)]
    agree = not missing and bool(held) and held[-1] == height - 1 and \
        all(heads[h] == per_node_heads[0][h] for heads in per_node_heads for h in held)
    return {
        "verified_height": height,
        "pruned_heights_by_node": pruned,
        "nodes_agree": agree,
        "last_block_hash": per_node_heads[0][-1][0] if height and per_node_heads[0][-1] else None,
        "last_app_hash": per_node_heads[0][-1][1] if height and per_node_heads[0][-1] else None,
        "lost": max(lost_by_node) if lost_by_node else 0,
        "lost_by_node": lost_by_node,
        "duplicates": max(dup_by_node) if dup_by_node else 0,
        "rounds_per_height": round(sum(r + 1 for r in rounds) / len(rounds), 3) if rounds else 0,
        "unreadable_blocks": missing[:10],
    }


def sustained(summary: dict[str, Any], slo_p50_ms: float) -> tuple[bool, str]:
    """Did a rung at a fixed offered rate hold it? (verdict, the reason when not)"""
    rate = summary["offered_rate"]
    if not isinstance(rate, int):
        return False, "a max-rate rung has no offered rate to sustain"
    if summary["errors"] and any("ran out" in e for e in summary["errors"]):
        return False, "the pre-signed transactions ran out"
    if summary["rejected"]:
        return False, f"{summary['rejected']} transactions refused"
    if summary["unseen"]:
        return False, f"{summary['unseen']} accepted transactions not seen committed"
    if summary["tps"] < SUSTAINED_FRACTION * rate:
        return False, f"committed {summary['tps']:,.0f} < {SUSTAINED_FRACTION:.0%} of {rate:,}"
    p50 = summary["latency_ms"]["p50"]
    if not p50 <= slo_p50_ms:  # NaN (no samples) fails too
        return False, f"p50 {p50} ms over the {slo_p50_ms:g} ms SLO"
    return True, "sustained"


class MaxSearch:
    """The bounded search of ``--find-max``: double the offered rate while rungs are sustained,
    halve it while they are not, then bisect between the highest sustained and the lowest failed
    rate until they are within FIND_MAX_RESOLUTION, at most ``rungs_max`` rungs in all."""

    def __init__(self, start: int = FIND_MAX_START_TPS, rungs_max: int = FIND_MAX_RUNGS_MAX,
                 resolution: float = FIND_MAX_RESOLUTION, limit: int = RATE_MAX):
        self.start, self.rungs_max, self.resolution, self.limit = start, rungs_max, resolution, limit
        self.good: int | None = None
        self.bad: int | None = None
        self.rungs = 0

    def first(self) -> int:
        return self.start

    def after(self, rate: int, ok: bool) -> int | None:
        """The next rate to offer after ``rate`` was (not) sustained, or None: the search ends."""
        self.rungs += 1
        if ok:
            self.good = max(self.good or 0, rate)
        else:
            self.bad = rate if self.bad is None else min(self.bad, rate)
        if self.rungs >= self.rungs_max:
            return None
        if self.bad is None:
            nxt = min(2 * rate, self.limit)
            return nxt if nxt > rate else None
        if self.good is None:
            nxt = rate // 2
            return nxt if nxt >= FIND_MAX_RATE_MIN else None
        if self.bad - self.good <= self.resolution * self.good:
            return None
        return (self.good + self.bad) // 2


def _sweep_rates(opts: TpsOptions) -> list[int | None]:
    if not opts.sweep:
        return [opts.rate]
    if opts.rates:
        return list(opts.rates)
    top = opts.rate or 20_000
    return [max(100, int(top * f)) for f in SWEEP_FRACTIONS]


async def _drive(opts: TpsOptions, urls: list[str], procs: list[subprocess.Popen],
                 signed: list[bytes], profile,
                 search: MaxSearch | None = None) -> dict[str, Any]:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:
        await wait_ready(http, urls, procs, STARTUP_TIMEOUT_S, height_min=1)
        state = _State(urls, tracing=opts.trace_txs,
                       block_ids={} if opts.retain_blocks is not None else None)
        first = await get_json(http, f"{urls[0]}/status")
        if first is None:
            raise RuntimeError("node 0 stopped answering GET /status after start-up")
        state.height0 = first["latest_height"]
        if state.block_ids is not None:  # the blocks before the load, for the final check
            for h in range(1, state.height0 + 1):
                b = await get_json(http, f"{urls[0]}/block/{h}")
                if b is not None:
                    state.block_ids[h] = b["tx_ids"]
        stop_watch = asyncio.Event()
        watchers = [asyncio.create_task(_watch(http, state, stop_watch)),
                    asyncio.create_task(_watch_nodes(http, state, stop_watch))]
        warmup_s = min(5.0, opts.duration_s * 0.2)
        meter = CpuMeter({f"node{i}": p.pid for i, p in enumerate(procs)})
        steps, summaries = [], []
        verdicts: list[dict[str, Any]] = []
        started = time.monotonic()
        plan: list[int | None] = [search.first()] if search else _sweep_rates(opts)
        shared = _Cursor(signed)  # every rung of a sweep takes from one signed sequence
        index = -1
        while index + 1 < len(plan):
            index += 1
            rate = plan[index]
            if search is not None:
                assert rate is not None
                count = _presign_count(rate, opts.duration_s, opts.crypto)
                if opts.progress:
                    print(f"[find-max] signing {count:,} transactions for {rate:,} tx/s", flush=True)
                # New senders for each rung: nonces start again at 0, so none is skipped.
                pool = _Cursor(await asyncio.get_running_loop().run_in_executor(
                    None, sign_envelopes, count, opts.tx_bytes, CHAIN_ID, None, opts.crypto))
            else:
                pool = shared
            step = _Step(rate)
            steps.append(step)
            label = f"rate {rate if rate else 'max'}"
            stop_progress = asyncio.Event()
            prog = asyncio.create_task(_progress(state, step, label, opts.duration_s,
                                                 stop_progress, opts.progress))
            if profile is not None and search is None and index == len(plan) - 1:
                profile.start(procs[0].pid, opts.duration_s)
            step.start = time.monotonic()
            meter.start()
            stages0 = await _stage_counters(http, urls)
            if rate is None:
                await _load_closed(http, state, step, index, pool, opts.duration_s)
            else:
                await _load_open(http, state, step, index, pool, opts.duration_s)
            step.end = time.monotonic()
            step.cpu_percent = meter.stop()
            accepted_so_far = sum(s.accepted for s in steps)
            await _drain(http, state, accepted_so_far,
                         max(DRAIN_TIMEOUT_S_MIN, opts.duration_s))
            stages1 = await _stage_counters(http, urls)
            step.cpu_us_per_tx = _per_node(cpu_per_tx, stages0, stages1)
            step.height_phases_ms = _per_node(height_phases_ms, stages0, stages1)
            stop_progress.set()
            await prog
            summaries.append(_step_summary(state, step, index, warmup_s))
            if opts.progress:
                s = summaries[-1]
                print(f"[{label}] committed {s['tps']:,.0f} tx/s, p50 {s['latency_ms']['p50']} ms,"
                      f" p99 {s['latency_ms']['p99']} ms", flush=True)
            if search is not None:
                assert rate is not None
                ok, why = sustained(summaries[-1], opts.slo_p50_ms)
                verdicts.append({"offered_rate": rate, "sustained": ok, "why": why})
                if opts.progress:
                    print(f"[find-max] {rate:,} tx/s: {why}", flush=True)
                nxt = search.after(rate, ok)
                if nxt is not None:
                    plan.append(nxt)
        stop_watch.set()
        await asyncio.gather(*watchers)
        final = await _stage_counters(http, urls)
        delayed = [int(c.get("chaos_delayed", 0)) if c is not None else None
                   for c in final] if opts.net_latency_ms else []
        early = {k: [int(c.get(f"early_{k}", 0)) if c is not None else None for c in final]
                 for k in ("executions", "reused", "discarded")}
        states = await asyncio.gather(*(get_json(http, f"{u}/status") for u in urls))
        common = min(s["latest_height"] for s in states if s) if all(states) else 0
        accepted_ids = set(state.sent_at)
        if opts.progress:
            print(f"verifying {len(accepted_ids)} accepted transactions on {len(urls)} nodes, "
                  f"heights 1..{common}", flush=True)
        check = await _verify_chains(http, urls, common, accepted_ids, state.block_ids)
        all_lat = [state.seen_at[i] - t for i, t in state.sent_at.items() if i in state.seen_at]
        timeline = _timeline(state, started)
    return {"steps": summaries, "verdicts": verdicts, "check": check,
            "accepted_ids": len(accepted_ids),
            "committed_seen": sum(1 for i in accepted_ids if i in state.seen_at),
            "latency_all_ms": _percentiles_ms(all_lat), "timeline": timeline,
            "offered": sum(s.offered for s in steps), "rejected": sum(s.rejected for s in steps),
            "messages_delayed": delayed, "early_execution": early,
            "trace": {"posted": state.trace_posted, "seen": state.trace_seen}}


_STAGE_LINE = re.compile(r'^engine_stage_cpu_seconds_total\{stage="([a-z_]+)"\} (\S+)$')
_PROCESS_LINE = re.compile(r"^engine_process_cpu_seconds_total (\S+)$")
_NATIVE_LINE = re.compile(r"^engine_native_threads_cpu_seconds_total (\S+)$")
_COMMITTED_LINE = re.compile(r'^engine_node_events_total\{event="txs_committed"\} (\S+)$')
_DELAYED_LINE = re.compile(r'^engine_node_events_total\{event="chaos:delayed"\} (\S+)$')
_EARLY_LINE = re.compile(
    r'^engine_node_events_total\{event="optimistic_(executions|reused|discarded)"\} (\S+)$')
_PHASE_LINE = re.compile(r'^engine_height_phase_seconds_(sum|count)\{phase="([a-z]+)"\} (\S+)$')


def parse_stage_counters(text: str) -> dict[str, float]:
    """From a node's /metrics text: the thread CPU seconds of each stage, ``native_threads``
    (the native kernels' helper threads), ``process`` (the whole process), ``txs_committed``,
    ``chaos_delayed`` (messages the test chaos transport delayed, with --net-latency-ms) and
    ``early_executions`` / ``early_reused`` / ``early_discarded`` (blocks executed before their
    decision, decisions that reused such a result, results not used: engine/node/commit.py)
    and ``phase_sum:P`` / ``phase_count:P`` (seconds in phase P of the stored heights and how
    many: engine/node/phases.py)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _STAGE_LINE.match(line)
        if m:
            out[m.group(1)] = float(m.group(2))
        elif (m := _PROCESS_LINE.match(line)):
            out["process"] = float(m.group(1))
        elif (m := _NATIVE_LINE.match(line)):
            out["native_threads"] = float(m.group(1))
        elif (m := _COMMITTED_LINE.match(line)):
            out["txs_committed"] = float(m.group(1))
        elif (m := _DELAYED_LINE.match(line)):
            out["chaos_delayed"] = float(m.group(1))
        elif (m := _EARLY_LINE.match(line)):
            out[f"early_{m.group(1)}"] = float(m.group(2))
        elif (m := _PHASE_LINE.match(line)):
            out[f"phase_{m.group(1)}:{m.group(2)}"] = float(m.group(3))
    return out


def height_phases_ms(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean milliseconds of each phase of the heights a node stored between two readings
    (engine/node/phases.py), ``heights`` being how many; empty when it stored none."""
    heights = after.get("phase_count:height", 0.0) - before.get("phase_count:height", 0.0)
    if heights <= 0:
        return {}
    out = {}
    for phase in (*PHASES, "height"):
        n = after.get(f"phase_count:{phase}", 0.0) - before.get(f"phase_count:{phase}", 0.0)
        if n > 0:
            seconds = after[f"phase_sum:{phase}"] - before.get(f"phase_sum:{phase}", 0.0)
            out[phase] = round(seconds / n * 1000, 2)
    out["heights"] = heights
    return out


async def _stage_counters(http, urls: list[str]) -> list[dict[str, float] | None]:
    """Every node's stage counters now (None for a node that did not answer)."""
    import aiohttp

    async def one(url: str) -> dict[str, float] | None:
        try:
            async with http.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
                return parse_stage_counters(await r.text()) if r.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None

    return list(await asyncio.gather(*(one(u) for u in urls)))


def cpu_per_tx(before: dict[str, float], after: dict[str, float]) -> dict[str, float] | None:
    """CPU microseconds per transaction the node committed between two readings: each stage,
    ``native_threads`` (the kernels' helper threads, mostly the parallel half of signature
    batches), ``other`` (the rest of the process CPU) and ``total``; None when it committed
    none."""
    txs = after.get("txs_committed", 0.0) - before.get("txs_committed", 0.0)
    if txs <= 0 or "process" not in after or "process" not in before:
        return None
    out = {k: round((after[k] - before.get(k, 0.0)) / txs * 1e6, 2)
           for k in (*STAGES, "native_threads") if k in after}
    total = (after["process"] - before["process"]) / txs * 1e6
    out["other"] = round(total - sum(out.values()), 2)
    out["total"] = round(total, 2)
    return out


def _per_node(between: Callable[[dict[str, float], dict[str, float]], dict[str, float] | None],
              before: list[dict[str, float] | None],
              after: list[dict[str, float] | None]) -> dict[str, dict[str, float]]:
    """``between(before, after)`` of every node that answered both readings and has a figure
    (``cpu_per_tx``, ``height_phases_ms``), by node name."""
    out = {}
    for i, (b, a) in enumerate(zip(before, after)):
        per = between(b, a) if b is not None and a is not None else None
        if per:
            out[f"node{i}"] = per
    return out


def _timeline(state: _State, started: float) -> list[list[float]]:
    """Committed transactions per second on node 0 since the load started: [[t_s, txs]]."""
    per_s: dict[int, int] = {}
    for t, _, n in state.blocks:
        if t >= started:
            per_s[int(t - started)] = per_s.get(int(t - started), 0) + n
    return [[s, per_s.get(s, 0)] for s in range(max(per_s, default=-1) + 1)]


def _timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The best wall time of ``runs`` calls of ``fn`` and the last call's result."""
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def crypto_ceiling(envelopes: list[bytes], chain_id: str = CHAIN_ID,
                   suite_name: str = "ed25519-blake3") -> dict[str, Any]:
    """verify_txs over ``envelopes`` on every core: how fast one process merely verifies them,
    with the senders' keys in the decompressed-key cache (best of 3 after one warming pass: a
    node verifies the same senders again and again); the cold-key pass is reported too."""
    from engine import crypto
    from engine import tx as txmod
    from engine.suite import get_suite

    suite = get_suite(suite_name)
    sample = envelopes[:CEILING_SAMPLE_TXS]
    if suite.is_default:  # empty the cache
        crypto.configure_key_cache(crypto.key_cache_info()["capacity"])
    else:
        crypto.sm2_configure_key_cache(crypto.sm2_key_cache_info()["capacity"])
    step = min(SENDERS, len(sample))

    def whole() -> list[bool]:
        return txmod.verify_txs(sample, chain_id, threads=None, suite=suite)

    def batched() -> list[list[bool]]:
        # As the nodes verify: admission batches of consecutive envelopes, one per sender (a
        # batch from repeated senders is cheaper: one Ed25519 equation term per distinct key).
        return [txmod.verify_txs(sample[i:i + step], chain_id, threads=None, suite=suite)
                for i in range(0, len(sample), step)]

    cold, verdicts = _timed(whole, 1)
    best, verdicts = _timed(whole, 3)
    if not all(verdicts):
        raise RuntimeError("the pre-signed transactions do not all verify")
    best_batched, per_batch = _timed(batched, 3)
    if sum(map(sum, per_batch)) != len(sample):
        raise RuntimeError("the pre-signed transactions do not all verify in batches")
    senders = len({e[1:1 + suite.public_key_bytes] for e in sample})
    path = crypto.native_path() if suite.is_default else crypto.sm2_native_path()
    return {"txs": len(sample), "senders": senders, "threads": os.cpu_count() or 1,
            "tps": round(len(sample) / best, 1), "tps_cold_keys": round(len(sample) / cold, 1),
            "tps_batches": round(len(sample) / best_batched, 1), "batch_txs": step,
            "keys": "cached (best of 3 after a warming pass)", "path": path}


def _presign_count(rate: int | None, duration_s: float,
                   crypto: str = "ed25519-blake3") -> int:
    cap = MAX_RATE_PRESIGN_TPS if crypto == "ed25519-blake3" else MAX_RATE_PRESIGN_TPS_SM2
    per_s = rate if rate is not None else cap
    return int(per_s * duration_s * 1.05) + BATCH_TXS_MAX


def _presign_counts(opts: TpsOptions) -> list[int]:
    if opts.find_max:
        return []  # each rung's transactions are signed when its rate is known
    return [_presign_count(rate, opts.duration_s, opts.crypto) for rate in _sweep_rates(opts)]


def run_tps(opts: TpsOptions) -> dict[str, Any]:
    """Run the benchmark and return the report body (raises RuntimeError when it cannot run).

    An ``sm2-sm3`` run is followed by the same options on ``ed25519-blake3`` (the baseline)."""
    report = _run_tps_one(opts)
    if opts.crypto != "ed25519-blake3":
        from dataclasses import replace

        if opts.progress:
            print("baseline: the same run on ed25519-blake3", flush=True)
        base = _run_tps_one(replace(opts, crypto="ed25519-blake3", profile_dir=None))
        report["baseline"] = base
        report["tps_vs_baseline"] = round(report["tps"] / base["tps"], 3) if base["tps"] else None
    return report


def _run_tps_one(opts: TpsOptions) -> dict[str, Any]:
    from engine.benchmarks.kernels import calibration
    from engine.config import init_testnet
    from engine.localnet import free_base_port, shutdown_nodes, spawn_node
    from engine.store import store_path

    opts.validate()
    say = print if opts.progress else (lambda *a, **k: None)
    counts = _presign_counts(opts)
    t = time.monotonic()
    say(f"signing {sum(counts):,} transactions of {opts.tx_bytes} B before the clock starts",
        flush=True)
    signed = sign_envelopes(sum(counts), opts.tx_bytes, crypto=opts.crypto)
    sign_s = time.monotonic() - t
    base = opts.base_port or free_base_port(2 * opts.validators)
    workdir = tempfile.mkdtemp(prefix="engine-bench-tps-")
    procs: list[subprocess.Popen] = []
    profile = Profiler(opts.profile_dir) if opts.profile_dir else None
    homes: list = []
    traces: list[dict[str, dict[str, float]]] = []
    gaps: dict[str, int] | None = None
    try:
        settings: dict[str, Any] = {} if opts.block_interval_ms is None else {
            "block_interval_ms": opts.block_interval_ms}
        if opts.app is not None:
            settings["app"] = opts.app
        if opts.app_settings:
            settings["app_settings"] = dict(opts.app_settings)
        if opts.optimistic_execution is not None:
            settings["optimistic_execution"] = opts.optimistic_execution
        if opts.trace_txs:
            settings["trace_txs"] = True
        if opts.retain_blocks is not None:
            settings["retain_blocks"] = opts.retain_blocks
        homes = init_testnet(workdir, opts.validators, base_port=base, chain_id=CHAIN_ID,
                             crypto=opts.crypto, **settings)
        interval_ms = homes[0].config.block_interval_ms
        node_app = homes[0].config.app
        optimistic = homes[0].config.optimistic_execution
        env = _latency_env(homes, opts.net_latency_ms)
        for h in homes:
            procs.append(spawn_node(h.path, os.path.join(workdir, f"{h.config.moniker}.log"),
                                    env=env))
        last_port = base + 2 * opts.validators - 1
        say(f"{opts.validators} validators in {workdir} (ports {base}..{last_port}), "
            f"sync on, block interval {interval_ms} ms"
            + (f", {opts.net_latency_ms} ms one-way between nodes" if opts.net_latency_ms
               else "")
            + (f", app {node_app} {opts.app_settings or ''}" if opts.app else "")
            + ("" if optimistic else ", optimistic execution off")
            + (f", retain_blocks {opts.retain_blocks}" if opts.retain_blocks else "") + "; load "
            f"{'max' if opts.rate is None else opts.rate} tx/s for "
            f"{opts.duration_s:g} s" + (" per rung" if opts.sweep else ""), flush=True)
        search = MaxSearch(start=opts.rate or FIND_MAX_START_TPS,
                           rungs_max=opts.find_max_rungs) if opts.find_max else None
        result = asyncio.run(_drive(opts, [h.rpc_url for h in homes], procs, signed, profile,
                                    search))
    except (OSError, ValueError, RuntimeError) as e:
        _print_logs(workdir)
        raise RuntimeError(f"tps run failed: {e}") from e
    finally:
        codes = shutdown_nodes(procs, SHUTDOWN_GRACE_S)
        if homes:
            gaps = nonce_gaps(store_path(homes[0].path))
        if opts.trace_txs:
            traces = [_read_trace(h.path) for h in homes]
        if profile is not None:
            profile.finish()
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    ceiling = crypto_ceiling(sign_envelopes(CEILING_SAMPLE_TXS, opts.tx_bytes,
                                            crypto=opts.crypto), suite_name=opts.crypto)
    calib = calibration()
    main = result["steps"][-1] if not opts.sweep else max(result["steps"], key=lambda s: s["tps"])
    find_max: dict[str, Any] = {}
    if opts.find_max:
        held = [st for st, v in zip(result["steps"], result["verdicts"]) if v["sustained"]]
        best = max(held, key=lambda st: st["offered_rate"]) if held else None
        main = best or max(result["steps"], key=lambda s: s["tps"])
        top = best["offered_rate"] if best else 0
        find_max = {"max_sustainable_tps": top, "slo_p50_ms": opts.slo_p50_ms,
                    "fraction_of_ceiling": round(top / ceiling["tps"], 4),
                    "fraction_of_physical_limit": round(top * opts.validators / ceiling["tps"], 4),
                    "rungs": result["verdicts"]}
    check = result["check"]
    committed = result["accepted_ids"] - check["lost"]
    report = {
        "tps": main["tps"],
        "latency_ms": main["latency_ms"],
        "submitted": result["offered"],
        "accepted": result["accepted_ids"],
        "rejected": result["rejected"],
        "committed": committed,
        "lost": check["lost"],
        "duplicates": check["duplicates"],
        "nodes_agree": check["nodes_agree"],
        "blocks_per_s": main["blocks_per_s"],
        "txs_per_block": main["txs_per_block"],
        "rounds_per_height": check["rounds_per_height"],
        "cpu_percent": main["cpu_percent"],
        "cpu_us_per_tx": main["cpu_us_per_tx"],
        "height_phases_ms": main["height_phases_ms"],
        "crypto_ceiling": ceiling,
        "tps_fraction_of_ceiling": round(main["tps"] / ceiling["tps"], 4),
        "calibration": calib,
        "setup": {"validators": opts.validators, "duration_s": opts.duration_s,
                  "tx_bytes": opts.tx_bytes, "crypto": opts.crypto,
                  "rate": ("find-max" if opts.find_max else
                           "sweep " + ",".join(str(r or "max") for r in _sweep_rates(opts))
                           if opts.sweep else opts.rate or "max"), "sweep": opts.sweep,
                  "store_sync": True, "block_interval_ms": interval_ms,
                  "net_latency_ms": opts.net_latency_ms,
                  "app": node_app, "app_settings": dict(opts.app_settings),
                  "optimistic_execution": optimistic,
                  "retain_blocks": homes[0].config.retain_blocks,
                  "senders": SENDERS, "batch_interval_ms": BATCH_INTERVAL_MS,
                  "poll_ms": POLL_MS, "signing_s": round(sign_s, 1),
                  "latency": "POST sent -> block seen committed on node0 (long poll)",
                  "window": "from warmup to the end of the load, per step"},
        "check": check,
        "latency_all_ms": result["latency_all_ms"],
        "steps": result["steps"],
        "timeline": result["timeline"],
        "exit_codes": codes,
        #: Per node: blocks executed before their decision, decisions that reused the result,
        #: results not used (optimistic execution; engine/node/commit.py).
        "early_execution": result["early_execution"],
        #: Node 0's nonce records after the run: senders, and the nonces they skipped (a
        #: refused transaction's; each stays in its sender's record, making it longer).
        "nonce_gaps": gaps,
        **find_max,
    }
    if opts.net_latency_ms:
        report["net_latency"] = {"one_way_ms": opts.net_latency_ms,
                                 "messages_delayed": result["messages_delayed"]}
    if profile is not None:
        report["profile"] = profile.summary
    if opts.trace_txs:
        report["tx_path_ms"] = tx_path(traces, result["trace"]["posted"],
                                       result["trace"]["seen"])
    return report


def nonce_gaps(path: str) -> dict[str, int] | None:
    """The nonce records in the (closed) store at ``path``: ``senders``, ``with_gaps`` (senders
    that skipped a nonce) and ``gaps`` (the skipped nonces still usable, engine/nonces.py);
    None when the store cannot be read."""
    from engine.nonces import NonceWindow, nonce_key
    from engine.store import Store, StoreError

    try:
        store = Store(path, readonly=True)
        try:
            windows = [NonceWindow.decode(v) for _, v in store.state_items(nonce_key(b""))]
        finally:
            store.close()
    except StoreError:
        return None
    lengths = [len(w.gaps) for w in windows]
    return {"senders": len(windows), "with_gaps": sum(1 for n in lengths if n),
            "gaps": sum(lengths)}


def _read_trace(home: str) -> dict[str, dict[str, float]]:
    """A node's trace (``trace_txs``), or nothing when it wrote none."""
    try:
        with open(os.path.join(home, TRACE_FILE), encoding="ascii") as f:
            return parse_trace(f.read())
    except OSError:
        return {}


def passed(report: dict[str, Any]) -> tuple[bool, list[str]]:
    problems = []
    if "baseline" in report:
        problems += [f"baseline (ed25519-blake3): {p}" for p in passed(report["baseline"])[1]]
    if report["lost"]:
        problems.append(f"{report['lost']} accepted transactions were not committed")
    if report["duplicates"]:
        problems.append(f"{report['duplicates']} transactions were committed more than once")
    if not report["nodes_agree"]:
        problems.append("the nodes do not hold the same blocks and app hashes")
    if report["accepted"] == 0:
        problems.append("no transaction was accepted")
    if any(c != 0 for c in report["exit_codes"]):
        problems.append(f"node exit codes {report['exit_codes']}")
    net = report.get("net_latency")
    if net is not None and not all(net["messages_delayed"]):
        problems.append(f"--net-latency-ms: some node delayed no message "
                        f"({net['messages_delayed']}): the latency was not applied")
    return not problems, problems


def _network_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    early = report.get("early_execution")
    if early:
        lines.append(f"  early execution      per node: {early['executions']} blocks, "
                     f"{early['reused']} reused by their decision, {early['discarded']} not used")
    net = report.get("net_latency")
    if net:
        lines.append(f"  network              {net['one_way_ms']} ms one way between nodes (test "
                     f"chaos transport), messages delayed per node {net['messages_delayed']}")
    return lines


def format_summary(report: dict[str, Any]) -> str:
    s, lat, ceil = report["setup"], report["latency_ms"], report["crypto_ceiling"]
    lines = [
        "",
        (f"engine bench tps: {s['validators']} validators, {s['tx_bytes']} B signed kvstore txs, "
         f"LMDB sync on, offered {s['rate']} tx/s, crypto {s.get('crypto', 'ed25519-blake3')}"
         + (f", app {s['app']} {s.get('app_settings') or ''}"
            if s.get("app") not in (None, "kvstore") else "")
         + ("" if s.get("optimistic_execution", True) else ", optimistic execution off")
         + (f", retain_blocks {s['retain_blocks']}" if s.get("retain_blocks") else "")),
        f"  committed TPS        {report['tps']:,.1f} (steady-state window)",
        (f"  latency              p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms "
         f"({lat['samples']} samples)"),
        (f"  transactions         {report['submitted']} offered, {report['accepted']} accepted, "
         f"{report['committed']} committed, {report['lost']} lost, "
         f"{report['duplicates']} duplicated"),
        (f"  blocks               {report['blocks_per_s']} /s, {report['txs_per_block']} txs/block,"
         f" {report['rounds_per_height']} rounds/height"),
        f"  CPU % of one core    {report['cpu_percent']}",
        *_stage_lines(report.get("cpu_us_per_tx") or {}),
        *_phase_lines(report.get("height_phases_ms") or {}),
        *_tx_path_lines(report.get("tx_path_ms")),
        *_nonce_gap_lines(report.get("nonce_gaps")),
        (f"  crypto ceiling       verify_txs on {ceil['threads']} cores, keys cached: "
         f"{ceil['tps']:,.0f} tx/s ({ceil.get('tps_cold_keys', 0):,.0f} cold keys; "
         f"{ceil.get('tps_batches', 0):,.0f} in batches of {ceil.get('batch_txs', 0):,}, one "
         f"envelope per sender, as nodes admit them; {ceil['path']}); TPS is "
         f"{report['tps_fraction_of_ceiling']:.1%} of it"),
        *_network_lines(report),
        (f"  agreement            {'all nodes agree' if report['nodes_agree'] else 'MISMATCH'} "
         f"up to height {report['check']['verified_height']}"
         + (f" (pruned by then, per node: {report['check']['pruned_heights_by_node']} heights, "
            "counted as node 0 reported them during the run)"
            if any(report["check"].get("pruned_heights_by_node") or []) else "")),
    ]
    if "max_sustainable_tps" in report:
        lines.append(
            f"  find-max             {report['max_sustainable_tps']:,} tx/s sustained (committed >= "
            f"{SUSTAINED_FRACTION:.0%}, p50 <= {report['slo_p50_ms']:g} ms): "
            f"{report['fraction_of_ceiling']:.1%} of the crypto ceiling, "
            f"{report['fraction_of_physical_limit']:.1%} of the physical limit "
            f"(ceiling / {s['validators']} validators)")
        for v in report["rungs"]:
            lines.append(f"    {v['offered_rate']:>8,} tx/s  {v['why']}")
    base = report.get("baseline")
    if base is not None:
        blat = base["latency_ms"]
        lines.append(f"  baseline (same run)  ed25519-blake3: {base['tps']:,.1f} TPS, p50 "
                     f"{blat['p50']} ms, p99 {blat['p99']} ms, {base['lost']} lost; crypto "
                     f"ceiling {base['crypto_ceiling']['tps']:,.0f} tx/s "
                     f"({base['crypto_ceiling']['path']})")
        lines.append(f"  ratio                {s.get('crypto')} / ed25519-blake3 = "
                     f"{report['tps_vs_baseline']}x committed TPS")
    if len(report["steps"]) > 1:
        lines.append("  sweep                offered -> committed tx/s, p50/p99 ms")
        for st in report["steps"]:
            lines.append(f"    {st['offered_rate']!s:>8} -> {st['tps']:>10,.1f}   "
                         f"{st['latency_ms']['p50']} / {st['latency_ms']['p99']}")
    return "\n".join(lines)


def _stage_lines(per_node: dict[str, dict[str, float]]) -> list[str]:
    """The mean over nodes of CPU us per committed transaction, by stage (largest first)."""
    if not per_node:
        return []
    keys = [k for k in next(iter(per_node.values())) if k != "total"]
    mean = {k: sum(p.get(k, 0.0) for p in per_node.values()) / len(per_node) for k in keys}
    total = sum(p["total"] for p in per_node.values()) / len(per_node)
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(mean.items(), key=lambda kv: -kv[1]))
    return [f"  CPU us per tx        {total:.1f} per node (mean of {len(per_node)}): {parts}"]


def _phase_lines(per_node: dict[str, dict[str, float]]) -> list[str]:
    """The mean over nodes of each phase of a height, in ms, in the order a height passes."""
    if not per_node:
        return []
    parts = []
    for phase in (*PHASES, "height"):
        values = [p[phase] for p in per_node.values() if phase in p]
        if values:
            parts.append(f"{phase} {sum(values) / len(values):.1f}")
    return [f"  height phases ms     mean of {len(per_node)} nodes: " + ", ".join(parts)]


def _nonce_gap_lines(gaps: dict[str, int] | None) -> list[str]:
    if not gaps:
        return []
    return [(f"  nonce records        {gaps['senders']:,} senders, {gaps['with_gaps']:,} of them "
             f"with skipped nonces ({gaps['gaps']:,} gaps, node0)")]


def _tx_path_lines(path: dict[str, Any] | None) -> list[str]:
    """--trace-txs: the median of each segment of a transaction's path, in path order."""
    if not path:
        return []
    if not path.get("used"):
        return [(f"  transaction path     {path.get('traced', 0)} traced, none with a "
                 "complete path")]
    parts = ", ".join(f"{name} {st['p50']:.1f}" for name, st in path["segments"].items())
    whole = path["posted_to_seen"]
    return [(f"  transaction path     p50 ms over {path['used']} traced: {parts}; posted to "
             f"seen {whole['p50']:.1f} (p90 {whole['p90']:.1f})")]


def run_tps_command(opts: TpsOptions) -> tuple[dict[str, Any] | None, bool]:
    try:
        report = run_tps(opts)
    except RuntimeError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return None, False
    print(format_summary(report))
    ok, problems = passed(report)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if ok:
        print("PASS: every accepted transaction committed exactly once on every node")
    return report, ok


def _print_logs(workdir: str) -> None:
    for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []:
        if name.endswith(".log"):
            with open(os.path.join(workdir, name), errors="replace") as f:
                tail = f.read()[-2000:]
            print(f"--- {name} ---\n{tail}", file=sys.stderr)


class Profiler:
    """py-spy recording of one node process during the (last) load phase."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.proc: subprocess.Popen | None = None
        self.summary: dict[str, Any] = {}
        os.makedirs(out_dir, exist_ok=True)

    def start(self, pid: int, duration_s: float) -> None:
        exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(exe):
            self.summary = {"error": "py-spy is not installed (pip install py-spy)"}
            return
        self.raw = os.path.join(self.out_dir, "node0.folded")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(duration_s))),
             "--rate", "100", "--nonblocking", "--format", "raw", "--output", self.raw],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self) -> None:
        if self.proc is None:
            return
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not os.path.exists(self.raw):
            self.summary = {"error": (err or b"").decode(errors="replace")[-500:]}
            return
        from engine.benchmarks.profile import summarise_folded

        self.summary = summarise_folded(self.raw)
        self.summary["folded"] = self.raw
