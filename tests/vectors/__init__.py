"""The public test vectors the tests read, kept in this folder with their origin and licence.

Each subfolder's README.md names the repository, commit and path every file came from, its
licence and its format: blake3/ (the official BLAKE3 vectors), ed25519/ (RFC 8032, Wycheproof,
speccheck, CCTV and ZIP-215 cases with the verdicts our rules expect), merkle/ (transparency-dev's
RFC 6962 inclusion and consistency probes). Nothing here is read from outside the repository.
"""
from __future__ import annotations

import json
from pathlib import Path

VECTORS = Path(__file__).resolve().parent


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
