"""The light block: what a light client needs about one height (docs/formats.md, "Light block").

A light block is a header, the commit certificate of that header (which signs the header's hash,
the block id) and the validator set that signs the height (whose hash the header names in
``validators_hash``). It carries no transaction: a few hundred bytes plus 64 per signer and 40
per validator (72 on an SM2 chain).

A light block belongs to a chain's crypto suite (engine/suite.py), given when it is decoded:
the block id and the set's hash are the suite's hash (BLAKE3, or SM3 on an ``sm2-sm3`` chain),
the set's keys are the suite's (32-byte Ed25519 or 64-byte SM2), and its certificate is
verified with the suite's signatures. The bytes are the same layout in both suites.

Binary form: ``version u8 = 1 | u32 len | header | u32 len | certificate | u32 len |
validator set`` (each part in its own format: ``Header.encode``, ``CommitCertificate.encode``,
``ValidatorSet.encode``). JSON form (``GET /light_block/{h}``): ``{"height", "hash", "header",
"certificate", "validators"}`` with the three parts as lowercase hex of the same bytes.
Decoding raises :class:`engine.errors.ProtocolError` on anything malformed: a light block comes
from a node the client does not trust.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from engine import limits
from engine.block import Header
from engine.consensus.certificate import CommitCertificate
from engine.consensus.types import Validator, ValidatorSet
from engine.errors import ProtocolError
from engine.suite import DEFAULT, Suite, get_suite

__all__ = ["LightBlock", "decode_validator_set"]

VERSION = 1
_U32 = struct.Struct("<I")
_ENTRIES = {32: struct.Struct("<32sQ"), 64: struct.Struct("<64sQ")}
#: A light block's largest encoding by key size: a header, a certificate and a set of
#: validators_max (a signature, a set entry and a bitmap bit, rounded up to a byte, each).
BYTES_MAX = {k: 1024 + 64 + limits.validators_max * (64 + e.size + 1) for k, e in _ENTRIES.items()}
#: The largest of either suite.
LIGHT_BLOCK_BYTES_MAX = max(BYTES_MAX.values())


def decode_validator_set(data: bytes, suite: Suite | str | None = None) -> ValidatorSet:
    """The inverse of ``ValidatorSet.encode``: ``u32 count | (public key | power u64) * count``
    with the keys of ``suite`` (default ``ed25519-blake3``: 32 bytes; ``sm2-sm3``: 64);
    ProtocolError when malformed or not a valid set."""
    entry = _ENTRIES[get_suite(suite).public_key_bytes]
    if len(data) < 4:
        raise ProtocolError("validator set is truncated")
    (count,) = _U32.unpack_from(data)
    if not 1 <= count <= limits.validators_max:
        raise ProtocolError(f"validator set count {count} is outside 1..{limits.validators_max}")
    if len(data) != 4 + count * entry.size:
        raise ProtocolError(f"a set of {count} validators is {4 + count * entry.size} bytes, "
                            f"not {len(data)}")
    vals = [Validator(*entry.unpack_from(data, 4 + i * entry.size)) for i in range(count)]
    try:
        return ValidatorSet(vals)
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"invalid validator set: {e}") from None


@dataclass(frozen=True)
class LightBlock:
    header: Header
    certificate: CommitCertificate
    validators: ValidatorSet
    #: The chain's crypto suite: its hash names blocks and sets, its signatures certify.
    suite: Suite = field(default=DEFAULT, compare=False, repr=False)

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def time_ms(self) -> int:
        return self.header.time_ms

    def hash(self) -> bytes:
        """The block id (the suite's hash of the header: BLAKE3, or SM3 on an SM2 chain)."""
        return self.header.hash(self.suite)

    def check_basic(self) -> None:
        """The parts belong together (ProtocolError otherwise): the set is the one the header
        names, the certificate is for this header's height and hash. Signatures are checked by
        :mod:`engine.light.verify`."""
        if self.validators.hash(self.suite.hash) != self.header.validators_hash:
            raise ProtocolError(f"the validator set of height {self.height} is not the one its "
                                "header names (validators_hash differs)")
        if self.certificate.height != self.header.height:
            raise ProtocolError(f"the certificate is for height {self.certificate.height}, "
                                f"the header for {self.header.height}")
        if self.certificate.block_hash != self.hash():
            raise ProtocolError(f"the certificate of height {self.height} signs another block "
                                "hash than this header's")

    # ---- encodings ----

    def encode(self) -> bytes:
        parts = [self.header.encode(), self.certificate.encode(), self.validators.encode()]
        return bytes([VERSION]) + b"".join(_U32.pack(len(p)) + p for p in parts)

    @classmethod
    def decode(cls, data: bytes, suite: Suite | str | None = None) -> LightBlock:
        """From the binary form, a light block of a ``suite`` chain (default
        ``ed25519-blake3``)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProtocolError("a light block must be bytes")
        data = bytes(data)
        s = get_suite(suite)
        bytes_max = BYTES_MAX[s.public_key_bytes]
        if len(data) > bytes_max:
            raise ProtocolError(f"a {s.name} light block is at most {bytes_max} bytes")
        if not data or data[0] != VERSION:
            raise ProtocolError(f"light block version must be {VERSION}")
        parts, off = [], 1
        for what in ("header", "certificate", "validator set"):
            if off + 4 > len(data):
                raise ProtocolError(f"light block truncated before its {what}")
            (n,) = _U32.unpack_from(data, off)
            off += 4
            if off + n > len(data):
                raise ProtocolError(f"the light block's {what} runs past its end")
            parts.append(data[off:off + n])
            off += n
        if off != len(data):
            raise ProtocolError(f"{len(data) - off} trailing bytes after the light block")
        return cls.from_parts(parts[0], parts[1], parts[2], s)

    @classmethod
    def from_parts(cls, header: bytes, certificate: bytes, validators: bytes,
                   suite: Suite | str | None = None) -> LightBlock:
        """From the three encoded parts of a ``suite`` chain's light block (ProtocolError when
        any is malformed)."""
        s = get_suite(suite)
        h = Header.decode(header)
        vals = decode_validator_set(validators, s)
        cert = CommitCertificate.decode(certificate, len(vals))
        return cls(h, cert, vals, s)

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "hash": self.hash().hex(),
                "header": self.header.encode().hex(),
                "certificate": self.certificate.encode().hex(),
                "validators": self.validators.encode().hex()}

    @classmethod
    def from_json(cls, obj: Any, suite: Suite | str | None = None) -> LightBlock:
        """From the JSON form of a ``suite`` chain's light block (default ``ed25519-blake3``);
        ProtocolError naming what is wrong. ``height`` and ``hash`` are informative and must
        agree with the header."""
        if not isinstance(obj, dict):
            raise ProtocolError("a light block must be a JSON object")
        raw = {}
        for name in ("header", "certificate", "validators"):
            text = obj.get(name)
            if not isinstance(text, str):
                raise ProtocolError(f"light block field {name!r} must be a hex string")
            try:
                raw[name] = bytes.fromhex(text)
            except ValueError:
                raise ProtocolError(f"light block field {name!r} is not hex") from None
        lb = cls.from_parts(raw["header"], raw["certificate"], raw["validators"], suite)
        if obj.get("height", lb.height) != lb.height:
            raise ProtocolError("light block 'height' disagrees with its header")
        if obj.get("hash", lb.hash().hex()) != lb.hash().hex():
            raise ProtocolError("light block 'hash' is not its header's hash")
        return lb


