"""The BLAKE3 team's own C library with its x86-64 assembly kernels, AVX-512 compiled out: the
AVX2 bulk-hashing baseline of issue 18 on a machine whose CPU also has AVX-512.

The `blake3` package (Rust) picks its widest kernel by itself and cannot be told not to, so on an
AVX-512 CPU its bulk rate is its AVX-512 kernel's, not what an AVX2-only machine would measure.
The same team's C implementation, and the very assembly files the Rust crate links on x86-64
Linux (``blake3_{sse2,sse41,avx2}_x86-64_unix.S``), ship as source in Debian's
``librust-blake3-dev``. ``load()`` fetches that package (``apt-get download`` and
``dpkg-deb -x``: the one .deb, none of its Rust dependencies), compiles ``blake3.c``,
``blake3_dispatch.c``, ``blake3_portable.c`` and the three assembly files with
``-DBLAKE3_NO_AVX512 -O3`` into a shared library in a cache directory outside the source tree
(``build/blake3-c/<Debian version>/`` of a source checkout, else ``$XDG_CACHE_HOME/engine/...``;
``ENGINE_BLAKE3_C_CACHE`` overrides), and calls it through ctypes. None of those sources enter
this repository; the only C written here is a one-line function that reports
``sizeof(blake3_hasher)``.

With AVX-512 compiled out, the C dispatch (``blake3_dispatch.c``) picks the AVX2 kernel when the
CPU has AVX2; ``load()`` checks that by asking the library for its SIMD degree (8 lanes: AVX2;
16 would be AVX-512, 4 SSE) and checks its digests against the `blake3` package's, and refuses
the library (None, with the reason from ``why_unavailable()``) otherwise, or when apt-get,
dpkg-deb or a C compiler is missing or the download fails.
"""
from __future__ import annotations

import ctypes
import glob
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEB_PACKAGE = "librust-blake3-dev"
C_SOURCES = ("blake3.c", "blake3_dispatch.c", "blake3_portable.c", "blake3_sse2_x86-64_unix.S",
             "blake3_sse41_x86-64_unix.S", "blake3_avx2_x86-64_unix.S")
CFLAGS = ("-O3", "-fPIC", "-shared", "-DBLAKE3_NO_AVX512")
LIBRARY_NAME = "libblake3_c_avx2.so"
#: Lanes of the kernel the library must pick: AVX2 hashes 8 chunks at a time.
AVX2_SIMD_DEGREE = 8
#: Inputs whose digests must equal the `blake3` package's before the library is used: empty,
#: one byte, one byte past a chunk, and 64 KiB + 7 (a tree of chunks through the SIMD kernel).
CHECK_SIZES = (0, 1, 1025, 65536 + 7)
TOOL_TIMEOUT_S = 300

# The only C this module brings: the hasher's size, so Python allocates exactly that.
_SHIM_C = ('#include <stddef.h>\n#include "blake3.h"\n'
           "size_t engine_b3c_hasher_bytes(void) { return sizeof(blake3_hasher); }\n")


class Unavailable(Exception):
    """The library cannot be fetched, built or trusted here; the message says why."""


@dataclass(frozen=True)
class Blake3C:
    """The loaded library: ``hash(data)`` is BLAKE3's 32-byte digest of ``data``."""

    path: str          # the shared library
    version: str       # what the library reports (blake3_version())
    deb_version: str   # the Debian package it was built from
    simd_degree: int   # lanes of the kernel its dispatch picked (8: AVX2)
    hasher_bytes: int  # sizeof(blake3_hasher)
    _lib: ctypes.CDLL

    @property
    def label(self) -> str:
        """The path name printed next to its figures."""
        return f"BLAKE3 C {self.version} asm, AVX-512 disabled"

    def hash(self, data: bytes | bytearray | memoryview) -> bytes:
        """One-shot init/update/finalize (the GIL is released during each ctypes call).
        Bytes are passed in place; other bytes-like objects are copied first."""
        buf = data if isinstance(data, bytes) else bytes(data)
        hasher = ctypes.create_string_buffer(self.hasher_bytes)
        out = ctypes.create_string_buffer(32)
        self._lib.blake3_hasher_init(hasher)
        self._lib.blake3_hasher_update(hasher, buf, len(buf))
        self._lib.blake3_hasher_finalize(hasher, out, 32)
        return out.raw


def cache_dir() -> Path:
    """Where built libraries are kept: ENGINE_BLAKE3_C_CACHE, else build/blake3-c of a source
    checkout (gitignored), else $XDG_CACHE_HOME/engine/blake3-c."""
    forced = os.environ.get("ENGINE_BLAKE3_C_CACHE")
    if forced:
        return Path(forced)
    root = Path(__file__).resolve().parents[2]
    if (root / "setup.py").is_file() and os.access(root, os.W_OK):
        return root / "build" / "blake3-c"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(xdg) / "engine" / "blake3-c"


def _run(args: list[str], cwd: str) -> str:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"{args[0]} failed: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"{' '.join(args[:2])} exited {done.returncode}: {' / '.join(tail)}")
    return done.stdout


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise Unavailable(f"{tool} not found")
    return path


def deb_version() -> str:
    """The candidate version of the Debian package (apt's local lists; no download)."""
    out = _run([_need("apt-cache"), "show", "--no-all-versions", DEB_PACKAGE], "/")
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise Unavailable(f"apt-cache knows no {DEB_PACKAGE}")


def _compiler() -> str:
    for name in (os.environ.get("CC", ""), "gcc", "cc"):
        if name and shutil.which(name):
            return name
    raise Unavailable("no C compiler (gcc or cc) found")


def build(version: str, folder: Path) -> Path:
    """Fetch the .deb, unpack it in a temporary directory, compile the library into ``folder``
    and remove the sources again; returns the library's path."""
    folder.mkdir(parents=True, exist_ok=True)
    cc = _compiler()
    apt_get, dpkg_deb = _need("apt-get"), _need("dpkg-deb")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        os.chmod(tmp, 0o755)  # apt's sandbox user (_apt) must be able to write the .deb there
        _run([apt_get, "download", f"{DEB_PACKAGE}={version}"], tmp)
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if len(debs) != 1:
            raise Unavailable(f"apt-get download left {len(debs)} .deb files")
        _run([dpkg_deb, "-x", debs[0], "x"], tmp)
        found = glob.glob(os.path.join(tmp, "x/usr/share/cargo/registry/blake3-*/c"))
        if len(found) != 1:
            raise Unavailable(f"{DEB_PACKAGE} {version} holds no blake3-*/c folder")
        src = found[0]
        missing = [s for s in C_SOURCES if not os.path.isfile(os.path.join(src, s))]
        if missing:
            raise Unavailable(f"{DEB_PACKAGE} {version} lacks {', '.join(missing)}")
        shim = os.path.join(tmp, "engine_b3c_shim.c")
        with open(shim, "w", encoding="ascii") as f:
            f.write(_SHIM_C)
        built = os.path.join(tmp, LIBRARY_NAME)
        _run([cc, *CFLAGS, "-I", src, "-o", built, shim,
              *(os.path.join(src, s) for s in C_SOURCES)], tmp)
        target = folder / LIBRARY_NAME
        os.replace(built, target)  # atomic: a concurrent loader sees no half-written library
    return target


def _open(path: Path, deb: str) -> Blake3C:
    lib = ctypes.CDLL(str(path))
    vp, size_t = ctypes.c_void_p, ctypes.c_size_t
    lib.blake3_version.restype = ctypes.c_char_p
    lib.blake3_hasher_init.argtypes = [vp]
    lib.blake3_hasher_update.argtypes = [vp, vp, size_t]
    lib.blake3_hasher_finalize.argtypes = [vp, vp, size_t]
    lib.blake3_simd_degree.restype = size_t  # blake3_dispatch.c's, not static
    lib.engine_b3c_hasher_bytes.restype = size_t
    return Blake3C(str(path), lib.blake3_version().decode(), deb, int(lib.blake3_simd_degree()),
                   int(lib.engine_b3c_hasher_bytes()), lib)


def _check(handle: Blake3C) -> None:
    """Refuse a library that is not the AVX2 kernel or disagrees with the `blake3` package."""
    if handle.simd_degree != AVX2_SIMD_DEGREE:
        raise Unavailable(f"the library's dispatch picked a {handle.simd_degree}-lane kernel, "
                          f"not AVX2's {AVX2_SIMD_DEGREE} (CPU without AVX2?)")
    try:
        import blake3 as blake3_pkg
    except ImportError as e:
        raise Unavailable("the blake3 package, to check the library against, is missing") from e
    for size in CHECK_SIZES:
        data = bytes((i * 7 + 3) & 0xFF for i in range(size))
        if handle.hash(data) != blake3_pkg.blake3(data).digest():
            raise Unavailable(f"the library's digest of {size} bytes differs from the blake3 "
                              f"package's")


@lru_cache(maxsize=1)
def _load() -> tuple[Blake3C | None, str]:
    try:
        if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
            raise Unavailable(f"the unix x86-64 assembly needs x86-64 Linux, not "
                              f"{platform.system()} {platform.machine()}")
        version = deb_version()
        folder = cache_dir() / version
        path = folder / LIBRARY_NAME
        if not path.is_file():
            path = build(version, folder)
        handle = _open(path, version)
        _check(handle)
        return handle, ""
    except (Unavailable, OSError, AttributeError) as e:  # AttributeError: a symbol missing
        return None, f"BLAKE3 C library unavailable: {e}"


def load() -> Blake3C | None:
    """The library, built on first use and cached; None when it cannot be built or trusted here
    (``why_unavailable()`` says why)."""
    return _load()[0]


def why_unavailable() -> str:
    """Why ``load()`` returned None ("" when it did not)."""
    return _load()[1]
