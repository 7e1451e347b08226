"""Loads the public test vectors from ../shared/vectors in place (never copied into the repo)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def _shared_dir() -> Path:
    """../shared beside the project (where developers and CI have it), or ENGINE_SHARED_DIR."""
    env = os.environ.get("ENGINE_SHARED_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    if not (path / "vectors").is_dir():
        raise RuntimeError(f"test vectors not found at {path}/vectors: the project expects "
                           "../shared beside its root (set ENGINE_SHARED_DIR to point elsewhere)")
    return path


SHARED = _shared_dir()
VECTORS = SHARED / "vectors"


def blake3_vectors() -> dict:
    """The official BLAKE3 vectors: {"key", "context_string", "cases": [...]}."""
    return json.loads((VECTORS / "blake3" / "test_vectors.json").read_text())


def blake3_input(length: int) -> bytes:
    """Input of a BLAKE3 vector case: the repeating 0..250 byte pattern."""
    return bytes(i % 251 for i in range(length))


def merkle_probe_files(kind: str) -> list[Path]:
    """transparency-dev RFC 6962 probes: kind is "inclusion" or "consistency"."""
    root = VECTORS / "merkle" / "transparency-dev" / "testdata" / kind
    return sorted(root.rglob("*.json"))
