"""CLI errors as a user meets them: `python -m engine ...` in a subprocess, checking the exit
status, the one-line `error: ...` on stderr and that nothing was half-done."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"


def engine(*args: str, cwd=None, env_extra: dict | None = None,
           timeout_s: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("ENGINE_FORCE_ISA", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "engine", *args], check=False, capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout_s)


def test_init_refuses_an_existing_home_and_leaves_it_alone(tmp_path):
    home = tmp_path / "solo"
    first = engine("init", "--home", str(home), "--chain-id", "solo")
    assert first.returncode == 0 and json.loads(first.stdout)["chain_id"] == "solo"
    files = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    again = engine("init", "--home", str(home), "--chain-id", "other")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip() == f"error: home {str(home)!r} is already initialised"
    assert {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()} == files


def test_native_info_reports_paths_and_the_forced_isa():
    plain = engine("native-info")
    assert plain.returncode == 0, plain.stderr
    info = json.loads(plain.stdout)
    assert set(info) >= {"cpu_features", "isa_supported", "forced_isa", "kernels"}
    assert info["forced_isa"] is None and info["isa_supported"][0] == "portable"
    assert set(info["kernels"]) >= {"blake3", "ed25519"}
    assert all(path in info["isa_supported"] for path in info["kernels"].values())
    forced = json.loads(engine("native-info", env_extra={"ENGINE_FORCE_ISA": "portable"}).stdout)
    assert forced["forced_isa"] == "portable"
    assert forced["kernels"]["blake3"] == forced["kernels"]["ed25519"] == "portable"
    # A value that names no path is reported as such rather than silently dropped.
    bogus = engine("native-info", env_extra={"ENGINE_FORCE_ISA": "sse9"})
    assert bogus.returncode == 0 and json.loads(bogus.stdout)["forced_isa"] == "invalid"


def test_testnet_hosts_must_match_the_validators(tmp_path):
    out = tmp_path / "net"
    bad = engine("testnet", "--validators", "2", "--output", str(out), "--hosts", "a,b,c")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: hosts lists 3 hosts for 2 validators"
    assert not out.exists()
    ok = engine("testnet", "--validators", "2", "--output", str(out), "--base-port", "31100",
                "--hosts", "10.0.0.1,10.0.0.2")
    assert ok.returncode == 0, ok.stderr
    assert "10.0.0.1:31100" in ok.stdout and "10.0.0.2:31102" in ok.stdout
    config0 = (out / "node0" / "config.toml").read_text()
    assert "10.0.0.2" in config0 and 'p2p_host = "0.0.0.0"' in config0


@pytest.mark.parametrize("content, message", [
    ("nonsense = [", "cannot read scenario"),
    ('name = "x"\nnonsense = 1\n', r"unknown settings \['nonsense'\]"),
    ('name = "x"\nvalidators = 0\n', "validators must be in"),
    (None, "cannot read scenario"),  # no such file
])
def test_faults_run_exits_2_on_a_bad_file_before_running_anything(tmp_path, content, message):
    import re

    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content)
    # A good scenario after the bad file must not start: the run stops at the bad one.
    good = min(SCENARIOS.glob("*.toml"))
    result = engine("faults", "run", str(path), str(good), "--workdir", str(tmp_path / "w"),
                    cwd=ROOT, timeout_s=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {path}") and re.search(message, result.stderr)
    assert not (tmp_path / "w").exists() and "ok " not in result.stdout


def test_no_command_and_an_unreachable_node_are_errors():
    assert engine().returncode == 2
    unreachable = engine("status", "--rpc", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("error: ")
