"""A 4-process testnet started through the CLI: agreement, kill -9 of one validator, restart
and catch-up, `engine status`, clean SIGTERM shutdown."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from engine.client import Client, ClientError
from engine.hashing import blake3
from tests.node.helpers import free_base_port, make_txs

CHAIN = "proc-net"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def _start(home: str, log_path: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "start", "--home", home], cwd=ROOT,
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def _wait(cond, timeout_s: float, what: str):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            value = cond()
        except ClientError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _height(c: Client) -> int:
    return c.status()["latest_height"]


def _tx_found(c: Client, tx_id: bytes) -> bool:
    try:
        return c.tx(tx_id)["height"] > 0
    except ClientError as e:
        if e.status == 404:
            return False
        raise


def _assert_agree(clients, height: int) -> None:
    blocks = [c.block(height) for c in clients]
    assert len({(b["hash"], b["result_app_hash"]) for b in blocks}) == 1, blocks


def test_four_process_testnet(tmp_path):
    base = free_base_port(8)
    out = _engine("testnet", "--validators", "4", "--output", str(tmp_path), "--base-port",
                  str(base), "--chain-id", CHAIN)
    assert out.returncode == 0, out.stderr
    homes = [str(tmp_path / f"node{i}") for i in range(4)]
    clients = [Client(f"http://127.0.0.1:{base + 2 * i + 1}") for i in range(4)]
    procs = [_start(h, str(tmp_path / f"n{i}.log")) for i, h in enumerate(homes)]
    try:
        _wait(lambda: all(len(c.status()["peers"]) == 3 for c in clients), 30, "a full mesh")
        txs = make_txs(CHAIN, 200)
        assert clients[0].submit_txs(txs[:100])["accepted"] == 100
        assert clients[1].submit_txs(txs[100:])["accepted"] == 100
        last = blake3(txs[-1])
        _wait(lambda: all(_tx_found(c, last) for c in clients), 30, "commit everywhere")
        _assert_agree(clients, min(_height(c) for c in clients))
        # A follower reads the chain with long polls: every transaction, each once.
        seen: list[str] = []
        h = 1
        while len(seen) < len(txs):
            got = clients[2].blocks(h, wait_ms=2000)["blocks"]
            assert got, "no block within the long poll"
            seen += [t for b in got for t in b["tx_ids"]]
            h = got[-1]["height"] + 1
        assert sorted(seen) == sorted(blake3(t).hex() for t in txs)

        # kill -9 one validator: the other three keep committing.
        procs[3].send_signal(signal.SIGKILL)
        procs[3].wait(10)
        h0 = _height(clients[0])
        _wait(lambda: min(_height(c) for c in clients[:3]) >= h0 + 3, 30, "3 of 4 commit")
        # Restarted, it catches up by block sync and agrees.
        procs[3] = _start(homes[3], str(tmp_path / "n3-restart.log"))
        goal = _height(clients[0])
        _wait(lambda: _height(clients[3]) >= goal, 40, "the restarted node to catch up")
        _assert_agree(clients, goal)

        status = _engine("status", "--home", homes[2])
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["chain_id"] == CHAIN
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(20) for p in procs]
    assert codes == [0, 0, 0, 0], codes


def test_status_errors_are_clear(tmp_path):
    out = _engine("status", "--rpc", f"http://127.0.0.1:{free_base_port(1)}")
    assert out.returncode == 2 and "error:" in out.stderr
    out = _engine("status", "--home", str(tmp_path / "missing"))
    assert out.returncode == 2 and "not a directory" in out.stderr


def test_start_errors_are_clear(tmp_path):
    import socket

    out = _engine("start", "--home", str(tmp_path / "missing"))
    assert out.returncode == 2 and "not a directory" in out.stderr
    out = _engine("init", "--home", str(tmp_path / "solo"))
    assert out.returncode == 0
    out = _engine("start", "--home", str(tmp_path / "solo"), "--app", "no.such.module:App")
    assert out.returncode == 2 and "cannot be loaded" in out.stderr
    from engine.config import init_home

    port = free_base_port(2)
    init_home(str(tmp_path / "busy"), p2p_port=port, rpc_port=port + 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        out = _engine("start", "--home", str(tmp_path / "busy"))
    assert out.returncode == 2 and "cannot start the node" in out.stderr, out.stderr
