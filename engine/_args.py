"""Argument checks shared by the public API: exact errors that name the argument."""
from __future__ import annotations


def bytes_arg(value: object, name: str, length: int | None = None) -> bytes:
    """``value`` as bytes; TypeError unless bytes-like, ValueError unless ``length`` long."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, bytearray or memoryview, not {type(value).__name__}")
    b = bytes(value)
    if length is not None and len(b) != length:
        raise ValueError(f"{name} must be {length} bytes long, not {len(b)}")
    return b


def threads_arg(threads: int | None) -> int:
    """A ``threads`` argument for the native kernels: None (all cores, passed as 0) or >= 1."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, not {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    return threads
