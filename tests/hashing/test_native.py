"""The native layer's dispatch, reporting and thread pool."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import blake3 as blake3_pkg
import pytest

import engine
from engine import hashing
from tests.conftest import ISA_PATHS


def test_native_info_names_features_and_paths():
    info = engine.native_info()
    assert isinstance(info["cpu_features"], list)
    assert "portable" in info["isa_supported"]
    assert info["kernels"]["blake3"] in info["isa_supported"]
    assert info["cpu_count"] >= 1


@pytest.mark.parametrize("isa", ISA_PATHS)
def test_env_forces_each_path(isa):
    code = ("import json, engine, engine.hashing as h; "
            "print(json.dumps([engine.native_info(), h.blake3(b'abc').hex()]))")
    env = dict(os.environ, ENGINE_FORCE_ISA=isa)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    info, digest = json.loads(out.stdout)
    assert info["forced_isa"] == isa
    assert info["kernels"]["blake3"] == isa
    assert digest == blake3_pkg.blake3(b"abc").hexdigest()


def test_unknown_forced_isa_is_reported_and_harmless():
    code = "import json, engine; print(json.dumps(engine.native_info()))"
    env = dict(os.environ, ENGINE_FORCE_ISA="sse9")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    info = json.loads(out.stdout)
    assert info["forced_isa"] == "invalid"
    assert info["kernels"]["blake3"] == info["isa_supported"][-1]


def test_force_isa_hook_rejects_unknown_path():
    from engine import _native_hash

    with pytest.raises(ValueError, match="isa"):
        _native_hash._force_isa("sse9")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_survives_fork():
    msgs = [os.urandom(100) for _ in range(20000)]
    want = [blake3_pkg.blake3(m).digest() for m in msgs]
    assert hashing.blake3_many(msgs, threads=2) == want  # workers now exist in the parent
    pid = os.fork()
    if pid == 0:
        ok = hashing.blake3_many(msgs, threads=2) == want
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_concurrent_python_threads_share_the_pool():
    import threading

    msgs = [os.urandom(200) for _ in range(10000)]
    want = [blake3_pkg.blake3(m).digest() for m in msgs]
    results = []

    def work():
        for _ in range(5):
            results.append(hashing.blake3_many(msgs, threads=2) == want)
            results.append(hashing.merkle_root(msgs, threads=2) == hashing.merkle_root(msgs, threads=1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results and all(results)
