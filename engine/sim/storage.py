"""The simulated node's durable storage: the WAL and signer record the node keeps in LMDB, as
an in-memory model with the same contract (``engine.node.wal.WalStore``), plus what a crash
may do to it.

What survives a crash: every WAL record written (``wal_append_many``, or inside a signature's
transaction), the signer record, and decided blocks. ``lose_tail(k)`` models a damaged disk: the
last k WAL records are gone, the signer record and its history (every signature of its
height) stay, as the node's store keeps them outside the WAL. The double-sign guard has the store's rule: refuse a (height, round, step) below the last
signed one, or the same one with other bytes; return the stored signature for the same bytes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.store.store import DoubleSignRefused, SignerRecord, signed_before

__all__ = ["MemoryWalStore"]


class MemoryWalStore:
    def __init__(self) -> None:
        self.wal: list[tuple[int, bytes]] = []
        self.signer: SignerRecord | None = None
        #: Every (round, step, sign bytes, signature) of the signer record's height.
        self.history: list[tuple[int, int, bytes, bytes]] = []

    def wal_append_many(self, entries: Sequence[tuple[int, bytes]], *,
                        sync: bool = True) -> None:
        self.wal.extend(entries)

    def wal_replay(self, height: int) -> list[bytes]:
        return [e for h, e in self.wal if h == height]

    def sign_guarded(self, height: int, round: int, step: int, sign_bytes: bytes,
                     sign: Callable[[bytes], bytes], *,
                     wal_entry: Callable[[bytes], bytes] | None = None,
                     wal_before: Sequence[tuple[int, bytes]] = ()) -> bytes:
        stored = signed_before(self.signer, height, round, step, sign_bytes)
        if stored is not None:
            return stored
        signature = sign(sign_bytes)
        # One transaction: the buffered records, the signer record and the signature's record.
        self.wal.extend(wal_before)
        if self.signer is None or self.signer.height != height:
            self.history = []
        self.signer = SignerRecord(height, round, step, sign_bytes, signature)
        self.history.append((round, step, sign_bytes, signature))
        if wal_entry is not None:
            self.wal.append((height, wal_entry(signature)))
        return signature

    def sign_guarded_many(self, entries: Sequence[tuple[int, int, int, bytes, bytes, bytes]], *,
                          wal_before: Sequence[tuple[int, bytes]] = ()) -> None:
        """All or nothing, as the store's one transaction: judged in order against the record
        the entries before each one leave; a refusal changes nothing."""
        saved = (list(self.wal), self.signer, list(self.history))
        try:
            self.wal.extend(wal_before)
            for height, round, step, sign_bytes, signature, wal_entry in entries:
                stored = signed_before(self.signer, height, round, step, sign_bytes)
                if stored is not None:
                    if stored != signature:
                        raise DoubleSignRefused(f"another signature is recorded at "
                                                f"{(height, round, step)}")
                    continue
                if self.signer is None or self.signer.height != height:
                    self.history = []
                self.signer = SignerRecord(height, round, step, sign_bytes, signature)
                self.history.append((round, step, sign_bytes, signature))
                self.wal.append((height, wal_entry))
        except BaseException:
            self.wal, self.signer, self.history = saved
            raise

    def signer_record(self) -> SignerRecord | None:
        return self.signer

    def signer_history(self) -> list[tuple[int, int, bytes, bytes]]:
        return list(self.history)

    def drop_decided(self, height: int) -> None:
        """A block save drops the WAL of its height and below (in the block's transaction)."""
        self.wal = [(h, e) for h, e in self.wal if h > height]

    def lose_tail(self, count: int) -> int:
        """A damaged disk: the last ``count`` WAL records are gone. Returns how many were."""
        lost = min(count, len(self.wal))
        if lost:
            del self.wal[len(self.wal) - lost:]
        return lost
