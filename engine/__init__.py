"""engine: a BFT consensus engine for Python with native hot paths.

The Python layer orchestrates; C kernels under csrc/ do hashing, Merkle trees, signature
verification and vote tallying. See README.md and docs/architecture.md for the architecture.

The public face, importable from here::

    from engine import Node, Application, TxResult, BlockResult, CheckResult, QueryResult
    node = Node("/path/to/home", app=MyApp())

(loaded on first use, so ``import engine`` stays light).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Node": "engine.node",
    "NodeSeams": "engine.node",
    "Application": "engine.app",
    "BlockResult": "engine.app",
    "CheckResult": "engine.app",
    "QueryResult": "engine.app",
    "TxResult": "engine.app",
    "Event": "engine.app",
    "InitResult": "engine.app",
    "BlockContext": "engine.app",
    "StateView": "engine.app",
    "KVStoreApp": "engine.app",
    "Tx": "engine.tx",
    "Client": "engine.client",
    "AsyncClient": "engine.client",
}

__all__ = ["Application", "BlockResult", "CheckResult", "Client", "KVStoreApp", "Node",
           "NodeSeams", "QueryResult", "StateView", "Tx", "TxResult", "__version__",
           "native_info"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


def native_info() -> dict:
    """What the native layer sees and runs: CPU features, supported and forced ISA paths, and the
    path each kernel runs now (e.g. ``{"kernels": {"blake3": "avx512", "ed25519": ..., "sm3": ...,
    "sm2": ...}, ...}``)."""
    from engine import _native_hash

    info = _native_hash.native_info()
    kernels = {"blake3": info.pop("blake3")}
    try:
        from engine import _native_ed25519  # the Ed25519 kernel, once built
    except ImportError:
        pass
    else:
        kernels.update(_native_ed25519.kernel_info())
    try:
        from engine import _native_sm  # SM3 and SM2 (the sm2-sm3 suite), once built
    except ImportError:
        pass
    else:
        kernels.update(_native_sm.kernel_info())
    info["kernels"] = kernels
    return info
