"""Issue 13, finding 2: idle sockets that reconnect as soon as they are closed cannot keep a
configured peer out. Pending handshakes are limited per source address and strangers share
only part of the slots; the rest is reserved for the addresses configured peers live at.
Every refusal is counted and logged at WARNING, rate-limited."""
from __future__ import annotations

import asyncio
import logging

from engine import crypto
from engine.net.limits import NetLimits
from engine.net.peers import PeerAddress, PeerSet

CHAIN = "slots-test"
#: Attackers come from other loopback addresses than the peers (Linux routes 127/8 to lo).
ATTACK_SOURCES = [f"127.0.0.{i}" for i in range(2, 18)]


async def _hog(port: int, source: str, stop: asyncio.Event, opened: list) -> None:
    """An idle socket that reconnects as soon as the node closes it."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(source, 0))
        except OSError:
            await asyncio.sleep(0.01)
            continue
        opened.append(1)
        try:
            done = asyncio.ensure_future(reader.read())
            await asyncio.wait([done, asyncio.ensure_future(stop.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
        except (ConnectionError, OSError):
            pass
        writer.close()


def _ordered_keys():
    """(target, dialer): the dialer's key sorts below, so the dialer dials the target."""
    while True:
        a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()
        if a.public_key > b.public_key:
            return a, b


def test_idle_reconnecting_sockets_do_not_lock_a_configured_peer_out(caplog):
    target_key, dialer_key = _ordered_keys()
    limits = NetLimits(handshake_timeout_ms=3000)

    async def main():
        target = PeerSet(node_key=target_key, chain_id=CHAIN, listen_host="127.0.0.1",
                         listen_port=0, limits=limits, on_message=lambda k, m: None,
                         peers=[PeerAddress(dialer_key.public_key, "127.0.0.1", 1)])
        await target.start()
        stop = asyncio.Event()
        opened: list = []
        hogs = [asyncio.create_task(_hog(target.listen_port, src, stop, opened))
                for src in ATTACK_SOURCES for _ in range(4)]  # 64 sockets for 32 slots
        await asyncio.sleep(0.5)
        assert target._pending_handshakes >= limits.pending_handshakes_max - \
            limits.pending_handshakes_reserved
        dialer = PeerSet(node_key=dialer_key, chain_id=CHAIN, listen_host="127.0.0.1",
                         listen_port=0, limits=limits, on_message=lambda k, m: None,
                         peers=[PeerAddress(target_key.public_key, "127.0.0.1",
                                            target.listen_port)])
        loop = asyncio.get_running_loop()
        started = loop.time()
        await dialer.start()
        # Before any idle socket's handshake times out (3 s), the configured peer is in.
        while dialer_key.public_key not in target.connected():
            assert loop.time() - started < 2.0, (dict(target.faults), len(opened))
            await asyncio.sleep(0.02)
        faults = dict(target.faults)
        stop.set()
        await asyncio.gather(*hogs, return_exceptions=True)
        await dialer.stop()
        await target.stop()
        return faults

    with caplog.at_level(logging.WARNING, logger="engine.net"):
        faults = asyncio.run(asyncio.wait_for(main(), 30))
    refused = faults.get("handshake_busy", 0) + faults.get("handshake_busy_source", 0)
    assert refused >= 32, faults  # the hogs were refused, and counted
    warnings = [r for r in caplog.records if "refused [handshake_busy" in r.getMessage()]
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]  # rate-limited


def test_per_source_and_stranger_caps():
    lim = NetLimits(pending_handshakes_max=10, pending_handshakes_reserved=4,
                    pending_handshakes_per_source_max=2)
    ps = PeerSet(node_key=crypto.SigningKey.generate(), chain_id=CHAIN,
                 listen_host="127.0.0.1", listen_port=0, peers=[], limits=lim,
                 on_message=lambda k, m: None)
    ps._configured_sources = {"10.0.0.1"}
    assert ps._claim_slot("1.1.1.1") is None and ps._claim_slot("1.1.1.1") is None
    assert ps._claim_slot("1.1.1.1") == "handshake_busy_source"
    for i in range(2, 6):
        ps._claim_slot(f"1.1.1.{i}")
    assert ps._pending_strangers == 6
    assert ps._claim_slot("2.2.2.2") == "handshake_busy"  # strangers' share is used up
    assert [ps._claim_slot("10.0.0.1") for _ in range(5)] == [None] * 4 + ["handshake_busy"]
    ps._release_slot("1.1.1.1")
    assert ps._claim_slot("2.2.2.2") is None
