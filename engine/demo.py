"""`engine demo` / `make demo`: a local validator network under load, watched live.

Creates N validator homes in a temporary folder (``engine testnet``), starts each as its own
``engine start`` process on 127.0.0.1, and runs a load generator that signs kvstore transactions
(``key=value``) and posts them in batches to the nodes' ``POST /txs``. A live view (rich) shows
height, committed TPS, latency and each node's status; at the end a summary gives blocks,
transactions, TPS, p50/p99 latency and whether every node agrees on the last common block and
app hash. Every process it started is stopped (SIGTERM, then SIGKILL after a grace period),
whatever happens, and the temporary folder is removed unless ``--keep``.

``--crypto sm2-sm3`` runs the same network on the national-cryptography suite (SM2 keys and
signatures, SM3 hashes: engine/suite.py). The summary's no-loss line counts transactions a node
accepted that no block holds after the drain; any makes the demo fail.

Latency is measured from the moment a transaction is posted to the moment the demo sees its
block committed on node 0 (polled every ``POLL_MS``), so it includes up to one poll interval.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import aiohttp

from engine import tx
from engine.config import init_testnet
from engine.localnet import free_base_port, get_json, shutdown_nodes, spawn_node, wait_ready
from engine.rpc import join_envelopes
from engine.suite import Suite, get_suite

POLL_MS = 100
STARTUP_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 8.0
SHUTDOWN_GRACE_S = 10.0
BATCH_INTERVAL_MS = 50
LOAD_REQUESTS_IN_FLIGHT = 8
#: Further tries (a second apart) of the final agreement check when a node did not answer.
AGREEMENT_RETRIES = 10

__all__ = ["run_demo"]


@dataclass
class _Stats:
    started: float = field(default_factory=time.monotonic)
    submitted: int = 0
    rejected: int = 0
    committed: int = 0
    blocks: int = 0
    first_height: int = 0
    last_height: int = 0
    latencies_s: list[float] = field(default_factory=list)
    pending: dict[str, float] = field(default_factory=dict)  # tx id hex -> submit time
    tps_window: list[tuple[float, int]] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def recent_tps(self, window_s: float = 5.0) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in self.tps_window if now - t <= window_s]
        self.tps_window = recent
        if not recent:
            return 0.0
        span = max(now - recent[0][0], 1e-3) if len(recent) > 1 else window_s
        return sum(n for _, n in recent) / max(span, 1.0)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(http, urls: list[str], chain_id: str, rate: int, stop: asyncio.Event,
                stats: _Stats, suite: Suite) -> None:
    """Offer ``rate`` signed transactions per second, in batches every BATCH_INTERVAL_MS, with
    up to LOAD_REQUESTS_IN_FLIGHT batches in flight (so a slow answer does not lower the rate)."""
    # One sender per node the batches go to: each sender's nonces reach one mempool in order
    # (nonces are replay protection: engine/nonces.py).
    keys = [suite.generate_key() for _ in urls]
    nonces = [0] * len(urls)
    nonce = 0
    per_batch = max(1, rate * BATCH_INTERVAL_MS // 1000)
    in_flight = asyncio.Semaphore(LOAD_REQUESTS_IN_FLIGHT)
    tasks: set[asyncio.Task] = set()
    target = 0
    next_at = time.monotonic()
    while not stop.is_set():
        envelopes = []
        sender = target % len(urls)
        for _ in range(per_batch):
            nonce += 1
            nonces[sender] += 1
            envelopes.append(tx.encode_tx(keys[sender], nonces[sender],
                                          f"key{nonce % 5000}={nonce}".encode(), chain_id))
        await in_flight.acquire()
        task = asyncio.create_task(_post_batch(http, urls[target % len(urls)], envelopes,
                                               stats, in_flight, suite))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        target += 1
        next_at += BATCH_INTERVAL_MS / 1000
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*tasks)


async def _post_batch(http, url: str, envelopes: list[bytes], stats: _Stats,
                      in_flight: asyncio.Semaphore, suite: Suite) -> None:
    # Register before sending: the commit may be seen before the answer arrives.
    ids = [i.hex() for i in suite.hash_many(envelopes)]
    sent_at = time.monotonic()
    for tx_id in ids:
        stats.pending[tx_id] = sent_at
    try:
        async with http.post(f"{url}/txs", data=join_envelopes(envelopes),
                             timeout=aiohttp.ClientTimeout(total=10)) as r:
            out = await r.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        stats.errors.append(f"POST /txs to {url}: {e}")
        out = {"accepted": 0, "rejected": len(ids),
               "errors": [{"index": i} for i in range(len(ids))]}
    finally:
        in_flight.release()
    for err in out.get("errors", []):
        stats.pending.pop(ids[err["index"]], None)
    stats.submitted += out.get("accepted", 0)
    stats.rejected += out.get("rejected", 0)


async def _watch(http, urls: list[str], stop: asyncio.Event, stats: _Stats) -> None:
    """Follow node 0's blocks (transactions committed, latency) and every node's status."""
    while not stop.is_set():
        states = await asyncio.gather(*(get_json(http, f"{u}/status") for u in urls))
        stats.nodes = [s or {} for s in states]
        head = states[0]["latest_height"] if states[0] else stats.last_height
        while stats.last_height < head:
            block = await get_json(http, f"{urls[0]}/block/{stats.last_height + 1}")
            if block is None:
                break
            now = time.monotonic()
            stats.last_height += 1
            stats.blocks += 1
            stats.committed += block["num_txs"]
            stats.tps_window.append((now, block["num_txs"]))
            for tx_id in block["tx_ids"]:
                sent = stats.pending.pop(tx_id, None)
                if sent is not None:
                    stats.latencies_s.append(now - sent)
        await asyncio.sleep(POLL_MS / 1000)


def _render(stats: _Stats, duration_s: float):
    from rich.table import Table

    elapsed = time.monotonic() - stats.started
    table = Table(title=f"engine demo — {elapsed:5.1f} s of {duration_s:.0f} s   "
                        f"height {stats.last_height}   "
                        f"TPS {stats.recent_tps():7.1f} (last 5 s)   "
                        f"committed {stats.committed}   "
                        f"latency p50 {_percentile(stats.latencies_s, .5) * 1000:5.0f} ms "
                        f"p99 {_percentile(stats.latencies_s, .99) * 1000:5.0f} ms")
    for col in ("node", "height", "round/step", "peers", "mempool", "block hash", "app hash"):
        table.add_column(col)
    for s in stats.nodes:
        c = s.get("consensus") or {}
        table.add_row(s.get("moniker", "down"), str(s.get("latest_height", "-")),
                      f"{c.get('round', '-')}/{c.get('step', '-')}", str(len(s.get("peers", []))),
                      str((s.get("mempool") or {}).get("txs", "-")),
                      s.get("latest_block_hash", "")[:12], s.get("latest_app_hash", "")[:12])
    return table


async def _agreement(http, urls: list[str]) -> tuple[bool, int, list[tuple[str, str]]]:
    """Whether all nodes hold the same block and app hash at the highest common height."""
    states = await asyncio.gather(*(get_json(http, f"{u}/status") for u in urls))
    if any(s is None for s in states):
        return False, 0, []
    common = min(s["latest_height"] for s in states if s is not None)
    if common == 0:
        return False, 0, []
    blocks = await asyncio.gather(*(get_json(http, f"{u}/block/{common}") for u in urls))
    pairs = [(b["hash"], b["result_app_hash"]) if b else ("?", "?") for b in blocks]
    return len(set(pairs)) == 1 and "?" not in pairs[0], common, pairs


async def _run(urls, chain_id, duration_s, rate, live, procs,
               suite: Suite) -> tuple[_Stats, bool, int, list]:
    stats = _Stats()
    async with aiohttp.ClientSession() as http:
        await wait_ready(http, urls, procs, STARTUP_TIMEOUT_S)
        status0 = await get_json(http, f"{urls[0]}/status")
        stats.last_height = stats.first_height = status0["latest_height"] if status0 else 0
        stats.started = time.monotonic()
        stop_load, stop_watch = asyncio.Event(), asyncio.Event()
        load = asyncio.create_task(_load(http, urls, chain_id, rate, stop_load, stats, suite))
        watch = asyncio.create_task(_watch(http, urls, stop_watch, stats))
        await _display(stats, duration_s, live)
        stop_load.set()
        await load
        drain_until = time.monotonic() + DRAIN_TIMEOUT_S
        while stats.pending and time.monotonic() < drain_until:
            await asyncio.sleep(0.2)
        stop_watch.set()
        await watch
        ok, height, pairs = await _agreement(http, urls)
        for _ in range(AGREEMENT_RETRIES):  # a node busy catching up may answer late
            if pairs and all("?" not in p for p in pairs):
                break
            await asyncio.sleep(1.0)
            ok, height, pairs = await _agreement(http, urls)
    return stats, ok, height, pairs


async def _display(stats: _Stats, duration_s: float, live: bool) -> None:
    end = time.monotonic() + duration_s
    if live:
        from rich.live import Live

        with Live(_render(stats, duration_s), refresh_per_second=4) as view:
            while time.monotonic() < end:
                await asyncio.sleep(0.25)
                view.update(_render(stats, duration_s))
        return
    next_line = 0.0
    while time.monotonic() < end:
        if time.monotonic() >= next_line:
            heights = [s.get("latest_height", "-") for s in stats.nodes]
            print(f"[{time.monotonic() - stats.started:5.1f} s] heights {heights} "
                  f"committed {stats.committed} TPS {stats.recent_tps():.1f}", flush=True)
            next_line = time.monotonic() + 2
        await asyncio.sleep(0.25)


def run_demo(*, validators: int = 4, duration_s: float = 30.0, rate: int = 2000,
             base_port: int = 0, keep: bool = False, live: bool = True,
             crypto: str | None = None) -> int:
    if type(validators) is not int or not 1 <= validators <= 16:
        raise SystemExit("--validators must be between 1 and 16")
    if not 1 <= duration_s <= 3600 or not 1 <= rate <= 100_000:
        raise SystemExit("--duration must be 1..3600 s and --rate 1..100000 tx/s")
    suite = get_suite(crypto)  # ValueError naming the choices, before anything starts
    base = base_port or free_base_port(2 * validators)
    workdir = tempfile.mkdtemp(prefix="engine-demo-")
    procs: list[subprocess.Popen] = []
    try:
        homes = init_testnet(workdir, validators, base_port=base, chain_id="demo",
                             crypto=suite.name)
        for h in homes:
            procs.append(spawn_node(h.path, os.path.join(workdir, f"{h.config.moniker}.log")))
        print(f"{validators} validators started in {workdir} (p2p/rpc ports {base}.."
              f"{base + 2 * validators - 1}); crypto {suite.name}; load {rate} tx/s for "
              f"{duration_s:.0f} s", flush=True)
        stats, agreed, height, pairs = asyncio.run(
            _run([h.rpc_url for h in homes], "demo", duration_s, rate, live, procs, suite))
    except (RuntimeError, OSError, ValueError) as e:
        print(f"demo failed: {e}", file=sys.stderr)
        _print_logs(workdir, procs)
        return 1
    finally:
        codes = shutdown_nodes(procs, SHUTDOWN_GRACE_S)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    _print_summary(stats, agreed, height, pairs, codes, duration_s)
    if keep:
        print(f"homes and logs kept in {workdir}")
    lost = len(stats.pending)
    return 0 if agreed and stats.committed > 0 and not lost and all(c == 0 for c in codes) \
        else 1


def _print_logs(workdir: str, procs: list[subprocess.Popen]) -> None:
    for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []:
        if name.endswith(".log"):
            with open(os.path.join(workdir, name), errors="replace") as f:
                tail = f.read()[-2000:]
            print(f"--- {name} ---\n{tail}", file=sys.stderr)


def _print_summary(stats: _Stats, agreed: bool, height: int, pairs: list, codes: list,
                   duration_s: float) -> None:
    elapsed = max(time.monotonic() - stats.started, 1e-3)
    lat = stats.latencies_s
    print()
    print("summary")
    print(f"  blocks committed     {stats.blocks} (heights {stats.first_height + 1}.."
          f"{stats.last_height})")
    print(f"  transactions         {stats.committed} committed, {stats.submitted} accepted, "
          f"{stats.rejected} rejected, {len(stats.pending)} still pending")
    print(f"  throughput           {stats.committed / elapsed:.1f} tx/s over {elapsed:.1f} s "
          f"(load ran {duration_s:.0f} s)")
    print(f"  latency              p50 {_percentile(lat, .5) * 1000:.0f} ms, "
          f"p99 {_percentile(lat, .99) * 1000:.0f} ms ({len(lat)} samples)")
    print(f"  no loss              {'yes' if not stats.pending else 'NO'}: "
          f"{len(stats.pending)} accepted transactions not committed after the drain")
    if pairs:
        print(f"  agreement at height {height}: {'all nodes agree' if agreed else 'MISMATCH'} "
              f"(block {pairs[0][0][:16]}, app hash {pairs[0][1][:16]})")
    else:
        print("  agreement            could not be checked (a node did not answer)")
    print(f"  shutdown             exit codes {codes}")
    if stats.errors:
        print(f"  load errors          {len(stats.errors)} (first: {stats.errors[0]})")
