"""Taking, keeping and serving snapshots (engine/node/snapshots.py) without a network: the files
a snapshot leaves (chunks, manifest, no temporary folder), which are kept and found again after
a restart (a crash's temporary folder removed, a damaged manifest ignored), when a commit takes
one, chunk lookups at their bounds, and serving with its per-peer rate limit, the engine's
snapshots or the application's own."""
from __future__ import annotations

import asyncio
import os
import time

import msgpack

from engine import limits
from engine.app import Application
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.ports import Counters
from engine.node.snapshots import SNAPSHOTS_DIR, SnapshotManager
from engine.snapshot import STATE_FORMAT, Snapshot, chunk_hash, decode_state_chunk

PEER, OTHER = b"p" * 32, b"q" * 32


class _Reader:
    def __init__(self, height: int, items: list[tuple[bytes, bytes]]) -> None:
        self.height = height
        self.app_hash = bytes([height % 256]) * 32
        self._items = items
        self.closed = False

    def items(self):
        return iter(self._items)

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Store:
    def __init__(self) -> None:
        self.height = 0
        self.items: list[tuple[bytes, bytes]] = []
        self.readers: list[_Reader] = []

    def state_reader(self) -> _Reader:
        r = _Reader(self.height, list(self.items))
        self.readers.append(r)
        return r


class _Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, codec.Message]] = []

    def send(self, peer: bytes, raw: bytes) -> None:
        self.sent.append((peer, codec.decode(raw, NetLimits())))


class _App(Application):
    def __init__(self, own: list[Snapshot] | None = None) -> None:
        self.own = own
        self.loaded: list[tuple[int, int, int]] = []

    def finalize_block(self, height, txs):  # pragma: no cover - never called here
        raise AssertionError

    def list_snapshots(self):
        return self.own

    def load_snapshot_chunk(self, height, format, index):
        self.loaded.append((height, format, index))
        return b"own chunk %d" % index


def _manager(tmp_path, *, interval: int = 10, keep: int = 2, app=None, store=None,
             spawned: list | None = None) -> SnapshotManager:
    return SnapshotManager(store=store or _Store(), app=app or _App(), home=str(tmp_path),  # type: ignore[arg-type]
                           interval=interval, keep=keep, wire=_Wire(),  # type: ignore[arg-type]
                           counters=Counters(),
                           spawn=spawned.append if spawned is not None else (lambda c: c.close()),
                           chunk_bytes=64)


def _state(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"key%04d" % i, b"value%d" % i) for i in range(n)]


# ---- taking and keeping ------------------------------------------------------------------------
def test_a_snapshot_is_its_chunks_and_manifest_in_a_folder_named_by_height(tmp_path):
    m = _manager(tmp_path)
    m.store.height, m.store.items = 7, _state(20)  # type: ignore[attr-defined]
    snap = m.take_now()
    folder = tmp_path / SNAPSHOTS_DIR / "7"
    assert snap.height == 7 and snap.format == STATE_FORMAT and snap.app_hash == bytes([7]) * 32
    assert snap.chunks > 1 and snap.well_formed()
    names = sorted(os.listdir(folder))
    assert names == [f"chunk-{i:06d}" for i in range(snap.chunks)] + ["manifest.msgpack"]
    assert sorted(os.listdir(tmp_path / SNAPSHOTS_DIR)) == ["7"]  # no tmp- folder left
    entries: list = []
    for i in range(snap.chunks):
        raw = (folder / f"chunk-{i:06d}").read_bytes()
        assert chunk_hash(raw) == snap.chunk_hashes[i] and m.load_chunk(snap.hash, i) == raw
        entries += decode_state_chunk(raw)
    assert entries == _state(20)
    manifest = msgpack.unpackb((folder / "manifest.msgpack").read_bytes(), raw=False)
    assert Snapshot.from_wire(manifest) == snap
    assert m.store.readers[-1].closed  # type: ignore[attr-defined]


def test_the_newest_are_kept_and_found_again_after_a_restart(tmp_path):
    m = _manager(tmp_path, keep=2)
    snaps = []
    for height in (10, 20, 30):
        m.store.height, m.store.items = height, _state(height)  # type: ignore[attr-defined]
        snaps.append(m.take_now())
    assert m.snapshots() == [snaps[2], snaps[1]] and m.oldest_height() == 20
    assert sorted(os.listdir(tmp_path / SNAPSHOTS_DIR)) == ["20", "30"]
    assert m.load_chunk(snaps[0].hash, 0) is None  # trimmed
    # A crash's temporary folder, a damaged manifest, a manifest whose hash is not its own.
    base = tmp_path / SNAPSHOTS_DIR
    for name in ("tmp-40", "tmp-50"):
        (base / name).mkdir()
        (base / name / "chunk-000000").write_bytes(b"half")
    (base / "25").mkdir()
    (base / "25" / "manifest.msgpack").write_bytes(b"\xc1 not msgpack")
    forged = snaps[1].to_wire()
    forged[0] = 26
    (base / "26").mkdir()
    (base / "26" / "manifest.msgpack").write_bytes(msgpack.packb(forged, use_bin_type=True))
    again = _manager(tmp_path, keep=2)
    assert again.snapshots() == [snaps[2], snaps[1]] and again.oldest_height() == 20
    assert not (base / "tmp-40").exists() and not (base / "tmp-50").exists()
    assert _manager(tmp_path / "empty").oldest_height() is None


def test_chunk_lookups_at_their_bounds(tmp_path):
    m = _manager(tmp_path)
    m.store.height, m.store.items = 5, _state(20)  # type: ignore[attr-defined]
    snap = m.take_now()
    assert m.load_chunk(snap.hash, 0) is not None
    assert m.load_chunk(snap.hash, snap.chunks - 1) is not None
    for index in (-1, snap.chunks, snap.chunks + 1):
        assert m.load_chunk(snap.hash, index) is None
    assert m.load_chunk(b"\x00" * 32, 0) is None
    # Files beyond the manifest's chunks are not chunks of it, whatever the folder holds.
    folder = tmp_path / SNAPSHOTS_DIR / "5"
    for index in (-1, snap.chunks, snap.chunks + 1):
        (folder / f"chunk-{index:06d}").write_bytes(b"planted")
        assert m.load_chunk(snap.hash, index) is None
    os.remove(tmp_path / SNAPSHOTS_DIR / "5" / "chunk-000000")
    assert m.load_chunk(snap.hash, 0) is None  # unreadable: None, logged


# ---- when a commit takes one ---------------------------------------------------------------------
def test_a_commit_takes_a_snapshot_at_its_interval_only(tmp_path):
    spawned: list = []
    m = _manager(tmp_path, interval=10, spawned=spawned)

    async def main():
        for height in (9, 11, 15):
            m.store.height = height  # type: ignore[attr-defined]
            m.after_commit(height)
        assert spawned == []
        m.store.height, m.store.items = 20, _state(5)  # type: ignore[attr-defined]
        m.after_commit(20)
        assert len(spawned) == 1
        m.after_commit(20)  # one is being taken: not a second
        assert len(spawned) == 1
        await spawned.pop()
        assert m.counters.get("snapshots_taken") == 1 and m.snapshots()[0].height == 20
        m.store.height = 30  # type: ignore[attr-defined]
        m.after_commit(30)
        assert len(spawned) == 1  # taken again once the first is done
        await spawned.pop()
        m.close()

    asyncio.run(main())
    assert [s.height for s in m.snapshots()] == [30, 20]


def test_no_snapshot_without_an_interval_a_loop_the_same_height_or_when_the_app_keeps_its_own(
        tmp_path):
    spawned: list = []
    m = _manager(tmp_path, interval=0, spawned=spawned)

    async def commit(manager, height):
        manager.after_commit(height)

    asyncio.run(commit(m, 10))
    mine = _manager(tmp_path, app=_App(own=[]), spawned=spawned)
    asyncio.run(commit(mine, 10))
    late = _manager(tmp_path, spawned=spawned)
    late.store.height = 11  # type: ignore[attr-defined]  # a later commit already landed
    asyncio.run(commit(late, 10))
    assert late.store.readers[-1].closed  # type: ignore[attr-defined]
    outside = _manager(tmp_path, spawned=spawned)
    outside.store.height = 10  # type: ignore[attr-defined]
    outside.after_commit(10)  # replay at start-up: no loop
    assert spawned == [] and outside.store.readers == []  # type: ignore[attr-defined]


# ---- serving -------------------------------------------------------------------------------------
def test_serving_is_rate_limited_per_peer_and_per_second(tmp_path, monkeypatch):
    m = _manager(tmp_path)
    clock = [1000.0]
    monkeypatch.setattr("engine.node.snapshots.time.monotonic", lambda: clock[0])
    cap = limits.snapshot_requests_per_peer_per_s_max
    for _ in range(cap):
        m.on_get_snapshots(PEER)
    assert len(m.wire.sent) == cap  # type: ignore[attr-defined]
    m.on_get_snapshots(PEER)
    m.on_get_chunk(PEER, b"\x00" * 32, 0)
    assert len(m.wire.sent) == cap and m.counters.get("snapshot_requests_dropped") == 2  # type: ignore[attr-defined]
    m.on_get_snapshots(OTHER)  # another peer has its own allowance
    assert len(m.wire.sent) == cap + 1  # type: ignore[attr-defined]
    clock[0] += 1.0  # the next second: the same allowance again, not one more or less
    for _ in range(cap + 1):
        m.on_get_snapshots(PEER)
    assert len(m.wire.sent) == 2 * cap + 1  # type: ignore[attr-defined]
    assert m.counters.get("snapshot_requests_dropped") == 3


def test_the_rate_limit_table_is_bounded(tmp_path):
    m = _manager(tmp_path)
    for i in range(4097):
        m.on_get_snapshots(i.to_bytes(32, "big"))
    assert len(m._served) == 4097
    m.on_get_snapshots(PEER)
    assert len(m._served) == 1


def test_the_newest_snapshots_are_offered_up_to_a_message(tmp_path):
    m = _manager(tmp_path, keep=100)
    for height in range(1, codec.SNAPSHOTS_PER_MESSAGE_MAX + 3):
        m.store.height, m.store.items = height, _state(2)  # type: ignore[attr-defined]
        m.take_now()
    m.on_get_snapshots(PEER)
    (_, msg), = m.wire.sent  # type: ignore[attr-defined]
    heights = [Snapshot.from_wire(w).height for w in msg.fields[0]]
    top = codec.SNAPSHOTS_PER_MESSAGE_MAX + 2
    assert heights == list(range(top, top - codec.SNAPSHOTS_PER_MESSAGE_MAX, -1))


def test_chunks_are_served_or_answered_empty_and_counted(tmp_path):
    m = _manager(tmp_path)
    m.store.height, m.store.items = 5, _state(20)  # type: ignore[attr-defined]
    snap = m.take_now()
    m.on_get_chunk(PEER, snap.hash, 1)
    m.on_get_chunk(PEER, snap.hash, snap.chunks)
    m.on_get_chunk(PEER, snap.hash, 0)
    (_, served), (_, missing), _ = m.wire.sent  # type: ignore[attr-defined]
    assert served.fields == (snap.hash, 1, m.load_chunk(snap.hash, 1))
    assert missing.fields == (snap.hash, snap.chunks, b"")
    assert m.counters.get("snapshot_chunks_served") == 2
    assert m.counters.get("snapshot_chunks_missing") == 1


def test_an_application_that_keeps_its_own_snapshots_is_served_instead(tmp_path):
    own = Snapshot(40, 7, b"\x01" * 32, (chunk_hash(b"own chunk 0"),))
    m = _manager(tmp_path, app=_App(own=[own]))
    m.on_get_snapshots(PEER)
    m.on_get_chunk(PEER, bytes(bytearray(own.hash)), 0)  # equal bytes, another object
    for other in (b"\x00" * 32, b"\xff" * 32):  # not one of its snapshots, either side
        m.on_get_chunk(PEER, other, 0)
    (_, offered), (_, chunk), (_, low), (_, high) = m.wire.sent  # type: ignore[attr-defined]
    assert [Snapshot.from_wire(w) for w in offered.fields[0]] == [own]
    assert chunk.fields == (own.hash, 0, b"own chunk 0")
    assert low.fields == (b"\x00" * 32, 0, b"") and high.fields == (b"\xff" * 32, 0, b"")
    assert m.app.loaded == [(40, 7, 0)]  # type: ignore[attr-defined]


def test_a_commit_above_height_256_takes_its_snapshot(tmp_path):
    """The reader's height and the commit's are equal ints, not the same object."""
    spawned: list = []
    m = _manager(tmp_path, interval=500, spawned=spawned)
    m.store.height, m.store.items = int("1000"), _state(3)  # type: ignore[attr-defined]

    async def main():
        m.after_commit(int("1000"))
        assert len(spawned) == 1
        await spawned.pop()
        m.close()

    asyncio.run(main())
    assert [s.height for s in m.snapshots()] == [1000]


class _SlowReader(_Reader):
    def items(self):
        time.sleep(0.3)  # the walk is still running when the node stops
        return super().items()


def test_close_waits_for_a_snapshot_being_written(tmp_path):
    """The node closes the store after this: a walk still running would read a closed store."""
    spawned: list = []
    m = _manager(tmp_path, interval=10, spawned=spawned)
    m.store.state_reader = lambda: _SlowReader(10, _state(3))  # type: ignore[attr-defined]

    async def main():
        m.after_commit(10)
        task = asyncio.ensure_future(spawned.pop())
        await asyncio.sleep(0.05)  # the worker thread is in the walk
        m.close()
        assert (tmp_path / SNAPSHOTS_DIR / "10" / "manifest.msgpack").exists()
        await task

    asyncio.run(main())
