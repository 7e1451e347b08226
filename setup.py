"""Build the engine's native extensions.

Every extension is listed here once. Each kernel keeps one C file per instruction set under
csrc/<primitive>/ and enables that ISA inside the file (target pragmas), so the default build runs
on any x86-64 and compiles on aarch64: no -march=native anywhere. The CPU is inspected at run time
(csrc/common/cpu.c) and ENGINE_FORCE_ISA=portable|avx2|avx512 forces a path.

Switches (environment): ENGINE_BUILD_ONLY=name[,name] builds only the extensions whose module
name contains one of the names (for working on one kernel while another is mid-change);
ENGINE_DEBUG=1 builds -O0 -g with assertions; ENGINE_SANITIZE=1 adds
AddressSanitizer and UBSan (run the tests with LD_PRELOAD=$(gcc -print-file-name=libasan.so)).
"""
import glob
import os
import sys

from setuptools import Extension, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _compile_args() -> list[str]:
    args = ["-Wall", "-Wextra", "-fvisibility=hidden", "-pthread"]
    if _flag("ENGINE_DEBUG") or _flag("ENGINE_SANITIZE"):
        args += ["-O1" if _flag("ENGINE_SANITIZE") else "-O0", "-g", "-UNDEBUG",
                 "-fno-omit-frame-pointer"]
    else:
        args += ["-O3", "-DNDEBUG"]
    if _flag("ENGINE_SANITIZE"):
        args += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    return args


def _link_args() -> list[str]:
    args = ["-pthread"]
    if _flag("ENGINE_SANITIZE"):
        args += ["-fsanitize=address,undefined"]
    return args


def _sources(*patterns: str) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        found += sorted(glob.glob(pattern, recursive=True))
    return [os.path.relpath(p, ROOT) for p in found]


def _pybind_ext(name: str, binding: str, *c_dirs: str) -> Extension | None:
    """A pybind11 binding file plus the C sources of the named csrc/ folders."""
    if not os.path.exists(os.path.join(ROOT, binding)):
        return None
    import pybind11

    sources = [binding] + _sources("csrc/common/*.c", *[f"csrc/{d}/*.c" for d in c_dirs])
    # Headers hold inline kernel code: a change to one must rebuild the extension.
    headers = _sources("csrc/common/*.h", *[f"csrc/{d}/*.h" for d in c_dirs],
                       *[f"csrc/{d}/**/*.h" for d in c_dirs], "csrc/bindings/*.hpp")
    return Extension(
        name,
        sources=sources,
        depends=headers,
        include_dirs=[pybind11.get_include(), "csrc"],
        extra_compile_args=_compile_args(),
        extra_link_args=_link_args(),
        language="c++",
    )


def _cython_exts() -> list[Extension]:
    pyx = _sources("engine/**/*.pyx")
    if not pyx:
        return []
    import numpy
    from Cython.Build import cythonize

    exts = [
        Extension(
            os.path.splitext(p)[0].replace(os.sep, "."),
            sources=[p],
            include_dirs=[numpy.get_include(), "csrc"],
            extra_compile_args=_compile_args(),
            extra_link_args=_link_args(),
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for p in pyx
    ]
    return cythonize(exts, language_level=3, quiet=True,
                     compiler_directives={"boundscheck": False, "wraparound": False})


if sys.platform == "win32":
    raise SystemExit("engine builds on Linux and macOS (a C compiler with GCC extensions)")

extensions = [
    e
    for e in (
        _pybind_ext("engine._native_hash", "csrc/bindings/hash_module.cpp", "blake3",
                    "statetree"),
        _pybind_ext("engine._native_ed25519", "csrc/bindings/ed25519_module.cpp", "ed25519"),
        _pybind_ext("engine._native_sm", "csrc/bindings/sm_module.cpp", "sm3", "sm2",
                    "statetree"),
    )
    if e is not None
] + _cython_exts()

_only = [n for n in os.environ.get("ENGINE_BUILD_ONLY", "").split(",") if n]
if _only:
    extensions = [e for e in extensions if any(n in e.name for n in _only)]

setup(ext_modules=extensions)
