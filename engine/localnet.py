"""Local validator processes on one machine: free port ranges, `engine start` children and their
graceful shutdown. Shared by `engine demo`, `engine bench tps`, the fault runner and the tests."""
from __future__ import annotations

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
        base = rng.randrange(20000, 60000 - count, 2)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range found")


def spawn_node(home: str, log_path: str) -> subprocess.Popen:
    """Start `engine start --home HOME` in its own session, output to log_path."""
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "engine", "start", "--home", home],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


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
