"""The C kernels build and agree on other architectures: compiled for aarch64 and run under
qemu-user (Debian: gcc-aarch64-linux-gnu, qemu-user).

Without those tools the test is skipped, saying which tool is missing; with
``ENGINE_REQUIRE_CROSS=1`` it fails instead. ``.ci/run`` installs the tools and sets that
switch: CI is where the aarch64 build is meant to be checked, so a failed install there must
turn the run red instead of dropping the check behind a skip counted among the others."""
from __future__ import annotations

import glob
import os
import random
import shutil
import subprocess
from pathlib import Path

import blake3 as blake3_pkg
import pytest

from engine import hashing

ROOT = Path(__file__).resolve().parents[2]
CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"


def require_cross_tools() -> None:
    """Skip (or, with ENGINE_REQUIRE_CROSS=1, fail) naming the cross tools that are missing."""
    missing = [tool for tool in (CC, QEMU) if not shutil.which(tool)]
    if not missing:
        return
    why = (f"aarch64 cross test: {', '.join(missing)} not found (Debian packages "
           "gcc-aarch64-linux-gnu, qemu-user)")
    if os.environ.get("ENGINE_REQUIRE_CROSS") == "1":
        pytest.fail(f"{why}, and ENGINE_REQUIRE_CROSS=1 requires the test to run")
    pytest.skip(why)


def test_aarch64_build_matches(tmp_path):
    require_cross_tools()
    sources = sorted(glob.glob(str(ROOT / "csrc/common/*.c")) + glob.glob(str(ROOT / "csrc/blake3/*.c")))
    exe = tmp_path / "harness"
    subprocess.run([CC, "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", f"-I{ROOT / 'csrc'}",
                    str(Path(__file__).with_name("portable_harness.c")), *sources, "-o", str(exe)],
                   check=True)
    rng = random.Random(5)
    msgs = [rng.randbytes(n) for n in (0, 1, 64, 65, 250, 1024, 1025, 3000)]
    msgs += [rng.randbytes(rng.randrange(0, 2000)) for _ in range(30)]
    out = subprocess.run([QEMU, "-L", "/usr/aarch64-linux-gnu", str(exe), hashing.NODE_KEY.hex(),
                          *[m.hex() for m in msgs]], check=True, capture_output=True, text=True,
                         timeout=120).stdout.split()
    assert out[:-2] == [blake3_pkg.blake3(m).hexdigest() for m in msgs]
    assert out[-2] == hashing.merkle_root(msgs).hex()
    assert out[-1] == "portable"
