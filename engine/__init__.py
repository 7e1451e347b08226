"""engine: a BFT consensus engine for Python with native hot paths.

The Python layer orchestrates; C kernels under csrc/ do hashing, Merkle trees, signature
verification and vote tallying. See README.md and ../shared/DESIGN.md for the architecture.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "native_info"]


def native_info() -> dict:
    """What the native layer sees and runs: CPU features, supported and forced ISA paths, and the
    path each kernel runs now (e.g. ``{"kernels": {"blake3": "avx512", ...}, ...}``)."""
    from engine import _native_hash

    info = _native_hash.native_info()
    kernels = {"blake3": info.pop("blake3")}
    try:
        from engine import _native_ed25519  # the Ed25519 kernel, once built
    except ImportError:
        pass
    else:
        kernels.update(_native_ed25519.kernel_info())
    info["kernels"] = kernels
    return info
