"""Local validator processes on one machine: free port ranges, `engine start` children and their
graceful shutdown. Shared by `engine demo`, `engine bench tps`, the fault runner and the tests."""
from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import sys
import time


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound right now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int, rng: random.Random | None = None) -> int:
    """A base port such that base .. base + count - 1 are all free right now."""
    rng = rng or random.Random()
    for _ in range(200):
        # Below Linux's ephemeral range (32768-60999): a port picked there can be taken by
        # any outgoing connection while its node is down, and the restart fails to bind.
        base = rng.randrange(20000, 32768 - count, 2)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range found")


def spawn_node(home: str, log_path: str,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `engine start --home HOME` in its own session, output to log_path (``env``: the
    child's environment, default this process's)."""
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "engine", "start", "--home", home],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env)


def shutdown_nodes(procs: list[subprocess.Popen], grace_s: float) -> list[int | None]:
    """SIGTERM every live process, kill those still running after grace_s; the exit codes."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


async def get_json(http, url: str, timeout_s: float = 5.0) -> dict | None:
    """GET url with an aiohttp session: the JSON body of a 200 answer, else None."""
    import aiohttp

    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
            return await r.json() if r.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def wait_ready(http, urls: list[str], procs: list[subprocess.Popen], timeout_s: float, *,
                     height_min: int = 0) -> None:
    """Wait until every node's RPC answers with all peers connected and at least height_min
    committed; RuntimeError when a node exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a node exited during start-up (code {p.returncode})")
        states = await asyncio.gather(*(get_json(http, f"{u}/status") for u in urls))
        if all(s is not None and len(s["peers"]) >= len(urls) - 1
               and s["latest_height"] >= height_min for s in states):
            return
        await asyncio.sleep(0.2)
    what = "connected" + (" and committing" if height_min else "")
    raise RuntimeError(f"nodes not {what} within {timeout_s:.0f} s")
