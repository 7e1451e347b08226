"""Loads the Ed25519 vector files of tests/vectors/ed25519, with expected verdicts.

Each case is (file, case_id, public_key, message, signature, expected_accept); case ids follow
expected_zip215.json (lineN, tcIdN, caseN, numberN, idxN).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import NamedTuple

from tests.vectors import VECTORS

VECTORS_DIR = VECTORS / "ed25519"

FILES = (
    "rfc8032/sign.input",
    "wycheproof/ed25519_test.json",
    "speccheck/cases.json",
    "cctv/ed25519vectors.json",
    "zip215/zip215.json",
)


class Case(NamedTuple):
    file: str
    case_id: str
    public_key: bytes
    message: bytes
    signature: bytes
    expected: bool


def _expected() -> dict:
    with open(VECTORS_DIR / "expected_zip215.json") as f:
        return json.load(f)["expected_accept"]


def _raw(name: str) -> Iterator[tuple[str, bytes, bytes, bytes]]:
    path = VECTORS_DIR / name
    if name.endswith("sign.input"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split(":")
            pk, msg = bytes.fromhex(fields[1]), bytes.fromhex(fields[2])
            sig = bytes.fromhex(fields[3])[:64]
            yield f"line{n}", pk, msg, sig
        return
    data = json.loads(path.read_text())
    if name.startswith("wycheproof"):
        for group in data["testGroups"]:
            pk = bytes.fromhex(group["publicKey"]["pk"])
            for t in group["tests"]:
                yield f"tcId{t['tcId']}", pk, bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])
    elif name.startswith("speccheck"):
        for i, c in enumerate(data):
            yield (f"case{i}", bytes.fromhex(c["pub_key"]), bytes.fromhex(c["message"]),
                   bytes.fromhex(c["signature"]))
    elif name.startswith("cctv"):
        for c in data:
            yield (f"number{c['number']}", bytes.fromhex(c["key"]), c["msg"].encode(),
                   bytes.fromhex(c["sig"]))
    elif name.startswith("zip215"):
        for i, (pk, sig) in enumerate(data):
            yield f"idx{i}", bytes.fromhex(pk), b"Zcash", bytes.fromhex(sig)
    else:
        raise ValueError(f"unknown vector file {name}")


def load(name: str) -> list[Case]:
    expected = _expected()[name]
    cases = [Case(name, cid, pk, msg, sig, expected[cid]) for cid, pk, msg, sig in _raw(name)]
    if len(cases) != len(expected):
        raise AssertionError(f"{name}: {len(cases)} cases, {len(expected)} expected verdicts")
    return cases


def load_all() -> list[Case]:
    return [c for name in FILES for c in load(name)]
