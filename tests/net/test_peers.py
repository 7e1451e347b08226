"""The peer set on real sockets: mesh formation, broadcast, refusal and fault accounting."""
from __future__ import annotations

import asyncio
import os

import pytest

from engine import crypto
from engine.net import codec
from engine.net.limits import NetLimits
from engine.net.peers import PeerAddress, PeerSet
from engine.net.secure import handshake
from engine.suite import SM2_SM3, SuiteMismatch, get_suite

CHAIN = "peers-test"


def run(coro, timeout_s: float = 20):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def _wait(cond, timeout_s: float = 5.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _mesh(n: int, limits: NetLimits | None = None):
    keys = [crypto.SigningKey.generate() for _ in range(n)]
    inbox: list[list] = [[] for _ in range(n)]
    sets = []
    for i, k in enumerate(keys):
        ps = PeerSet(node_key=k, chain_id=CHAIN, listen_host="127.0.0.1", listen_port=0,
                     peers=[], on_message=lambda key, m, i=i: inbox[i].append((key, m)),
                     limits=limits)
        await ps.start()
        sets.append(ps)
    addrs = [PeerAddress(k.public_key, "127.0.0.1", ps.listen_port) for k, ps in zip(keys, sets)]
    for ps in sets:  # the ports are known only now; configure and start dialling
        await ps.stop()
    started = []
    for i, k in enumerate(keys):
        ps = PeerSet(node_key=k, chain_id=CHAIN, listen_host="127.0.0.1",
                     listen_port=addrs[i].port, peers=addrs,
                     on_message=lambda key, m, i=i: inbox[i].append((key, m)), limits=limits)
        await ps.start()
        started.append(ps)
    await _wait(lambda: all(len(ps.connected()) == n - 1 for ps in started))
    return keys, started, inbox, addrs


def test_mesh_broadcast_and_reconnect():
    async def main():
        keys, sets, inbox, addrs = await _mesh(4)
        assert sets[0].broadcast(codec.encode(codec.TXS, [b"tx1", b"tx2"])) == 3
        await _wait(lambda: all(len(inbox[i]) == 1 for i in (1, 2, 3)))
        for i in (1, 2, 3):
            key, m = inbox[i][0]
            assert key == keys[0].public_key and m.fields == ([b"tx1", b"tx2"],)
        # Node 3 goes away and comes back on the same port: everyone reconnects to it.
        await sets[3].stop()
        await _wait(lambda: all(len(ps.connected()) == 2 for ps in sets[:3]))
        again = PeerSet(node_key=keys[3], chain_id=CHAIN, listen_host="127.0.0.1",
                        listen_port=addrs[3].port, peers=addrs, on_message=lambda k, m: None)
        await again.start()
        sets[3] = again
        await _wait(lambda: all(len(ps.connected()) == 3 for ps in sets), 10)
        for ps in sets:
            await ps.stop()
    run(main())


def test_unknown_peer_and_garbage_are_refused_and_counted():
    async def main():
        _, sets, inbox, addrs = await _mesh(2)
        target = sets[0]
        # Random bytes, a truncated hello and a half frame: none crashes the listener.
        for data in (os.urandom(300), b"ENGP2P", os.urandom(40) + b"\x00\x00\x10"):
            _, w = await asyncio.open_connection("127.0.0.1", addrs[0].port)
            w.write(data)
            await w.drain()
            w.close()
        # A well-formed handshake with a key that is not in the peer set.
        stranger = crypto.SigningKey.generate()
        r, w = await asyncio.open_connection("127.0.0.1", addrs[0].port)
        try:
            s = await handshake(r, w, node_key=stranger, chain_id=CHAIN, initiator=True,
                                is_allowed=lambda k: True, frame_bytes_max=1 << 20)
            await s.send(codec.encode(codec.TXS, [b"x"]))
        except Exception:  # noqa: BLE001, S110 - refusal may surface on either side
            pass
        await _wait(lambda: target.faults["handshake_refused"] >= 4)
        assert stranger.public_key not in target.connected()
        assert inbox[0] == []
        # The legitimate peer is still connected and still delivers.
        sets[1].broadcast(codec.encode(codec.STATUS, 3, bytes(32)))
        await _wait(lambda: len(inbox[0]) == 1)
        for ps in sets:
            await ps.stop()
    run(main())


def test_malformed_messages_dropped_counted_then_disconnect():
    async def main():
        limits = NetLimits(peer_faults_max=3, txs_per_message_max=2)
        keys, sets, inbox, _ = await _mesh(2, limits)
        a, b = sets
        b_key = keys[1].public_key
        a.send(b_key, b"\xc1garbage")  # undecodable: dropped, counted
        a.send(b_key, codec.encode(codec.TXS, [b"1", b"2", b"3"]))  # over the batch limit
        a.send(b_key, codec.encode(codec.TXS, [b"ok"]))  # fine: delivered
        await _wait(lambda: len(inbox[1]) == 1)
        assert b.faults["malformed_message"] == 2
        assert keys[0].public_key in b.connected()
        a.send(b_key, os.urandom(10) + b"\xc1")  # third fault: disconnect
        await _wait(lambda: b.faults["disconnect_faults"] == 1)
        for ps in sets:
            await ps.stop()
    run(main())


def test_oversized_frame_is_counted_and_ends_the_connection():
    async def main():
        limits = NetLimits(frame_bytes_max=4096, tx_bytes_max=1024)
        keys, sets, inbox, _ = await _mesh(2, limits)
        a, b = sets
        b_key = keys[1].public_key
        assert a.send(b_key, b"x" * 5000) is False  # the sender refuses to seal it...
        assert a.faults["send_oversized"] == 1
        assert a.send(b_key, codec.encode(codec.TXS, [b"fine"]))  # and the link still works
        await _wait(lambda: len(inbox[1]) == 1)
        # ... so forge a header announcing a frame over the limit on the raw stream.
        peer = a._peers[b_key]
        peer.stream._writer.write((10_000).to_bytes(4, "little") + bytes(100))
        await _wait(lambda: b.faults["oversized_frame"] == 1)
        await _wait(lambda: keys[0].public_key not in b.connected())
        for ps in sets:
            await ps.stop()
    run(main())


def test_a_node_key_of_the_other_suite_is_refused_up_front():
    # An SM2 node key in a peer set left on the default suite would sign handshakes that
    # every SM2 peer refuses; the state-sync peer set once did so. Now it cannot be built.
    sm2_key = get_suite(SM2_SM3).generate_key()
    args = {"chain_id": CHAIN, "listen_host": "127.0.0.1", "listen_port": 0, "peers": [],
            "on_message": lambda key, m: None}
    with pytest.raises(SuiteMismatch, match="64-byte key but the suite ed25519-blake3"):
        PeerSet(node_key=sm2_key, **args)
    with pytest.raises(SuiteMismatch, match="32-byte key but the suite sm2-sm3"):
        PeerSet(node_key=crypto.SigningKey.generate(), suite=get_suite(SM2_SM3), **args)
    assert PeerSet(node_key=sm2_key, suite=get_suite(SM2_SM3), **args).suite.name == SM2_SM3
