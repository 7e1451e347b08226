"""Light blocks from untrusted bytes (engine/light/block.py), edge by edge: the size bound
against the largest legitimate light block of either suite, the validator-set decoding's count
and length checks, each part's length prefix and extent, the version, trailing bytes with
their count, the parts belonging together on both sides of the right values, the JSON form's
informative fields, and immutability. Written against the survivors of a mutation run over the
module (docs/mutation.md)."""
from __future__ import annotations

import dataclasses
import json
import os
import struct

import pytest

from engine import limits
from engine.consensus.certificate import CommitCertificate
from engine.consensus.types import Validator, ValidatorSet
from engine.errors import ProtocolError
from engine.light import LightBlock, decode_validator_set
from engine.light.block import BYTES_MAX, LIGHT_BLOCK_BYTES_MAX
from engine.light.synthetic import SyntheticChain, make_keys
from engine.suite import get_suite

CHAIN = b"light-decoding"
KEYS = make_keys(5, b"decoding")
LOW, HIGH = bytes(32), b"\xff" * 32


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    return SyntheticChain(CHAIN, [(1, [(k, 10) for k in KEYS])], 300)


def _u32(n: int) -> bytes:
    return struct.pack("<I", n)


def _parts(lb: LightBlock) -> list[bytes]:
    return [lb.header.encode(), lb.certificate.encode(), lb.validators.encode()]


def _assemble(*parts: bytes, version: int = 1) -> bytes:
    return bytes([version]) + b"".join(_u32(len(p)) + p for p in parts)


@pytest.mark.parametrize("suite,key_bytes", [("ed25519-blake3", 32), ("sm2-sm3", 64)])
def test_the_size_bound_holds_the_largest_light_block_and_little_more(suite, key_bytes):
    n = limits.validators_max
    vals = ValidatorSet([Validator(os.urandom(key_bytes), 1) for _ in range(n)])
    chain_id = b"c" * limits.chain_id_bytes_max
    header = dataclasses.replace(
        SyntheticChain(b"x", [(1, [(KEYS[0], 1)])], 1).header(1), chain_id=chain_id,
        validators_hash=vals.hash(get_suite(suite).hash))
    cert = CommitCertificate.build(1, 2**31 - 1, header.hash(get_suite(suite)),
                                   {i: os.urandom(64) for i in range(n)}, n)
    largest = LightBlock(header, cert, vals, get_suite(suite)).encode()
    bound = BYTES_MAX[key_bytes]
    assert len(largest) <= bound < len(largest) + 16 * 1024
    assert bound <= LIGHT_BLOCK_BYTES_MAX == max(BYTES_MAX.values())
    decoded = LightBlock.decode(largest, suite)
    assert len(decoded.validators) == n and len(decoded.certificate.signatures) == n
    with pytest.raises(ProtocolError, match=f"a {suite} light block is at most {bound} bytes"):
        LightBlock.decode(b"\x01" + bytes(bound), suite)
    with pytest.raises(ProtocolError) as e:  # exactly at the bound: refused for its content
        LightBlock.decode(b"\x01" + bytes(bound - 1), suite)
    assert "at most" not in str(e.value)


def _set_bytes(count: int, key_bytes: int = 32) -> bytes:
    return _u32(count) + b"".join(os.urandom(key_bytes) + struct.pack("<Q", 1)
                                  for _ in range(count))


def test_validator_set_counts_at_their_edges():
    assert len(decode_validator_set(_set_bytes(1))) == 1
    assert len(decode_validator_set(_set_bytes(limits.validators_max))) == limits.validators_max
    for count in (0, limits.validators_max + 1):
        with pytest.raises(ProtocolError,
                           match=f"count {count} is outside 1..{limits.validators_max}"):
            decode_validator_set(_u32(count) + bytes(40))
    for short in (b"", b"\x01\x00\x00"):
        with pytest.raises(ProtocolError, match="validator set is truncated"):
            decode_validator_set(short)
    with pytest.raises(ProtocolError, match="count 0 is outside"):
        decode_validator_set(_u32(0))  # four bytes: a count, read as one


@pytest.mark.parametrize("suite,entry", [(None, 40), ("sm2-sm3", 72)])
def test_validator_set_lengths_one_byte_off_on_either_side(suite, entry):
    key_bytes = entry - 8
    good = _set_bytes(3, key_bytes)
    vset = decode_validator_set(good, suite)
    assert [v.public_key for v in vset.validators] == [good[4 + i * entry:4 + i * entry +
                                                             key_bytes] for i in range(3)]
    for bad in (good[:-1], good + b"\x00"):
        with pytest.raises(ProtocolError, match=f"a set of 3 validators is {4 + 3 * entry} "
                                                f"bytes, not {len(bad)}"):
            decode_validator_set(bad, suite)


def test_an_invalid_set_is_a_protocol_error():
    key = os.urandom(32)
    twice = _u32(2) + (key + struct.pack("<Q", 1)) * 2
    with pytest.raises(ProtocolError, match="invalid validator set: .*repeats a public key"):
        decode_validator_set(twice)
    zero = _u32(1) + key + struct.pack("<Q", 0)
    with pytest.raises(ProtocolError, match="invalid validator set: .*power"):
        decode_validator_set(zero)


def test_a_light_block_round_trips_as_bytes_bytearray_and_memoryview(chain):
    lb = chain.light_block(299)
    raw = lb.encode()
    assert raw == _assemble(*_parts(lb))
    for form in (raw, bytearray(raw), memoryview(raw)):
        assert LightBlock.decode(form) == lb
    with pytest.raises(ProtocolError, match="must be bytes"):
        LightBlock.decode(raw.hex())  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, 2, 255])
def test_other_versions_are_refused(chain, version):
    with pytest.raises(ProtocolError, match="light block version must be 1"):
        LightBlock.decode(_assemble(*_parts(chain.light_block(3)), version=version))
    with pytest.raises(ProtocolError, match="light block version must be 1"):
        LightBlock.decode(b"")


def test_each_part_truncated_or_running_past_the_end_is_named(chain):
    header, cert, vals = _parts(chain.light_block(3))
    raw = _assemble(header, cert, vals)
    cases = [
        (raw[:3], "truncated before its header"),
        (raw[:4], "truncated before its header"),  # three bytes of the length prefix
        (raw[:5], "the light block's header runs past its end"),
        (raw[:1 + 4 + len(header) + 2], "truncated before its certificate"),
        (raw[:1 + 4 + len(header) + 4 + len(cert)], "truncated before its validator set"),
        (b"\x01" + _u32(len(header) + 1) + header, "the light block's header runs past its end"),
        (_assemble(header) + _u32(len(cert) + 1) + cert,
         "the light block's certificate runs past its end"),
        (_assemble(header, cert) + _u32(len(vals) + 1) + vals,
         "the light block's validator set runs past its end"),
        (raw + b"abc", "3 trailing bytes after the light block"),
        (raw + bytes(len(raw) + 5), f"{len(raw) + 5} trailing bytes after the light block"),
    ]
    for data, message in cases:
        with pytest.raises(ProtocolError, match=message):
            LightBlock.decode(data)
    # An empty validator set part ends the bytes exactly after its length: the set's own
    # check names it, not the framing.
    with pytest.raises(ProtocolError, match="validator set is truncated"):
        LightBlock.decode(_assemble(header, cert, b""))


@pytest.mark.parametrize("value", [LOW, HIGH])
def test_a_set_that_is_not_the_one_the_header_names_on_either_side(chain, value):
    lb = chain.light_block(300)
    named_other = dataclasses.replace(lb, header=dataclasses.replace(lb.header,
                                                                     validators_hash=value))
    with pytest.raises(ProtocolError, match="not the one its header names"):
        named_other.check_basic()


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_certificate_of_another_height_on_either_side(chain, delta):
    lb = chain.light_block(300)
    other = dataclasses.replace(lb, certificate=dataclasses.replace(lb.certificate,
                                                                    height=300 + delta))
    with pytest.raises(ProtocolError,
                       match=f"the certificate is for height {300 + delta}, the header for 300"):
        other.check_basic()
    lb.check_basic()
    LightBlock.decode(lb.encode()).check_basic()  # heights above 256 decoded apart: by value


def test_json_informative_fields_must_agree(chain):
    lb = chain.light_block(300)
    j = json.loads(json.dumps(lb.to_json()))  # new int and str objects, as from the wire
    assert LightBlock.from_json(j) == lb
    for height in (299, 301):
        with pytest.raises(ProtocolError, match="'height' disagrees"):
            LightBlock.from_json({**j, "height": height})
    for h in ("00" * 32, "ff" * 32):
        with pytest.raises(ProtocolError, match="'hash' is not its header's hash"):
            LightBlock.from_json({**j, "hash": h})
    bare = {k: j[k] for k in ("header", "certificate", "validators")}
    assert LightBlock.from_json(bare) == lb  # height and hash are optional


def test_a_light_block_is_immutable(chain):
    lb = chain.light_block(5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lb.header = chain.header(6)  # type: ignore[misc]
