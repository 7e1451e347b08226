"""The per-chain crypto suite: which hash and which signature a chain uses, in one object.

A chain names its suite once, in ``genesis.json`` (``"crypto": "sm2-sm3"``; absent means
``ed25519-blake3``), and never changes it: the store records it when it is created (meta
``crypto``) and a node refuses to open a store of another suite. Everything that hashes or signs
for the chain — transaction envelopes and ids, votes, proposals, certificates, block ids and the
header's hashes, the transaction Merkle root and its proofs, node keys in the p2p handshake —
goes through the suite object the node was built with, so each call site names
``suite.hash_many`` where it named ``blake3_many``.

=================  =============================  ============================================
                   ``ed25519-blake3`` (default)   ``sm2-sm3``
=================  =============================  ============================================
hash (ids, block)  BLAKE3-256                     SM3 (GB/T 32905)
tx Merkle root     BLAKE3 tree over the tx ids    SM3 tree (0x00/0x01 prefixes) over the tx
                   (leaf = id = BLAKE3(tx))       ids as 32-byte leaves: leaf = SM3(0x00 || id)
signature          Ed25519, ZIP-215               SM2 (GB/T 32918), user ID 1234567812345678
public key         32 bytes                       64 bytes x || y (GM/T 0009)
signature bytes    64                             64 (r || s, big-endian)
envelope version   1                              2 (same layout, 64-byte sender)
key file           {"type": "ed25519", "seed"}    {"type": "sm2", "private_key"}
=================  =============================  ============================================

The envelope version byte names the suite, so a transaction signed for the other suite is
refused at admission with a clear error (``decode_tx``/``verify_txs``); a peer of the other suite
is refused in the handshake (its authentication frame has the other key size). The p2p channel
itself (X25519, HKDF-SHA256, ChaCha20-Poly1305 from `cryptography`) is the same for both suites:
`cryptography` offers no SM4-GCM.

The simulator and the consensus core's defaults stay on ``ed25519-blake3``; the core takes the
hash and verify functions of whichever suite the driver hands it (it stays sans-IO).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from engine import crypto, hashing

BytesLike = bytes | bytearray | memoryview

ED25519_BLAKE3 = "ed25519-blake3"
SM2_SM3 = "sm2-sm3"
SUITE_NAMES = (ED25519_BLAKE3, SM2_SM3)

__all__ = ["ED25519_BLAKE3", "SM2_SM3", "SUITE_NAMES", "Signer", "Sm2Key", "Suite",
           "SuiteMismatch", "get_suite"]


class SuiteMismatch(ValueError):
    """Something made for one crypto suite was handed to a chain of the other."""


class Signer(Protocol):
    """What a suite's signing key offers (crypto.SigningKey and the SM2 key below)."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: BytesLike) -> bytes: ...


class Sm2Key:
    """An SM2 signing key with the one-argument ``sign`` every signer of the engine has (the
    user ID is the standard's default, as for every SM2 signature of the chain)."""

    __slots__ = ("_key",)

    def __init__(self, key: crypto.Sm2SigningKey):
        self._key = key

    @property
    def public_key(self) -> bytes:
        return self._key.public_key

    @property
    def private_bytes(self) -> bytes:
        return self._key.private_bytes

    def sign(self, message: BytesLike) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Sm2Key(public_key={self._key.public_key.hex()})"


class Suite:
    """One chain's hash and signature primitives (see the module docstring for the table)."""

    __slots__ = ("_hash", "_hash_many", "_hash_many_packed", "_verify", "_verify_batch", "name",
                 "public_key_bytes", "signature_bytes", "tx_version")

    def __init__(self, name: str, *, public_key_bytes: int, tx_version: int,
                 hash_one: Callable[[BytesLike], bytes],
                 hash_many: Callable[..., list[bytes]], hash_many_packed: Callable[..., bytes],
                 verify: Callable[[BytesLike, BytesLike, BytesLike], bool],
                 verify_batch: Callable[..., list[bool]]):
        self.name = name
        self.public_key_bytes = public_key_bytes
        self.signature_bytes = 64
        self.tx_version = tx_version
        self._hash, self._hash_many, self._hash_many_packed = hash_one, hash_many, hash_many_packed
        self._verify, self._verify_batch = verify, verify_batch

    def __repr__(self) -> str:
        return f"Suite({self.name!r})"

    @property
    def is_default(self) -> bool:
        return self.name == ED25519_BLAKE3

    # ---- hashing ----------------------------------------------------------------------------
    def hash(self, data: BytesLike) -> bytes:
        """The chain's 32-byte hash (block hashes, tx ids, the handshake transcript)."""
        return self._hash(data)

    def hash_many(self, messages: Sequence[BytesLike], *, threads: int | None = None
                  ) -> list[bytes]:
        return self._hash_many(messages, threads=threads)

    def hash_many_packed(self, data: BytesLike, offsets: Any, *, threads: int | None = None
                         ) -> bytes:
        return self._hash_many_packed(data, offsets, threads=threads)

    # ---- the transaction Merkle tree --------------------------------------------------------
    def tx_root(self, tx_ids: Sequence[BytesLike] | BytesLike) -> bytes:
        """The Merkle root over a block's transaction ids (a sequence, or n * 32 packed bytes)."""
        if self.is_default:
            return hashing.merkle_root_from_hashes(tx_ids)
        if isinstance(tx_ids, (bytes, bytearray, memoryview)):
            packed = bytes(tx_ids)
            if len(packed) % hashing.HASH_BYTES:
                raise ValueError("tx_ids must be a multiple of 32 bytes long")
            tx_ids = [packed[i:i + 32] for i in range(0, len(packed), 32)]
        return hashing.sm3_merkle_root(tx_ids)

    def tx_proof(self, txs: Sequence[bytes], index: int) -> hashing.MerkleProof:
        """The inclusion proof of ``txs[index]`` under :meth:`tx_root`."""
        if self.is_default:
            return hashing.merkle_proof(txs, index)
        return hashing.sm3_merkle_proof(self.hash_many(txs) if txs else [], index)

    def verify_tx_proof(self, root: BytesLike, tx: BytesLike, proof: hashing.MerkleProof) -> bool:
        """Whether ``proof`` shows the envelope ``tx`` is in the block whose tx root is ``root``."""
        if self.is_default:
            return hashing.verify_merkle_proof(root, tx, proof)
        return hashing.verify_sm3_merkle_proof(root, self.hash(tx), proof)

    # ---- signatures -------------------------------------------------------------------------
    def verify(self, public_key: BytesLike, message: BytesLike, signature: BytesLike) -> bool:
        return self._verify(public_key, message, signature)

    def verify_batch(self, public_keys: Sequence[BytesLike], messages: Sequence[BytesLike],
                     signatures: Sequence[BytesLike], *, threads: int | None = None
                     ) -> list[bool]:
        """Verdicts equal to :meth:`verify` on each, in one native batch."""
        return self._verify_batch(public_keys, messages, signatures, threads=threads)

    def generate_key(self) -> Signer:
        """A new signing key from the OS CSPRNG."""
        if self.is_default:
            return crypto.SigningKey.generate()
        return Sm2Key(crypto.Sm2SigningKey.generate())

    def key_from_seed(self, seed: bytes) -> Signer:
        """A deterministic key from 32 seed bytes (tests, the fault runner). For SM2 the seed
        is hashed with SM3 until it is a valid scalar."""
        if self.is_default:
            return crypto.SigningKey.from_seed(seed)
        d = hashing.sm3(b"engine/sm2/key/v1" + bytes(seed))
        while not 1 <= int.from_bytes(d, "big") <= crypto.SM2_N - 2:
            d = hashing.sm3(d)
        return Sm2Key(crypto.Sm2SigningKey(d))

    # ---- key files --------------------------------------------------------------------------
    def key_to_json(self, key: Signer) -> dict[str, str]:
        if isinstance(key, crypto.SigningKey):
            return {"type": "ed25519", "seed": key.seed.hex(), "public_key": key.public_key.hex()}
        if isinstance(key, Sm2Key):
            return {"type": "sm2", "private_key": key.private_bytes.hex(),
                    "public_key": key.public_key.hex()}
        raise TypeError(f"key must be a signing key, not {type(key).__name__}")

    def key_from_json(self, obj: Any) -> Signer:
        """Read a key file's object; raises SuiteMismatch for a key of the other suite, and
        ValueError/KeyError/TypeError when it is malformed."""
        kind = obj.get("type", "ed25519") if isinstance(obj, dict) else None
        want = "ed25519" if self.is_default else "sm2"
        if kind != want:
            raise SuiteMismatch(f"a {kind!r} key, but this chain's suite {self.name} needs "
                                f"a {want!r} key")
        if self.is_default:
            return crypto.SigningKey.from_seed(bytes.fromhex(obj["seed"]))
        return Sm2Key(crypto.Sm2SigningKey(bytes.fromhex(obj["private_key"])))

    def check_public_key(self, public_key: bytes, what: str) -> None:
        """ValueError (SuiteMismatch when it has the other suite's size) for a bad key length."""
        if len(public_key) == self.public_key_bytes:
            return
        other = get_suite(SM2_SM3 if self.is_default else ED25519_BLAKE3)
        if len(public_key) == other.public_key_bytes:
            raise SuiteMismatch(f"{what} is a {other.name} key ({len(public_key)} bytes); this "
                                f"chain's suite is {self.name}")
        raise ValueError(f"{what} must be {self.public_key_bytes} bytes, not {len(public_key)}")


def _sm2_verify(public_key: BytesLike, message: BytesLike, signature: BytesLike) -> bool:
    # A key or signature of the wrong size is a False verdict here, as it is for Ed25519:
    # the caller is checking a peer's bytes, not misusing the API.
    if len(memoryview(public_key)) != 64 or len(memoryview(signature)) != 64:
        return False
    return crypto.sm2_verify(public_key, message, signature)


def _sm2_verify_batch(public_keys: Sequence[BytesLike], messages: Sequence[BytesLike],
                      signatures: Sequence[BytesLike], *, threads: int | None = None
                      ) -> list[bool]:
    if len(public_keys) != len(messages) or len(messages) != len(signatures):
        raise ValueError("public_keys, messages and signatures must have the same length")
    ok = [len(memoryview(k)) == 64 and len(memoryview(s)) == 64
          for k, s in zip(public_keys, signatures)]
    if all(ok):
        return crypto.sm2_verify_batch(public_keys, messages, signatures, threads=threads)
    idx = [i for i, good in enumerate(ok) if good]
    verdicts = crypto.sm2_verify_batch([public_keys[i] for i in idx], [messages[i] for i in idx],
                                       [signatures[i] for i in idx], threads=threads)
    out = [False] * len(ok)
    for i, v in zip(idx, verdicts):
        out[i] = v
    return out


def _ed_verify_batch(public_keys: Sequence[BytesLike], messages: Sequence[BytesLike],
                     signatures: Sequence[BytesLike], *, threads: int | None = None
                     ) -> list[bool]:
    return crypto.verify_batch(public_keys, messages, signatures, threads=threads)


_SUITES = {
    ED25519_BLAKE3: Suite(ED25519_BLAKE3, public_key_bytes=32, tx_version=1,
                          hash_one=hashing.blake3, hash_many=hashing.blake3_many,
                          hash_many_packed=hashing.blake3_many_packed, verify=crypto.verify,
                          verify_batch=_ed_verify_batch),
    SM2_SM3: Suite(SM2_SM3, public_key_bytes=64, tx_version=2,
                   hash_one=hashing.sm3, hash_many=hashing.sm3_many,
                   hash_many_packed=hashing.sm3_many_packed, verify=_sm2_verify,
                   verify_batch=_sm2_verify_batch),
}

#: The default suite (what a genesis without a ``crypto`` field uses).
DEFAULT = _SUITES[ED25519_BLAKE3]


def get_suite(name: str | Suite | None = None) -> Suite:
    """The suite called ``name`` (None: the default). Raises ValueError naming the choices."""
    if isinstance(name, Suite):
        return name
    if name is None:
        return DEFAULT
    if not isinstance(name, str):
        raise TypeError(f"crypto must be a suite name, not {type(name).__name__}")
    try:
        return _SUITES[name]
    except KeyError:
        raise ValueError(f"crypto must be one of {', '.join(SUITE_NAMES)}, not {name!r}") from None


def read_key_file(path: str, suite: Suite) -> Signer:
    """The key in a key file of ``suite``; ValueError naming the file when it is unreadable,
    of the other suite, or its ``public_key`` does not match the private key."""
    try:
        with open(path) as f:
            obj = json.load(f)
        key = suite.key_from_json(obj)
    except SuiteMismatch as e:
        raise SuiteMismatch(f"{path}: {e}") from e
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a readable key file ({e})") from e
    if obj.get("public_key") not in (None, key.public_key.hex()):
        secret = "seed" if suite.is_default else "private key"
        raise ValueError(f"{path}: public_key does not match the {secret}")
    return key


def key_file_text(key: Signer, suite: Suite) -> str:
    return json.dumps(suite.key_to_json(key), indent=2) + "\n"

