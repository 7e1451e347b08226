"""``make soak``: 4 validators under steady signed load for a long time (default 20 minutes),
with periodic kills, pauses and the attacks of issue 13, sampling each node's RSS and open file
descriptors; writes a CSV and a PNG of both over time and fails when either keeps growing or a
node log holds a traceback.

    python -m engine.faults.soak --duration 1200 --out soak-results

Faults, in turns (one every ``--fault-every`` seconds): kill -9 and restart a validator, pause
one (SIGSTOP) for a few seconds, and run the attacks against every node at once: strangers
announcing 15 MiB pre-authentication frames, idle sockets that reconnect as soon as they are
closed (handshake slots), connections reset right after connecting, RPC gzip bombs, half-sent
RPC requests, out-of-range heights on RPC. The load never stops.

"Levels off" is judged on each node's samples after a warm-up: the first quarter of the run, or
longer if the node's bounded id caches (``limits.mempool_committed_ids_cached_max`` and its
siblings, 100,000 ids each) take longer to fill at the rate transactions were accepted - growth
up to a bound is not a leak, and judging it as one would fail every run shorter than the fill
time. The time after the warm-up is cut in thirds: the mean of the last third may exceed the
mean of the first by at most 25 % (anonymous RSS: the heap) or 16 descriptors (fds), and the
file-backed rest of RSS (shared libraries and the LMDB pages the node touched, which grow with
the chain) may grow by at most the size of the node's store (+ 8 MiB). Kills and pauses hit
nodes 1-3; node0 runs the whole time, so at least one heap is judged over the full run. A
restarted node's heap is judged from the time its new process's caches are full, or not at all
when that leaves under a quarter of the run (said in the output). After each attack round, the
anonymous RSS of every warm node must come back within 20 % of what it was before the round.
A run whose judged span would be shorter than a quarter of it fails as too short.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import time
import zlib

from engine import config, limits, tx
from engine.localnet import free_base_port, shutdown_nodes, spawn_node
from engine.net.secure import hello_magic
from engine.rpc.body import join_envelopes
from engine.suite import Suite, get_suite

MiB = 1 << 20


def _proc_sample(pid: int) -> tuple[float, int, float] | None:
    """(RSS in MiB, open fds, anonymous RSS in MiB) of a live process, or None. RSS counts the
    LMDB map's file pages the node touched (reclaimable, growing with the chain); the anonymous
    part is the heap."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = {}
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":"):
                    fields[parts[0][:-1]] = parts[1]
        rss = int(fields["VmRSS"]) / 1024
        anon = int(fields.get("RssAnon", fields["VmRSS"])) / 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd")), anon
    except (OSError, KeyError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- attacks (blocking, threads)
def _preauth_frame(port: int, body: bytes, magic: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    eph = X25519PrivateKey.generate().public_key().public_bytes_raw()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(magic + eph + len(body).to_bytes(4, "little"))
            s.sendall(body)
            while s.recv(65536):
                pass
    except OSError:
        pass


def _reset_connect(port: int) -> None:
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        s.close()
    except OSError:
        pass


def _rpc_raw(port: int, raw: bytes, read: bool = True) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(raw)
            if read:
                while s.recv(65536):
                    pass
    except OSError:
        pass


async def _slot_hogs(port: int, seconds: float) -> None:
    """Idle sockets that reconnect as soon as they are closed, from 16 loopback addresses."""
    end = time.monotonic() + seconds

    async def hog(source: str) -> None:
        while time.monotonic() < end:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
            except OSError:
                await asyncio.sleep(0.05)
                continue
            try:
                await asyncio.wait_for(r.read(), max(0.01, end - time.monotonic()))
            except (asyncio.TimeoutError, OSError):
                pass
            w.close()

    await asyncio.gather(*(hog(f"127.0.0.{2 + i % 16}") for i in range(48)))


async def attack_all(p2p_ports: list[int], rpc_ports: list[int],
                     suite: Suite | None = None) -> None:
    magic = hello_magic(get_suite(suite))  # the chain's own: the frames pass the magic check
    body = os.urandom(15 * MiB)
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = gz.compress(bytes(256 * MiB)) + gz.flush()
    bomb_req = (b"POST /txs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: gzip"
                b"\r\nContent-Length: " + str(len(bomb)).encode() + b"\r\n\r\n" + bomb)
    jobs = []
    for port in p2p_ports:
        jobs += [asyncio.to_thread(_preauth_frame, port, body, magic) for _ in range(4)]
        jobs += [asyncio.to_thread(_reset_connect, port) for _ in range(50)]
        jobs.append(_slot_hogs(port, 8))
    for port in rpc_ports:
        jobs.append(asyncio.to_thread(_rpc_raw, port, bomb_req))
        jobs += [asyncio.to_thread(_rpc_raw, port, b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Le")
                 for _ in range(8)]
        for path in ("/block/9223372036854775808", "/block/%C2%B2",
                     "/blocks?from=18446744073709551616"):
            jobs.append(asyncio.to_thread(
                _rpc_raw, port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .encode()))
    await asyncio.gather(*jobs)


# ---------------------------------------------------------------- load
async def load(rpc_ports: list[int], chain_id: str, rate_tps: int, stop: asyncio.Event,
               stats: dict, suite: Suite | None = None) -> None:
    import aiohttp

    keys = [get_suite(suite).generate_key() for _ in rpc_ports]
    nonces = [0] * len(rpc_ports)
    i = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while not stop.is_set():
            t = i % len(rpc_ports)
            envs = []
            for _ in range(max(1, rate_tps // 4)):
                envs.append(tx.encode_tx(keys[t], nonces[t], b"s%d=%d" % (nonces[t] % 1000, i),
                                         chain_id))
                nonces[t] += 1
            try:
                async with http.post(f"http://127.0.0.1:{rpc_ports[t]}/txs",
                                     data=join_envelopes(envs)) as r:
                    out = await r.json()
                    stats["accepted"] += out.get("accepted", 0)
            except Exception:  # noqa: BLE001 - a killed or paused node: counted, load goes on
                stats["errors"] += 1
            i += 1
            await asyncio.sleep(0.25)


# ---------------------------------------------------------------- the run
def _spawn(home: str, log: str, trace_dir: str | None):
    """spawn_node, with heap snapshots (engine/memtrace.py) when ``trace_dir`` is given."""
    if trace_dir is None:
        return spawn_node(home, log)
    os.environ["ENGINE_TRACEMALLOC"] = trace_dir
    try:
        return spawn_node(home, log)
    finally:
        del os.environ["ENGINE_TRACEMALLOC"]


async def _respawn(home: str, log: str, trace_dir: str | None, events: list, now):
    """Restart a killed node; a process that exits at once (its port taken meanwhile) is
    started again, up to 5 times, and each retry is recorded as an event."""
    for attempt in range(5):
        proc = _spawn(home, log, trace_dir)
        await asyncio.sleep(3)
        if proc.poll() is None:
            return proc
        events.append((now(), f"restart failed ({proc.returncode})"))
        os.rename(log, f"{log}.failed{attempt}")
    return proc


async def soak(duration_s: float, out: str, fault_every_s: float, sample_every_s: float,
               rate_tps: int, seed: int, trace_node: int | None = None,
               crypto: str | None = None) -> int:
    import aiohttp

    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="soak-", dir=out)
    base = free_base_port(8)
    suite = get_suite(crypto)
    homes = config.init_testnet(work, 4, base_port=base, chain_id="soak", crypto=suite.name)
    p2p = [h.config.p2p_port for h in homes]
    rpc = [h.config.rpc_port for h in homes]
    logs = [os.path.join(work, f"node{i}.log") for i in range(4)]
    traces = [os.path.join(out, f"heap-node{i}") if i == trace_node else None for i in range(4)]
    procs = [_spawn(h.path, logs[i], traces[i]) for i, h in enumerate(homes)]
    stop = asyncio.Event()
    stats = {"accepted": 0, "errors": 0}
    samples: list[tuple[float, int, float, int, float]] = []
    events: list[tuple[float, str]] = []
    attacks: list[tuple[float, float]] = []  # (start, end) of each round of attacks
    started = time.monotonic()

    def now() -> float:
        return time.monotonic() - started

    async def sampler() -> None:
        while not stop.is_set():
            for i, p in enumerate(procs):
                got = _proc_sample(p.pid) if p.poll() is None else None
                if got is not None:
                    samples.append((now(), i, got[0], got[1], got[2]))
            await asyncio.sleep(sample_every_s)

    async def faults() -> None:
        turn = 0
        while not stop.is_set():
            await asyncio.sleep(fault_every_s)
            if stop.is_set():
                return
            kind = ("kill", "pause", "attack")[turn % 3]
            turn += 1
            # node0 is never killed or paused: one long-lived process whose heap is judged
            # over the whole run (a restarted one fills its bounded caches again).
            i = 1 + rng.randrange(3)
            events.append((now(), f"{kind} node{i}" if kind != "attack" else "attacks"))
            if kind == "kill":
                procs[i].kill()
                procs[i].wait()
                await asyncio.sleep(1)
                os.rename(logs[i], logs[i] + f".{int(now())}")  # each process has its log
                procs[i] = await _respawn(homes[i].path, logs[i], traces[i], events, now)
            elif kind == "pause":
                os.kill(procs[i].pid, signal.SIGSTOP)
                await asyncio.sleep(4)
                os.kill(procs[i].pid, signal.SIGCONT)
            else:
                t0 = now()
                await attack_all(p2p, rpc, suite)
                attacks.append((t0, now()))

    await asyncio.sleep(3)
    tasks = [asyncio.create_task(sampler()), asyncio.create_task(faults()),
             asyncio.create_task(load(rpc, "soak", rate_tps, stop, stats, suite))]
    await asyncio.sleep(duration_s)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    heights: list[int | None] = [None] * 4
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        # A node the last fault restarted may still be starting: give it 30 s to answer.
        deadline = time.monotonic() + 30
        while None in heights and time.monotonic() < deadline:
            for i, port in enumerate(rpc):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/status") as r:
                        heights[i] = (await r.json())["latest_height"]
                except Exception:  # noqa: BLE001, S110 - retried until the deadline
                    pass
            if None in heights:
                await asyncio.sleep(1)
    shutdown_nodes(procs, 10)

    _write_csv(os.path.join(out, "soak.csv"), samples)
    store_mib = [_store_mib(h.path) for h in homes]
    # The caches fill at the rate transactions really flowed (an overloaded machine accepts
    # less than the load offers), so the warm-up is taken from it.
    flowed = stats["accepted"] / duration_s
    fill = fill_s(flowed)
    warm = max(duration_s / 4, fill)
    print(f"judging growth after a {warm:.0f} s warm-up (bounded id caches fill in {fill:.0f} s "
          f"at the {flowed:.0f} tx/s accepted; {rate_tps} tx/s offered)")
    kills = [(t, int(what.split("node")[1])) for t, what in events if what.startswith("kill")]
    problems = _judge(samples, duration_s, store_mib, warm, kills, fill)
    rows = attack_recovery(samples, attacks, kills)
    judged = {(t0, node) for t0, node, _, _ in attack_recovery(samples, attacks, kills, fill)}
    for t0, node, before, after in rows:
        verdict = "judged" if t0 >= warm and (t0, node) in judged else \
            "warm-up, not judged" if t0 < warm else "restarted in its warm-up, not judged"
        print(f"  attack at {t0:.0f} s, node{node}: anonymous RSS {before:.1f} MiB before, "
              f"{after:.1f} MiB {ATTACK_SETTLE_S:.0f} s after ({after / before:.2f}x; {verdict})")
        if t0 >= warm and (t0, node) in judged and after > 1.2 * before:
            problems.append(f"node{node} kept {after - before:.0f} MiB after the attack at "
                            f"{t0:.0f} s ({before:.0f} -> {after:.0f} MiB, over +20 %)")
    if attacks and not any(t0 >= warm for t0, _ in judged):
        problems.append("no attack round after the warm-up could be judged: run longer")
    if not samples:
        problems.append("no RSS/fd samples were taken")
    tracebacks = [p for p in sorted(os.listdir(work)) if p.startswith("node") and ".log" in p
                  and "Traceback" in _read(os.path.join(work, p))]
    if tracebacks:
        problems.append(f"tracebacks in {tracebacks}")
    _plot(samples, events, os.path.join(out, "soak.png"), duration_s, suite.name)
    print(f"soak {duration_s:.0f} s: heights {heights}, accepted {stats['accepted']} txs, "
          f"{stats['errors']} load errors, {len(events)} faults; {os.path.join(out, 'soak.png')}")
    for i in range(4):
        mine = [(t, r, d, a) for t, n, r, d, a in samples if n == i]
        if mine:
            print(f"  node{i}: RSS {mine[0][1]:.0f} -> max {max(x[1] for x in mine):.0f} -> "
                  f"last {mine[-1][1]:.0f} MiB (anonymous {mine[0][3]:.0f} -> last "
                  f"{mine[-1][3]:.0f}); fds {mine[0][2]} -> max {max(x[2] for x in mine)} "
                  f"-> last {mine[-1][2]}; store {store_mib[i]:.0f} MiB")
    if None in heights or min(h for h in heights if h is not None) < 2:
        problems.append(f"the chain did not advance on every node: heights {heights}")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


# Anonymous RSS is compared before an attack round and this long after it ends: past at least one
# periodic malloc_trim (engine/allocator.py), before the fault after next (a pause).
ATTACK_SETTLE_S = limits.malloc_trim_interval_s + 20


def attack_recovery(samples, attacks, kills,
                    warmup: float = 0.0) -> list[tuple[float, int, float, float]]:
    """(attack start, node, anonymous MiB before, anonymous MiB after settling) for each attack
    round and node that was sampled and ran the whole time as one warm process: not killed
    during the round or its settling, nor in the ``warmup`` seconds before it (a restarted
    process fills its bounded caches again, growth that is not the attack's). 'before' is the
    mean of the 8 s before the round, 'after' the mean of 8 s from ATTACK_SETTLE_S after its
    end."""
    rows = []
    for t0, t1 in attacks:
        lo, hi = t1 + ATTACK_SETTLE_S, t1 + ATTACK_SETTLE_S + 8
        for node in range(4):
            if any(t0 - max(8.0, warmup) <= tk <= hi and nk == node for tk, nk in kills):
                continue
            before = [a for t, n, _, _, a in samples if n == node and t0 - 8 <= t < t0]
            after = [a for t, n, _, _, a in samples if n == node and lo <= t < hi]
            if before and after:
                rows.append((t0, node, sum(before) / len(before), sum(after) / len(after)))
    return rows


def fill_s(rate_tps: float) -> float:
    """Seconds the largest bounded id cache takes to fill at ``rate_tps`` (+10 %)."""
    bound = max(limits.mempool_committed_ids_cached_max, limits.mempool_verified_ids_cached_max,
                limits.preverified_signatures_max)
    return 1.1 * bound / max(rate_tps, 1e-9)


def warmup_s(duration_s: float, rate_tps: float) -> float:
    """Seconds before growth is judged: a quarter of the run, or the time the bounded id caches
    take to fill at ``rate_tps``, whichever is longer."""
    return max(duration_s / 4, fill_s(rate_tps))


def _judge(samples, duration_s: float, store_mib: list[float] | None = None,
           warmup: float | None = None, kills=(), fill: float = 0.0) -> list[str]:
    """Growth problems. The heap of a node is judged from the warm-up on, or, for a node killed
    and restarted, from ``fill`` seconds after its last restart (its new process fills its
    caches again); a node whose judged span is under a quarter of the run is left out of the
    heap check (said in the output), and at least one node must be judged. Descriptors and
    file-backed RSS are judged on every node from the warm-up."""
    problems = []
    start = duration_s / 4 if warmup is None else warmup
    if duration_s - start < duration_s / 4:
        return [(f"run too short to judge: {duration_s:.0f} s, of which the warm-up (bounded "
                 f"caches filling) takes {start:.0f} s; run longer or at a higher rate")]
    heap_judged = 0
    for i in range(4):
        own = max([start] + [tk + fill for tk, nk in kills if nk == i])
        if duration_s - own >= duration_s / 4:
            heap_judged += 1
            o_span = (duration_s - own) / 3
            h_mid = [a for t, n, _, _, a in samples if n == i and own <= t < own + o_span]
            h_last = [a for t, n, _, _, a in samples if n == i and t >= duration_s - o_span]
            if h_mid and h_last:
                anon_mid, anon_last = sum(h_mid) / len(h_mid), sum(h_last) / len(h_last)
                # The heap must level off.
                if anon_last > 1.25 * anon_mid:
                    problems.append(f"node{i} anonymous RSS keeps growing: {anon_mid:.0f} -> "
                                    f"{anon_last:.0f} MiB")
        else:
            print(f"  node{i}: heap not judged (restarted at "
                  f"{max(tk for tk, nk in kills if nk == i):.0f} s, its caches still filling)")
        span = (duration_s - start) / 3
        mid = [(r, d, a) for t, n, r, d, a in samples if n == i and start <= t < start + span]
        last = [(r, d, a) for t, n, r, d, a in samples if n == i and t >= duration_s - span]
        if not mid or not last:
            continue
        rss_mid, rss_last = (sum(x[0] for x in w) / len(w) for w in (mid, last))
        fd_mid, fd_last = (sum(x[1] for x in w) / len(w) for w in (mid, last))
        anon_mid, anon_last = (sum(x[2] for x in w) / len(w) for w in (mid, last))
        # The file-backed rest of RSS is the shared libraries plus the pages of the LMDB map
        # the node touched, which grow with the chain: their growth may not exceed the store.
        file_growth = (rss_last - anon_last) - (rss_mid - anon_mid)
        if store_mib is not None and file_growth > store_mib[i] + 8:
            problems.append(f"node{i} file-backed RSS grew {file_growth:.0f} MiB, more than "
                            f"its {store_mib[i]:.0f} MiB store")
        if fd_last > fd_mid + 16:
            problems.append(f"node{i} open fds keep growing: {fd_mid:.0f} -> {fd_last:.0f}")
    if not heap_judged:
        problems.append("no node ran long enough after its caches filled to judge its heap")
    return problems


def _plot(samples, events, path: str, duration_s: float, crypto: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for i in range(4):
        mine = [(t, r, d, a) for t, n, r, d, a in samples if n == i]
        line, = ax1.plot([x[0] for x in mine], [x[1] for x in mine], label=f"node{i}")
        ax1.plot([x[0] for x in mine], [x[3] for x in mine], ls="--", lw=0.8,
                 color=line.get_color())
        ax2.plot([x[0] for x in mine], [x[2] for x in mine], label=f"node{i}")
    for t, what in events:
        for ax in (ax1, ax2):
            ax.axvline(t, color="grey", alpha=0.3, lw=0.8)
        ax1.text(t, ax1.get_ylim()[1], what, rotation=90, fontsize=6, va="top", alpha=0.6)
    ax1.set_ylabel("RSS (MiB; dashed: anonymous)")
    ax2.set_ylabel("open fds")
    ax2.set_xlabel("seconds")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title(f"soak: 4 validators ({crypto}), {duration_s:.0f} s, kills / pauses / attacks "
                  "(grey)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _write_csv(path: str, samples: list) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "node", "rss_mib", "fds", "rss_anon_mib"])
        w.writerows(samples)


def _store_mib(home: str) -> float:
    """Size of a node's LMDB data file (its touched pages are the file-backed part of RSS)."""
    total = 0
    for root, _, files in os.walk(home):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f == "data.mdb")
    return total / MiB


def _read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.faults.soak", description=__doc__)
    ap.add_argument("--duration", type=float, default=1200.0)
    ap.add_argument("--out", default="soak-results")
    ap.add_argument("--fault-every", type=float, default=30.0)
    ap.add_argument("--sample-every", type=float, default=2.0)
    ap.add_argument("--rate", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trace-node", type=int, choices=range(4), default=None,
                    help="heap snapshots of this node in OUT/heap-nodeN (engine/memtrace.py; "
                    "ENGINE_TRACEMALLOC_EVERY_S sets the interval)")
    ap.add_argument("--crypto", choices=["ed25519-blake3", "sm2-sm3"], default="ed25519-blake3",
                    help="the testnet's crypto suite (keys, signatures, hashes)")
    a = ap.parse_args(argv)
    return asyncio.run(soak(a.duration, a.out, a.fault_every, a.sample_every, a.rate, a.seed,
                            a.trace_node, a.crypto))


if __name__ == "__main__":
    sys.exit(main())

