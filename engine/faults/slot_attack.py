"""The handshake-slot attack of issue 13 (finding 2), end to end on real validator processes.

Idle sockets that reconnect as soon as they are closed, from 16 loopback addresses other than
the validators' own, run against every node of a 4-validator testnet; while they run, two
validators are killed (SIGKILL) and restarted. Before the fix the 32 pending-handshake slots
were global and the restarted validators could not get back in: every height stayed put. The
run passes when

- the attack happened: the attackers opened connections all along, and every node counted
  refused handshakes for lack of slots (``engine_peer_faults{reason="handshake_busy*"}``), so
  the stranger slots were full;
- honest peers still connect: each restarted validator is connected to all three others again
  while the attack still runs, and every node commits new heights during the attack;
- no node log holds a traceback.

``tests/faults/test_slot_attack.py`` runs a short version in ``make test`` and a longer one
(more restarts) in ``make test-faults``.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field

from engine import config
from engine.localnet import free_base_port, get_json, shutdown_nodes, spawn_node, wait_ready

__all__ = ["SlotAttackFailed", "SlotAttackReport", "run_slot_attack", "slot_hogs"]

#: Attackers' source addresses: 127/8 is all loopback on Linux; the validators use 127.0.0.1.
ATTACK_SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 18))
_BUSY = re.compile(r'^engine_peer_faults_total\{reason="(handshake_busy[a-z_]*)"\} ([0-9.e+]+)$',
                   re.MULTILINE)


class SlotAttackFailed(AssertionError):
    """The attack did not happen as required, or honest peers were locked out."""


@dataclass
class SlotAttackReport:
    connections_opened: int = 0
    #: Per node: refused handshakes for lack of slots, by reason (read at the end).
    busy_refusals: list[dict[str, float]] = field(default_factory=list)
    #: Seconds from each restart until the restarted node had all its peers back.
    reconnect_s: list[float] = field(default_factory=list)
    heights_before: list[int] = field(default_factory=list)
    heights_after: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (f"slot attack: {self.connections_opened} attacker connections; refusals "
                f"{self.busy_refusals}; reconnects after restart "
                f"{[round(s, 1) for s in self.reconnect_s]} s; heights {self.heights_before} "
                f"-> {self.heights_after}")


async def slot_hogs(port: int, stop: asyncio.Event, opened: list[int],
                    sockets: int = 48) -> None:
    """``sockets`` idle connections to ``port`` from ATTACK_SOURCES, each reconnecting as soon
    as the node closes it, until ``stop`` is set; ``opened[0]`` counts the connections made."""

    async def hog(source: str) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                               local_addr=(source, 0))
            except OSError:
                await asyncio.sleep(0.05)  # the node is down (restarting): try again soon
                continue
            opened[0] += 1
            read = asyncio.ensure_future(reader.read())
            halt = asyncio.ensure_future(stop.wait())
            await asyncio.wait([read, halt], return_when=asyncio.FIRST_COMPLETED)
            for f in (read, halt):
                f.cancel()
            writer.close()

    await asyncio.gather(*(hog(ATTACK_SOURCES[i % len(ATTACK_SOURCES)])
                           for i in range(sockets)))


async def _metrics_busy(http, rpc_url: str) -> dict[str, float] | None:
    try:
        async with http.get(f"{rpc_url}/metrics") as r:
            text = await r.text() if r.status == 200 else None
    except Exception:  # noqa: BLE001 - a node not answering is reported by the caller
        return None
    if text is None:
        return None
    return {reason: float(n) for reason, n in _BUSY.findall(text)}


async def run_slot_attack(workdir: str, *, restart_rounds: int = 1, restarted=(1, 2),
                          down_s: float = 1.0, reconnect_timeout_s: float = 20.0,
                          heights_during_attack_min: int = 2,
                          log=print) -> SlotAttackReport:
    """Run the attack (see the module docstring); SlotAttackFailed when a requirement fails."""
    import aiohttp

    os.makedirs(workdir, exist_ok=True)
    homes = config.init_testnet(workdir, 4, base_port=free_base_port(8), chain_id="slots")
    urls = [h.rpc_url for h in homes]
    logs = [os.path.join(workdir, f"node{i}.log") for i in range(4)]
    procs: list[subprocess.Popen] = [spawn_node(h.path, logs[i]) for i, h in enumerate(homes)]
    report = SlotAttackReport()
    stop = asyncio.Event()
    opened = [0]
    hogs: list[asyncio.Task] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await wait_ready(http, urls, procs, 60, height_min=2)
            hogs = [asyncio.create_task(slot_hogs(h.config.p2p_port, stop, opened))
                    for h in homes]
            await asyncio.sleep(2.0)  # the slots fill
            report.heights_before = [await _height(http, u) for u in urls]
            for round_no in range(restart_rounds):
                for i in restarted:
                    procs[i].send_signal(signal.SIGKILL)
                    procs[i].wait()
                await asyncio.sleep(down_s)
                started = time.monotonic()
                for i in restarted:
                    os.replace(logs[i], f"{logs[i]}.{round_no}")  # each process its own log
                    procs[i] = spawn_node(homes[i].path, logs[i])
                for i in restarted:
                    report.reconnect_s.append(await _wait_peers(
                        http, urls[i], procs[i], started, reconnect_timeout_s, opened))
            target = [h + heights_during_attack_min for h in report.heights_before]
            await _wait_heights(http, urls, target, reconnect_timeout_s)
            report.heights_after = [await _height(http, u) for u in urls]
            for u in urls:
                report.busy_refusals.append(await _metrics_busy(http, u) or {})
            report.connections_opened = opened[0]
            # Still under attack at the end: the connections kept coming.
            before = opened[0]
            await asyncio.sleep(0.5)
            if opened[0] == before:
                raise SlotAttackFailed("the attackers stopped opening connections "
                                       f"({before} in all): the attack was not running")
    finally:
        stop.set()
        await asyncio.gather(*hogs, return_exceptions=True)
        shutdown_nodes(procs, 10)
    log(report.summary())
    for i, busy in enumerate(report.busy_refusals):
        if sum(busy.values()) <= 0:
            raise SlotAttackFailed(f"node{i} never refused a handshake for lack of slots: the "
                                   f"attack did not fill them ({report.summary()})")
    tracebacks = [p for p in sorted(os.listdir(workdir)) if p.startswith("node") and ".log" in p
                  and "Traceback" in _read(os.path.join(workdir, p))]
    if tracebacks:
        raise SlotAttackFailed(f"tracebacks in {tracebacks}")
    return report


async def _height(http, url: str) -> int:
    s = await get_json(http, f"{url}/status")
    if s is None:
        raise SlotAttackFailed(f"{url}/status did not answer")
    return int(s["latest_height"])


async def _wait_peers(http, url: str, proc: subprocess.Popen, started: float, timeout_s: float,
                      opened: list[int]) -> float:
    """Seconds until the node at ``url`` has its three peers; SlotAttackFailed otherwise."""
    during = opened[0]
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise SlotAttackFailed(f"{url}: the restarted node exited ({proc.returncode})")
        s = await get_json(http, f"{url}/status", 2.0)
        if s is not None and len(s["peers"]) >= 3:
            if opened[0] == during:
                raise SlotAttackFailed("no attacker connection was opened while the restarted "
                                       "node reconnected: it was not under attack")
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    s = await get_json(http, f"{url}/status", 2.0)
    raise SlotAttackFailed(f"{url}: restarted validator not connected to its 3 peers within "
                           f"{timeout_s:.0f} s under the slot attack (peers: "
                           f"{None if s is None else s['peers']})")


async def _wait_heights(http, urls: list[str], target: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = await asyncio.gather(*(get_json(http, f"{u}/status", 2.0) for u in urls))
        if all(s is not None and s["latest_height"] >= t for s, t in zip(states, target)):
            return
        await asyncio.sleep(0.2)
    raise SlotAttackFailed(f"heights did not reach {target} within {timeout_s:.0f} s under the "
                           "slot attack")


def _read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()
