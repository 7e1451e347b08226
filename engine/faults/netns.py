"""Network namespaces for a testnet: one namespace per node, joined by veth pairs to a bridge
in the root namespace (which also gives the runner its route to every node's RPC), and
nftables rules inside the namespaces for partitions and packet loss.

Names carry the runner's pid (``ef<pid>n<i>``, bridge ``efb<pid>``) so a later run can remove
what a killed run left behind (:func:`sweep_stale`). :meth:`Network.close` removes everything
this object created; the runner calls it from ``finally`` and from its signal handlers.
Deleting a namespace deletes its veth end and its nftables table with it.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess

__all__ = ["Network", "missing_tools", "parse_dropped", "sweep_stale"]

TABLE = "engine_faults"
_NAME = re.compile(r"^ef(\d+)n\d+$")
_BRIDGE = re.compile(r"^efb(\d+)$")
_COUNTER = re.compile(r"\bcounter packets (\d+) bytes \d+")


def missing_tools() -> list[str]:
    """Why namespaces cannot be used here (empty when they can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not root")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            reasons.append(f"`{tool}` not installed (apt-get install iproute2 nftables)")
    return reasons


def _run(*args: str, check: bool = True, stdin: str | None = None) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True, input=stdin, timeout=30,
                         check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed: {out.stderr.strip()}")
    return out.stdout


def parse_dropped(listing: str) -> int:
    """The packets counted by the rules of an ``nft list table`` listing (each rule here
    drops what it counts)."""
    return sum(int(n) for n in _COUNTER.findall(listing))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove namespaces and bridges left by runners that no longer exist."""
    removed = []
    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        m = _NAME.match(name)
        if m and not _alive(int(m.group(1))):
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for line in _run("ip", "-o", "link", "show", "type", "bridge", check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        m = _BRIDGE.match(name)
        if m and not _alive(int(m.group(1))):
            _run("ip", "link", "del", name, check=False)
            removed.append(name)
    return removed


def _free_subnet() -> int:
    used = _run("ip", "-4", "addr", check=False) + _run("ip", "-4", "route", check=False)
    choices = [x for x in range(10, 250) if f"10.213.{x}." not in used]
    if not choices:
        raise RuntimeError("no free 10.213.x.0/24 subnet for the test network")
    return random.choice(choices)


class Network:
    """``nodes`` namespaces on one bridge; node i has address ``10.213.X.(i+1)``."""

    def __init__(self, nodes: int):
        if not 1 <= nodes <= 200:
            raise ValueError(f"nodes must be in 1..200, not {nodes!r}")
        tag = str(os.getpid())
        self.bridge = f"efb{tag}"
        self.names = [f"ef{tag}n{i}" for i in range(nodes)]
        self.subnet = _free_subnet()
        self.addresses = [f"10.213.{self.subnet}.{i + 1}" for i in range(nodes)]
        self.gateway = f"10.213.{self.subnet}.254"
        self._created: list[tuple[str, str]] = []

    # ---- life cycle
    def open(self) -> None:
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._created.append(("link", self.bridge))
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for i, (ns, addr) in enumerate(zip(self.names, self.addresses)):
            _run("ip", "netns", "add", ns)
            self._created.append(("netns", ns))
            host_end = f"{self.bridge}v{i}"[:15]
            _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
                 "netns", ns)
            self._created.append(("link", host_end))
            _run("ip", "link", "set", host_end, "master", self.bridge)
            _run("ip", "link", "set", host_end, "up")
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            self._nft(i, f"table inet {TABLE} {{\n"
                         "  chain input { type filter hook input priority 0; }\n"
                         "  chain output { type filter hook output priority 0; }\n}\n")

    def close(self) -> None:
        """Delete every namespace, veth and the bridge (idempotent, never raises)."""
        for kind, name in reversed(self._created):
            if kind == "netns":
                _run("ip", "netns", "del", name, check=False)
            else:
                _run("ip", "link", "del", name, check=False)
        self._created.clear()

    def leftovers(self) -> list[str]:
        """What of ours still exists (must be empty after close)."""
        names = set(_run("ip", "netns", "list", check=False).split())
        links = _run("ip", "-o", "link", "show", check=False)
        return [n for n in self.names if n in names] + (
            [self.bridge] if f" {self.bridge}:" in links else [])

    # ---- running things inside
    def exec_prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i]]

    def _nft(self, i: int, script: str) -> None:
        _run("ip", "netns", "exec", self.names[i], "nft", "-f", "-", stdin=script)

    # ---- faults
    def heal(self) -> dict[int, int]:
        """Remove every partition and loss rule; returns the packets each node's rules dropped
        since the last heal (read just before the rules go: proof that the fault happened)."""
        dropped = self.dropped()
        for i in range(len(self.names)):
            self._nft(i, f"flush chain inet {TABLE} input\nflush chain inet {TABLE} output\n")
        return dropped

    def dropped(self) -> dict[int, int]:
        """Packets dropped so far by each node's rules (every rule counts what it drops)."""
        return {i: parse_dropped(_run("ip", "netns", "exec", ns, "nft", "list", "table",
                                      "inet", TABLE))
                for i, ns in enumerate(self.names)}

    def block(self, src: int, dst: int) -> None:
        """Packets from node ``src`` to node ``dst`` are dropped (one direction)."""
        self._nft(src, f"add rule inet {TABLE} output ip daddr {self.addresses[dst]} "
                       "counter drop\n")
        self._nft(dst, f"add rule inet {TABLE} input ip saddr {self.addresses[src]} "
                       "counter drop\n")

    def partition(self, groups: list[list[int]]) -> None:
        """Nodes in different groups cannot reach each other (both directions)."""
        for a, ga in enumerate(groups):
            for gb in groups[a + 1:]:
                for i in ga:
                    for j in gb:
                        self.block(i, j)
                        self.block(j, i)

    def loss(self, nodes: list[int], pct: int) -> None:
        """Each packet between test nodes entering ``nodes`` is dropped with chance ``pct``%
        (the runner's RPC traffic from the bridge address is spared)."""
        if type(pct) is not int or not 0 <= pct <= 100:
            raise ValueError(f"pct must be an int in 0..100, not {pct!r}")
        if not pct:
            return
        # nft compares against 0..99: 100 % is a rule without the random draw.
        draw = f"numgen random mod 100 < {pct} " if pct < 100 else ""
        for i in nodes:
            self._nft(i, f"add rule inet {TABLE} input ip saddr 10.213.{self.subnet}.0/24 "
                         f"ip saddr != {self.gateway} {draw}counter drop\n")
