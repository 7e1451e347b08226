"""Issue 13, finding 1: a stranger's pre-authentication bytes cost a bounded, short-lived amount
of memory. The handshake reads the peer's auth frame under its exact size (not the 16 MiB frame
limit), and no refused frame stays referenced from an exception chain until a full garbage
collection (the attack is measured with the collector disabled)."""
from __future__ import annotations

import asyncio
import gc
import os
import socket
import tracemalloc

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine import crypto
from engine.net.errors import ConnectionLost
from engine.net.peers import PeerAddress, PeerSet
from engine.net.secure import AUTH_FRAME_BYTES, MAGIC
from tests.net.test_secure import _pair

CHAIN = "preauth-test"
MiB = 1 << 20


class _NoGC:
    def __enter__(self):
        gc.collect()
        gc.disable()
        tracemalloc.start()
        return self

    def __exit__(self, *exc):
        tracemalloc.stop()
        gc.enable()

    @staticmethod
    def current() -> int:
        return tracemalloc.get_traced_memory()[0]


def _attack_blocking(port: int, hello: bytes, body: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(hello + len(body).to_bytes(4, "little"))
            s.sendall(body)  # no copy: the attacker's memory does not blur the node's
            while s.recv(65536):
                pass
        except OSError:
            pass


async def _attack_once(port: int, body: bytes) -> None:
    """A stranger's hello with a valid ephemeral key, then a frame header announcing
    ``len(body)`` bytes, and the body (as far as the node reads it); from a thread with
    blocking sockets, so only the node's allocations are traced on this loop."""
    eph = X25519PrivateKey.generate().public_key().public_bytes_raw()
    await asyncio.to_thread(_attack_blocking, port, MAGIC + eph, body)


def test_preauth_oversized_auth_frame_costs_no_lasting_memory():
    node = crypto.SigningKey.generate()
    body = os.urandom(15 * MiB)  # the attacker's buffer, allocated before the baseline

    async def main() -> tuple[int, int, int, dict]:
        ps = PeerSet(node_key=node, chain_id=CHAIN, listen_host="127.0.0.1", listen_port=0,
                     peers=[PeerAddress(crypto.SigningKey.generate().public_key)],
                     on_message=lambda k, m: None)
        await ps.start()
        await _attack_once(ps.listen_port, body[:1000])  # warm up (lazy imports, caches)
        await asyncio.sleep(0.05)
        with _NoGC() as probe:
            baseline = probe.current()
            peak = 0
            for _ in range(3):  # rounds of parallel connections, as in the report
                await asyncio.gather(*(_attack_once(ps.listen_port, body) for _ in range(4)))
                await asyncio.sleep(0.05)
                peak = max(peak, tracemalloc.get_traced_memory()[1])
            after = probe.current()
        faults = dict(ps.faults)
        await ps.stop()
        return baseline, after, peak, faults

    baseline, after, peak, faults = asyncio.run(main())
    print(f"\npre-auth attack: baseline {baseline / MiB:.2f} MiB, after {after / MiB:.2f} MiB, "
          f"peak {peak / MiB:.2f} MiB (12 connections announcing 15 MiB auth frames)")
    assert faults.get("handshake_refused", 0) == 13, faults
    # Nothing of the 12 x 15 MiB stays; the peak stays far below one body.
    assert after - baseline < 1 * MiB, (baseline, after)
    assert peak - baseline < 4 * MiB, (baseline, peak)


def test_refused_frame_is_freed_without_a_collection():
    """An authenticated stream's frame that fails authentication: the body is not kept alive
    by the ConnectionLost raised for it (no chain to InvalidTag, no frame holding it)."""
    a, b = crypto.SigningKey.generate(), crypto.SigningKey.generate()

    async def main() -> tuple[int, int]:
        c, s, _ = await _pair(a, b, server_allows=lambda k: True, client_allows=lambda k: True,
                              frame_bytes_max=32 * MiB)
        await asyncio.sleep(0.05)
        with _NoGC() as probe:
            baseline = probe.current()
            for _ in range(4):
                receiving = asyncio.ensure_future(s.recv())
                frame = bytearray(c._out.seal(bytes(8 * MiB)))
                frame[-1] ^= 1
                c._writer.write(bytes(frame))
                del frame
                await c._writer.drain()
                try:
                    await receiving
                except ConnectionLost:
                    pass
                else:
                    raise AssertionError("a tampered frame was accepted")
                del receiving  # the finished task holds the exception (not the body)
                # The stream is dead after a failed frame; a fresh pair per round.
                c.close()
                s.close()
                c, s, _ = await _pair(a, b, server_allows=lambda k: True,
                                      client_allows=lambda k: True, frame_bytes_max=32 * MiB)
            await asyncio.sleep(0.05)
            after = probe.current()
        c.close()
        s.close()
        return baseline, after

    baseline, after = asyncio.run(main())
    assert after - baseline < 2 * MiB, (baseline / MiB, after / MiB)


def test_auth_frame_size_is_exact():
    assert AUTH_FRAME_BYTES == 112
