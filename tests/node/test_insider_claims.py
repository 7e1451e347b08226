"""Issue 13, finding 5: a peer's heights are checked. GET_BLOCKS from a height >= 2^63 is a
protocol fault (dropped at decode, the peer penalised), never an exception out of the store;
a STATUS claiming an absurd height does not make the node report ``catching_up`` until the
peer backs the claim with a block whose certificate verifies."""
from __future__ import annotations

import asyncio

import pytest

from engine import consensus as cs
from engine import crypto, limits
from engine.errors import ProtocolError
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.blocksync import BlockSync
from engine.node.ports import Counters
from engine.node.signatures import VerifiedSignatures
from engine.node.tip import ChainTip
from engine.store import Store
from tests.net.test_peers import _mesh, _wait

HEIGHT_MAX = 2**63 - 1


class _Wire:
    def __init__(self):
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, peer: bytes, message: bytes) -> bool:
        self.sent.append((peer, message))
        return True


def _sync(tmp_path) -> tuple[BlockSync, _Wire, Store]:
    store = Store(str(tmp_path / "store"), sync=False)
    wire = _Wire()
    key = crypto.SigningKey.generate()
    sync = BlockSync(chain_id=b"c", validators=cs.ValidatorSet([cs.Validator(key.public_key, 1)]),
                     tip=ChainTip(), store=store, wire=wire,  # type: ignore[arg-type]
                     signatures=VerifiedSignatures(None), counters=Counters())
    return sync, wire, store


@pytest.mark.parametrize("kind,fields", [
    (codec.GET_BLOCKS, (2**63, 1)), (codec.GET_BLOCKS, (2**64 - 1, 16)),
    (codec.STATUS, (2**63, b"")), (codec.STATUS, (2**64 - 1, bytes(32))),
    (codec.BLOCKS, ([[2**63, b"b", b"c"]],))])
def test_heights_beyond_int64_are_protocol_faults(kind, fields):
    with pytest.raises(ProtocolError):
        codec.decode(codec.encode(kind, *fields), NetLimits())


def test_get_blocks_at_the_edge_reads_nothing_and_raises_nothing(tmp_path):
    sync, wire, store = _sync(tmp_path)
    m = codec.decode(codec.encode(codec.GET_BLOCKS, HEIGHT_MAX, 2**64 - 1), NetLimits())
    sync.on_get_blocks(b"p" * 32, *m.fields)
    sync.on_get_blocks(b"p" * 32, 1, 32)
    assert wire.sent == []
    store.close()


def test_get_blocks_beyond_int64_penalises_the_peer_without_a_handler_error():
    async def main():
        keys, sets, inbox, _ = await _mesh(2, NetLimits(peer_faults_max=3))
        a, b = sets
        b_key = keys[1].public_key
        for _ in range(3):
            a.send(b_key, codec.encode(codec.GET_BLOCKS, 2**63, 16))
        await _wait(lambda: b.faults["disconnect_faults"] == 1)
        assert b.faults["malformed_message"] == 3 and b.faults["handler_error"] == 0
        assert inbox[1] == []
        for ps in sets:
            await ps.stop()
    asyncio.run(asyncio.wait_for(main(), 20))


def test_absurd_status_claim_does_not_set_catching_up(tmp_path):
    sync, wire, store = _sync(tmp_path)
    peer = b"p" * 32
    m = codec.decode(codec.encode(codec.STATUS, HEIGHT_MAX, bytes(32)), NetLimits())
    sync.on_status(peer, *m.fields)
    assert not sync.catching_up()
    # The claim is still followed up: the node asks that peer for blocks (a bounded window).
    kinds = [codec.decode(msg, NetLimits()).kind for _, msg in wire.sent]
    assert kinds and set(kinds) == {codec.GET_BLOCKS}
    assert len(kinds) <= limits.sync_requests_per_peer_max
    # A peer that has served a verified block is believed (until a request goes unanswered).
    sync._backed.add(peer)
    assert sync.catching_up()
    for start, (p, sent, count) in list(sync._inflight.items()):
        sync._inflight[start] = (p, sent - 3600, count)
    sync.on_status(peer, HEIGHT_MAX, bytes(32))
    assert not sync.catching_up() and sync.counters.get("sync_claim_unbacked") == 1
    sync.on_disconnect(peer)
    store.close()
