"""What a benchmark report was measured on: CPU, cores, versions, native paths and git commit.

Numbers from two machines are only comparable through the ratios, so every report carries this
block and `engine bench compare` prints the two side by side.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

#: CPU flags worth recording (the ones the native kernels dispatch on or that change speed).
CPU_FLAGS_OF_INTEREST = ("sse4_1", "avx", "avx2", "bmi2", "adx", "avx512f", "avx512vl",
                         "avx512bw", "avx512ifma", "sha_ni", "asimd", "sha2")
PACKAGES = ("engine", "numpy", "blake3", "lmdb", "cryptography", "pynacl", "aiohttp", "uvloop",
            "msgpack", "Cython")


def _cpuinfo() -> tuple[str, list[str]]:
    model: str = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value.split()
    except OSError:
        pass
    return model, flags


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(path: str | None = None) -> str:
    """The commit of the working tree (with ``-dirty`` when it has changes), or ``unknown``."""
    where = path or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=10, check=False)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=10, check=False)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model, flags of interest, cores, memory, OS, Python, package versions, native paths,
    git commit."""
    import engine

    model, flags = _cpuinfo()
    try:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory_bytes = 0
    try:
        cores_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cores_usable = os.cpu_count() or 1
    return {
        "cpu_model": model,
        "cpu_flags": [f for f in CPU_FLAGS_OF_INTEREST if f in flags],
        "cores": os.cpu_count() or 1,
        "cores_usable": cores_usable,
        "memory_bytes": memory_bytes,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "versions": _versions(),
        "native": engine.native_info(),
        "git_commit": git_commit(),
    }


def describe(info: dict[str, Any]) -> str:
    """One line for the top of a report."""
    kernels = ", ".join(f"{k}={v}" for k, v in (info.get("native", {}).get("kernels") or {}).items())
    return (f"{info.get('cpu_model', '?')}, {info.get('cores_usable', '?')} cores, "
            f"{info.get('python', '?')}, native {kernels or '?'}, "
            f"commit {str(info.get('git_commit', '?'))[:12]}")
