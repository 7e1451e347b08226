"""Taking, keeping and serving state-sync snapshots (docs/state-sync.md).

Every ``snapshot_interval`` heights, right after the block's commit and on the event loop, the
manager opens one LMDB read transaction (:meth:`engine.store.Store.state_reader`): it sees the
state exactly as of that height whatever is committed next. A worker thread then walks it,
cuts it into format-1 chunks (``engine.snapshot``), writes them with their manifest into
``HOME/snapshots/tmp-<height>`` and renames the folder to ``HOME/snapshots/<height>`` once
everything is on disk, so a crash leaves either a whole snapshot or a ``tmp-`` folder that the
next start deletes. Consensus never waits for it. The newest ``snapshot_keep`` are kept.

Peers ask for the list (``GET_SNAPSHOTS``) and for chunks (``GET_CHUNK``); an application that
lists its own snapshots (``Application.list_snapshots``) is served instead of the engine's.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack

from engine import limits
from engine.app import Application
from engine.net import codec
from engine.node.ports import Counters
from engine.node.wire import PeerWire
from engine.snapshot import STATE_FORMAT, Snapshot, chunk_hash, encode_state_chunks
from engine.store import Store
from engine.store.store import StateReader

log = logging.getLogger("engine.node.snapshots")

__all__ = ["SNAPSHOTS_DIR", "SnapshotManager"]

SNAPSHOTS_DIR = "snapshots"
_MANIFEST = "manifest.msgpack"


def _chunk_name(index: int) -> str:
    return f"chunk-{index:06d}"


class SnapshotManager:
    def __init__(self, *, store: Store, app: Application, home: str, interval: int, keep: int,
                 wire: PeerWire, counters: Counters,
                 spawn: Callable[[Coroutine[Any, Any, None]], Any],
                 chunk_bytes: int | None = None):
        self.store = store
        self.app = app
        self.dir = os.path.join(home, SNAPSHOTS_DIR)
        self.interval = interval
        self.keep = keep
        self.wire = wire
        self.counters = counters
        self.spawn = spawn
        self.chunk_bytes = chunk_bytes or limits.snapshot_chunk_bytes
        self._by_hash: dict[bytes, tuple[Snapshot, str]] = {}
        #: peer -> (second, requests in it): the serving rate limit.
        self._served: dict[bytes, tuple[int, int]] = {}
        self._taking = False
        self._executor: ThreadPoolExecutor | None = None
        self._load_existing()

    # ---- what is kept -------------------------------------------------------------------
    def _load_existing(self) -> None:
        if not os.path.isdir(self.dir):
            return
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            if name.startswith("tmp-"):  # a snapshot cut short by a crash
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                with open(os.path.join(path, _MANIFEST), "rb") as f:
                    snap = Snapshot.from_wire(msgpack.unpackb(f.read(), raw=False))
            except (OSError, ValueError, TypeError, msgpack.UnpackException) as e:
                log.error("ignoring snapshot folder %s: %s", path, e)
                continue
            if snap.well_formed():
                self._by_hash[snap.hash] = (snap, path)

    def snapshots(self) -> list[Snapshot]:
        """Kept snapshots, newest first."""
        return sorted((s for s, _ in self._by_hash.values()), key=lambda s: -s.height)

    def oldest_height(self) -> int | None:
        """The lowest height a kept snapshot restores to: pruning keeps that block and the
        next (a joining node verifies the snapshot's app hash against the next header)."""
        heights = [s.height for s, _ in self._by_hash.values()]
        return min(heights) if heights else None

    def load_chunk(self, snapshot_hash: bytes, index: int) -> bytes | None:
        kept = self._by_hash.get(snapshot_hash)
        if kept is None or not 0 <= index < kept[0].chunks:
            return None
        try:
            with open(os.path.join(kept[1], _chunk_name(index)), "rb") as f:
                return f.read()
        except OSError as e:
            log.error("snapshot chunk unreadable: %s", e)
            return None

    # ---- taking ---------------------------------------------------------------------------
    def after_commit(self, height: int) -> None:
        if not self.interval or height % self.interval or self._taking:
            return
        if self.app.list_snapshots() is not None:
            return  # the application snapshots itself
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # replay at start-up: the next interval takes one
            return
        reader = self.store.state_reader()  # the state as of this very commit
        if reader.height != height:
            reader.close()
            return
        self._taking = True
        self.spawn(self._take(reader))

    async def _take(self, reader: StateReader) -> None:
        try:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="engine-snapshot")
            loop = asyncio.get_running_loop()
            snap, path = await loop.run_in_executor(self._executor, self.write_snapshot,
                                                    reader)
        finally:
            self._taking = False
        self._by_hash[snap.hash] = (snap, path)
        self.counters.add("snapshots_taken")
        log.info("snapshot at height %d: %d chunks", snap.height, snap.chunks)
        self._trim()

    def take_now(self) -> Snapshot:
        """Take a snapshot of the current state on this thread (tools and tests)."""
        with self.store.state_reader() as reader:
            snap, path = self.write_snapshot(reader)
        self._by_hash[snap.hash] = (snap, path)
        self._trim()
        return snap

    def write_snapshot(self, reader: StateReader) -> tuple[Snapshot, str]:
        """Walk ``reader`` into chunk files and a manifest; closes the reader (worker thread)."""
        try:
            height = reader.height
            final = os.path.join(self.dir, str(height))
            tmp = os.path.join(self.dir, f"tmp-{height}")
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            hashes = []
            for i, chunk in enumerate(encode_state_chunks(reader.items(), self.chunk_bytes)):
                _write_synced(os.path.join(tmp, _chunk_name(i)), chunk)
                hashes.append(chunk_hash(chunk))
            snap = Snapshot(height, STATE_FORMAT, reader.app_hash, tuple(hashes))
        finally:
            reader.close()
        _write_synced(os.path.join(tmp, _MANIFEST), msgpack.packb(snap.to_wire(),
                                                                  use_bin_type=True))
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        _sync_dir(self.dir)
        return snap, final

    def _trim(self) -> None:
        for snap in self.snapshots()[self.keep:]:
            _, path = self._by_hash.pop(snap.hash)
            shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # ---- serving peers --------------------------------------------------------------------
    def _allowed(self, peer: bytes) -> bool:
        second = int(time.monotonic())
        last, count = self._served.get(peer, (second, 0))
        count = count + 1 if last == second else 1
        if len(self._served) > 4096:
            self._served.clear()
        self._served[peer] = (second, count)
        if count > limits.snapshot_requests_per_peer_per_s_max:
            self.counters.add("snapshot_requests_dropped")
            return False
        return True

    def on_get_snapshots(self, peer: bytes) -> None:
        if not self._allowed(peer):
            return
        own = self.app.list_snapshots()
        offered = own if own is not None else self.snapshots()
        items = [s.to_wire() for s in offered[:codec.SNAPSHOTS_PER_MESSAGE_MAX]]
        self.wire.send(peer, codec.encode(codec.SNAPSHOTS, items))

    def on_get_chunk(self, peer: bytes, snapshot_hash: bytes, index: int) -> None:
        if not self._allowed(peer):
            return
        chunk = None
        own = self.app.list_snapshots()
        if own is not None:
            snap = next((s for s in own if s.hash == snapshot_hash), None)
            if snap is not None:
                chunk = self.app.load_snapshot_chunk(snap.height, snap.format, index)
        else:
            chunk = self.load_chunk(snapshot_hash, index)
        self.counters.add("snapshot_chunks_served" if chunk else "snapshot_chunks_missing")
        self.wire.send(peer, codec.encode(codec.CHUNK, snapshot_hash, index, chunk or b""))


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
