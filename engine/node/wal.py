"""The consensus WAL on the driver's side: the record codec, and the journal that buffers records
and makes them durable together with each own signature (persist before send).

Records are msgpack arrays whose first item is the kind. ``SIGNED`` records what this node
signed at a height; it is written by ``sign_guarded`` in the same durable transaction as the
signer record, and on restart rebuilds the signer's history instead of being stepped.
``RESUME`` is the Resume fed after a replay that left the core behind its signer record (a
damaged WAL).

Why buffer: one synced LMDB transaction per received vote would cost more than the vote. The
records an own signature depends on are written in that signature's durable transaction
(``wal_before``), so persist-before-send still covers every input that led to a signed
message. A crash can only lose inputs received after the last signature (a killed process at
most ``wal_flush_ms`` of them: the buffer is written that often, as an ordered but not durable
transaction, see ``engine.store.Store``; a power cut may lose all since the last signature): to
recovery that looks like messages lost in the network, which peers re-send (own messages are
re-sent on reconnect and on stalls).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgpack

from engine import consensus as cs
from engine import limits
from engine.node.ports import Timers

__all__ = ["Journal", "WalStore", "decode_record", "encode_event"]

PROPOSAL, VOTE, TIMEOUT, VALUE, COMMIT, SIGNED, RESUME, START = range(1, 9)


def encode_event(event: Any) -> bytes:
    """The WAL record of a consensus input."""
    if isinstance(event, cs.ProposalReceived):
        rec = [PROPOSAL, event.proposal.encode(), event.block]
    elif isinstance(event, cs.VoteReceived):
        rec = [VOTE, event.vote.encode()]
    elif isinstance(event, cs.TimeoutFired):
        rec = [TIMEOUT, event.height, event.round, int(event.step)]
    elif isinstance(event, cs.ValueReady):
        rec = [VALUE, event.height, event.round, event.block]
    elif isinstance(event, cs.CommitReceived):
        rec = [COMMIT, event.block, event.certificate.encode()]
    elif isinstance(event, cs.Resume):
        rec = [RESUME, event.height, [list(e) for e in event.signed]]
    elif isinstance(event, cs.Start):
        rec = [START, event.height]
    else:
        raise TypeError(f"no WAL record for {type(event).__name__}")
    return msgpack.packb(rec, use_bin_type=True)


def encode_signed(round: int, step: int, sign_bytes: bytes, signature: bytes) -> bytes:
    return msgpack.packb([SIGNED, round, step, sign_bytes, signature], use_bin_type=True)


def decode_record(raw: bytes, validators_count: int) -> Any:
    """The consensus input of a WAL record, or None for a SIGNED record (not an input)."""
    rec = msgpack.unpackb(raw, raw=False)
    kind = rec[0]
    if kind == PROPOSAL:
        return cs.ProposalReceived(cs.Proposal.decode(rec[1]), rec[2])
    if kind == VOTE:
        return cs.VoteReceived(cs.Vote.decode(rec[1]))
    if kind == TIMEOUT:
        return cs.TimeoutFired(rec[1], rec[2], cs.Step(rec[3]))
    if kind == VALUE:
        return cs.ValueReady(rec[1], rec[2], rec[3])
    if kind == COMMIT:
        return cs.CommitReceived(rec[1], cs.CommitCertificate.decode(rec[2], validators_count))
    if kind == SIGNED:
        return None
    if kind == RESUME:
        return cs.Resume(rec[1], tuple((r, s, sb, sig) for r, s, sb, sig in rec[2]))
    if kind == START:
        return cs.Start(rec[1])
    raise ValueError(f"unknown WAL record kind {kind}")


class WalStore(Protocol):
    """What the journal needs of the store (``engine.store.Store``; the simulator has a model)."""

    def wal_append_many(self, entries: Sequence[tuple[int, bytes]], *,
                        sync: bool = True) -> None: ...

    def wal_replay(self, height: int) -> list[bytes]: ...

    def sign_guarded(self, height: int, round: int, step: int, sign_bytes: bytes,
                     sign: Callable[[bytes], bytes], *,
                     wal_entry: Callable[[bytes], bytes] | None = None,
                     wal_before: Sequence[tuple[int, bytes]] = ()) -> bytes: ...

    def sign_guarded_many(self, entries: Sequence[tuple[int, int, int, bytes, bytes, bytes]], *,
                          wal_before: Sequence[tuple[int, bytes]] = ()) -> None: ...

    def signer_record(self) -> Any: ...

    def signer_history(self) -> list[tuple[int, int, bytes, bytes]]:
        """Every (round, step, sign bytes, signature) of the signer record's height."""
        ...


class Journal:
    """Buffered WAL records, flushed with the next own signature or after ``flush_ms``."""

    def __init__(self, store: WalStore, timers: Timers, *,
                 flush_ms: int = limits.wal_flush_ms,
                 pending_bytes_max: int = limits.wal_pending_bytes_max):
        self.store = store
        self._timers = timers
        self._flush_ms = flush_ms
        self._pending_bytes_max = pending_bytes_max
        #: Records (height, entry) of inputs already stepped but not yet written.
        self.pending: list[tuple[int, bytes]] = []
        self._pending_bytes = 0
        self._flush_timer: Any = None
        #: (height, round, step, signature) known to be durable: re-sending needs no write.
        self._persisted: set[tuple[int, int, int, bytes]] = set()

    # ---- inputs ---------------------------------------------------------------------------
    def append(self, height: int, entry: bytes) -> None:
        self.pending.append((height, entry))
        self._pending_bytes += len(entry)
        if self._pending_bytes > self._pending_bytes_max:
            self.flush()
        elif self._flush_timer is None:
            self._flush_timer = self._timers.call_later(self._flush_ms, self.flush)

    def discard_last(self) -> None:
        """Forget the record just appended: its input was refused and changed nothing."""
        if self.pending:
            _, entry = self.pending.pop()
            self._pending_bytes -= len(entry)

    def flush(self) -> None:
        """Write the buffered records in one transaction."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self.pending:
            # Not a durable write: these inputs are on disk with the next signature at the
            # latest (a crash before it loses them like messages lost in the network).
            self.store.wal_append_many(self.pending, sync=False)
        self._written()

    def _written(self) -> None:
        self.pending = []
        self._pending_bytes = 0

    def drop_decided(self, height: int) -> None:
        """The block save dropped the WAL of ``height`` and below: so do the buffered records."""
        kept = [(h, e) for h, e in self.pending if h > height]
        if len(kept) != len(self.pending):
            self.pending = kept
            self._pending_bytes = sum(len(e) for _, e in kept)

    # ---- signatures -----------------------------------------------------------------------
    def persist_signature(self, height: int, round: int, step: int, sign_bytes: bytes,
                          signature: bytes) -> None:
        """Make the signature durable (signer record, its SIGNED record and every record
        buffered before it, in one synced transaction) before it may be sent. Raises the
        store's DoubleSignRefused or StoreError when it cannot be; a signature already on
        disk (re-sent after a replay) needs nothing more."""
        key = (height, round, step, signature)
        if key in self._persisted:
            return
        self.store.sign_guarded(
            height, round, step, sign_bytes, lambda _: signature,
            wal_entry=lambda sig: encode_signed(round, step, sign_bytes, sig),
            wal_before=self.pending)
        self._written()
        if len(self._persisted) > limits.persisted_signatures_max:
            self._persisted = {k for k in self._persisted if k[0] >= height}
        self._persisted.add(key)

    def persist_signatures(self, signed: Sequence[tuple[int, int, int, bytes, bytes]]) -> None:
        """Make several signatures of one step durable in one synced transaction (the rule and
        the order of :meth:`persist_signature`, entry by entry). Raises as the store does when
        one is refused; then nothing was written and the caller may go one by one."""
        todo = [e for e in signed if (e[0], e[1], e[2], e[4]) not in self._persisted]
        if not todo:
            return
        self.store.sign_guarded_many(
            [(h, r, s, sb, sig, encode_signed(r, s, sb, sig)) for h, r, s, sb, sig in todo],
            wal_before=self.pending)
        self._written()
        height = max(e[0] for e in todo)
        if len(self._persisted) > limits.persisted_signatures_max:
            self._persisted = {k for k in self._persisted if k[0] >= height}
        self._persisted.update((h, r, s, sig) for h, r, s, _, sig in todo)

    def mark_persisted(self, height: int, signed: Sequence[tuple[int, int, bytes, bytes]]) -> None:
        """Signatures read back from a durable record: re-sending them needs no new write."""
        self._persisted.update((height, r, s, sig) for r, s, _, sig in signed)

    # ---- recovery -------------------------------------------------------------------------
    def replay(self, height: int, validators_count: int) -> list[Any]:
        """The inputs recorded for ``height``, decoded, in order; records that no longer
        decode are skipped (returned as exceptions so the caller can count and log them)."""
        out: list[Any] = []
        for raw in self.store.wal_replay(height):
            try:
                event = decode_record(raw, validators_count)
            except (cs.ProtocolError, ValueError, TypeError, IndexError) as e:
                out.append(e)
                continue
            if isinstance(event, cs.Resume):
                self.mark_persisted(event.height, event.signed)
            if event is not None:
                out.append(event)
        return out

    def restore_signer_state(self) -> cs.SignerState | None:
        """The persisted signer record with every signature of its height: the store keeps
        them all outside the WAL (``signer_history``), so a validator whose WAL lost records
        (or all of them) restores its votes, and so its lock, exactly. SIGNED records of the
        WAL are merged in (a store written before the history existed has only those)."""
        stored = self.store.signer_record()
        if stored is None:
            return None
        entries: dict[tuple[int, int], tuple[int, int, bytes, bytes]] = {}
        for r, step, sign_bytes, sig in self.store.signer_history():
            entries[(r, step)] = (r, step, bytes(sign_bytes), bytes(sig))
        for raw in self.store.wal_replay(stored.height):
            rec = msgpack.unpackb(raw, raw=False)
            if rec[0] == SIGNED:
                _, r, step, sign_bytes, sig = rec
                entries.setdefault((r, step), (r, step, sign_bytes, sig))
        # The last signature is in the record itself.
        entries.setdefault((stored.round, stored.step),
                           (stored.round, stored.step, stored.sign_bytes, stored.signature))
        history = tuple(entries[k] for k in sorted(entries))
        for r, step, _, sig in history:
            self._persisted.add((stored.height, r, step, sig))
        return cs.SignerState(stored.height, stored.round, stored.step, stored.sign_bytes,
                              stored.signature, history)
