"""The light client against a primary that serves mutated light blocks, in their JSON form as
``RpcSource`` decodes them: fields flipped, cut, grown, reversed, upper-cased, of another type,
or an extra field, half of them without the informative ``hash`` and ``height`` (which would
give a changed header away before the verifier sees it), at a few random heights of each run (the target height among them half the
time), on a 100-height chain whose validator set changes at height 40.

What must hold in every run: decoding raises nothing but ProtocolError, verification nothing
but LightClientError, and a header the client accepts is the chain's own (never a forged one).
Each outcome is counted, so the campaign is known to have verified headers through mutated
neighbours and refused others."""
from __future__ import annotations

import os
import random

import pytest

from engine.errors import ProtocolError
from engine.light import LightBlock
from engine.light.client import LightClient
from engine.light.sources import MemorySource
from engine.light.synthetic import SyntheticChain, make_keys
from engine.light.verify import LightClientError
from engine.suite import ED25519_BLAKE3, SM2_SM3

SEED = int(os.environ.get("ENGINE_FUZZ_SEED", "20261206"))
RUNS = int(os.environ.get("ENGINE_FUZZ_LIGHT_RUNS", "2000"))
TOP = 100
_ODD = (None, True, 1.5, 7, -1, 2**64, [], {}, "")


def _is_hex(text: str) -> bool:
    try:
        return bool(bytes.fromhex(text))
    except ValueError:
        return False


def _mutated_json(obj: dict, rng: random.Random) -> dict:
    obj = dict(obj)
    if rng.random() < 0.5:
        # A forger sends no informative fields (optional) rather than ones that give it away.
        obj.pop("hash")
        obj.pop("height")
    for _ in range(rng.randint(1, 3)):
        name = rng.choice([*obj, "extra"])
        value = obj.get(name)
        if isinstance(value, str) and _is_hex(value) and rng.random() < 0.8:
            data = bytearray(bytes.fromhex(value))
            how = rng.randrange(6)
            if how == 0:
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
                obj[name] = data.hex()
            elif how == 1:
                obj[name] = value[:-2]
            elif how == 2:
                obj[name] = value + "00"
            elif how == 3:
                obj[name] = value[::-1]
            elif how == 4:
                obj[name] = value.upper() + "zz"
            else:
                obj[name] = bytes(data[:len(data) // 2]).hex()
        else:
            obj[name] = rng.choice(_ODD) if not isinstance(value, int) or rng.random() < 0.5 \
                else value + rng.choice((-1, 1))
    return obj


@pytest.mark.parametrize("suite", [ED25519_BLAKE3, SM2_SM3])
def test_a_primary_serving_mutated_light_blocks_never_gets_a_forged_header_in(suite):
    rng = random.Random(SEED)
    keys, others = make_keys(7, b"fuzz", suite), make_keys(5, b"fuzz-next", suite)
    chain = SyntheticChain(b"light-fuzz", [
        (1, [(k, 10) for k in keys]),
        (40, [(k, 10 + i) for i, k in enumerate([*others, *keys[:2]])])], TOP, suite=suite)
    real = {h: chain.light_block(h) for h in range(1, TOP + 1)}
    now = real[TOP].header.time_ms + 1000
    outcomes = {"verified": 0, "refused": 0, "undecodable": 0}
    for _ in range(RUNS):
        target = rng.randrange(2, TOP + 1)
        bad = {rng.randrange(2, TOP + 1) for _ in range(rng.randint(1, 4))}
        if rng.random() < 0.5:
            bad.add(target)
        served: dict[int, LightBlock | None] = {}

        def serve(height: int, bad=bad, served=served) -> LightBlock | None:
            if height not in bad:
                return real.get(height)
            if height not in served:
                try:
                    served[height] = LightBlock.from_json(
                        _mutated_json(real[height].to_json(), rng), suite)
                except ProtocolError:
                    outcomes["undecodable"] += 1
                    served[height] = None
            return served[height]

        client = LightClient(MemorySource(serve), real[1], now_ms=lambda: now)
        try:
            got = client.verify_to(target)
        except LightClientError:
            outcomes["refused"] += 1
            continue
        assert got.hash() == real[target].hash(), (target, sorted(bad))
        outcomes["verified"] += 1
    # Both ways through the campaign, and mutants that still decode (the verifier's work).
    assert outcomes["verified"] > RUNS // 10 and outcomes["refused"] > RUNS // 10, outcomes
    assert outcomes["undecodable"] > 0, outcomes
    print(suite, outcomes)
