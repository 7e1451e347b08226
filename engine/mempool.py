"""The mempool: batched admission of signed transactions, and the pool proposals are cut from.

Admission collects envelopes for up to ``batch_txs_max`` transactions or ``batch_wait_ms``,
whichever comes first, then on a worker thread (the native calls release the GIL) hashes them
all (transaction id = BLAKE3 of the envelope, one SIMD batch call) and verifies all their
signatures with one ``verify_txs`` call. Back on the event loop each survivor goes through the
application's ``check_tx`` and enters the pool in arrival order.

With ``check_tx_pending`` the check is ``check_tx(tx, pending)``: ``pending`` (a
:class:`Senders`) shows the transactions already pooled per sender, so an account application
can judge a transaction against its pool (nonce gaps, overdrafts across pooled transfers).
:meth:`Mempool.recheck` re-judges every pooled transaction (after each commit) and evicts what
became invalid. Blocks are cut by :meth:`Mempool.reap` in arrival order, or by the priority
``check_tx`` returned (higher first), and each sender's transactions in nonce order.

Refused with a clear reason: malformed envelopes, bad signatures, duplicates (pooled, in flight
or already committed), transactions over ``tx_bytes_max``, and anything beyond the count or
byte limits of the pool, and (with a nonce table, ``engine/nonces.py``) a sender's nonce that
was committed or fell out of its window (``stale_nonce``) or that a pooled transaction already
uses (``duplicate``). A batch that finds the pool full is refused as ``mempool_full`` without
its signatures being checked (under overload that work would only be taken from consensus).
Transaction ids verified here are remembered (bounded), so when the
same transaction comes back inside a proposal it is not verified again; ``remove_committed``
takes a block's transactions out of the pool.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from engine import _poolcore
from engine import limits as _limits
from engine.suite import DEFAULT, Suite

__all__ = ["AddResult", "Mempool", "MempoolLimits", "Senders"]

log = logging.getLogger("engine.mempool")

# Result codes (also the RPC error names).
OK = "ok"
DUPLICATE = "duplicate"
MALFORMED = "malformed"
BAD_SIGNATURE = "bad_signature"
APP_REJECTED = "app_rejected"
FULL = "mempool_full"
TOO_LARGE = "tx_too_large"
#: The application's check raised: that transaction is refused, never its batch.
APP_ERROR = "app_error"
#: The node halted (a broken invariant): it admits nothing more.
HALTED = "halted"
#: Evicted by a recheck after a commit (counted in ``rejected``).
EVICTED = "recheck_evicted"
#: Admission itself failed (a verifier or store error): the batch is refused, not lost silently.
INTERNAL_ERROR = "internal_error"
#: The sender's nonce was used or is outside its window (replay protection, engine/nonces.py).
STALE_NONCE = "stale_nonce"


@dataclass(frozen=True)
class AddResult:
    code: str
    tx_id: bytes
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.code == OK


def _ok_result(tx_id: bytes) -> AddResult:
    return AddResult(OK, tx_id)


@dataclass(frozen=True)
class MempoolLimits:
    txs_max: int = 100_000
    bytes_max: int = 256 << 20
    tx_bytes_max: int = 64 * 1024
    batch_txs_max: int = 4096
    batch_wait_ms: int = 2
    #: Transactions admitted between two yields to the event loop.
    admit_chunk_txs: int = 512
    #: Transactions waiting for admission at most; beyond, new ones are refused as
    #: ``mempool_full`` at once (gossiped ones dropped), so an overloaded node sheds load
    #: instead of spending its event loop on a backlog while consensus waits.
    pending_txs_max: int = 16_384
    #: Verified ids remembered so a proposal does not re-verify what admission already did.
    verified_cache_max: int = _limits.mempool_verified_ids_cached_max
    #: Recently committed ids remembered, so a re-sent transaction is refused without a store
    #: lookup (older ones are still refused, through ``find_committed``).
    committed_cache_max: int = _limits.mempool_committed_ids_cached_max

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if type(value) is not int or value < 0 or (value == 0 and name != "batch_wait_ms"):
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if self.tx_bytes_max > self.bytes_max:
            raise ValueError("tx_bytes_max must not exceed bytes_max")


def _default_verify(envelopes: Sequence[bytes], chain_id: bytes, threads: int | None,
                    suite: Suite = DEFAULT) -> list[bool]:
    from engine import tx

    return tx.verify_txs(list(envelopes), chain_id, threads=threads, suite=suite)


_decode_verified: Callable[[bytes, bytes], Any] | None = None


def _decode_with_id(envelope: bytes, tx_id: bytes) -> Any:
    """engine.tx.decode_verified: the envelope passed ``verify_txs`` and its id is known."""
    global _decode_verified
    if _decode_verified is None:
        from engine.tx import decode_verified  # bound late: engine.tx imports the native kernel

        _decode_verified = decode_verified
    return _decode_verified(envelope, tx_id)


def _decode_many(envelopes: list[bytes], ids: list[bytes]) -> list[Any]:
    """engine._txcodec.decode_verified_many into engine.tx.Tx (bound late, as above)."""
    from engine._txcodec import decode_verified_many
    from engine.tx import Tx

    return decode_verified_many(Tx, envelopes, ids)


_admit_types: tuple[type, type] | None = None


def _common_types() -> tuple[type, type]:
    """(engine.tx.Tx, engine.app.CheckResult), bound late as above: what admission's compiled
    common case takes (any other decoded or check type goes through ``Mempool._admit_one``)."""
    global _admit_types
    if _admit_types is None:
        from engine.app import CheckResult
        from engine.tx import Tx

        _admit_types = (Tx, CheckResult)
    return _admit_types


def _suite_refusal(envelope: bytes, suite: Suite) -> str:
    from engine.tx import suite_refusal  # bound late, as _decode_with_id

    return f"malformed envelope: {suite_refusal(envelope, suite)}"


class Senders:
    """The pool by sender (the ``pending`` view of ``check_tx(tx, pending)``): pooled
    transactions of one sender in nonce order, and the next nonce after them."""

    __slots__ = ("_decoded", "_max", "_txs")

    def __init__(self, decoded: dict[bytes, Any]):
        self._decoded = decoded
        self._txs: dict[bytes, dict[bytes, int]] = {}  # sender -> {tx id: nonce}
        self._max: dict[bytes, int] = {}  # sender -> highest pooled nonce

    def add(self, sender: bytes, nonce: int, tx_id: bytes) -> bool:
        """Index a pooled transaction; True when it arrived after a higher nonce of its
        sender (blocks must then be reordered)."""
        mine = self._txs.get(sender)
        if mine is None:
            self._txs[sender] = {tx_id: nonce}
            self._max[sender] = nonce
            return False
        mine[tx_id] = nonce
        highest = self._max[sender]
        if nonce >= highest:
            self._max[sender] = nonce
            return False
        return True

    def remove(self, sender: bytes, tx_id: bytes) -> None:
        self.remove_many(((sender, tx_id),))

    def remove_many(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        """Unindex pooled transactions, given as (sender, tx id) (a block's worth at once)."""
        _poolcore.unindex_many(self._txs, self._max, pairs)

    def by_sender(self, sender: bytes) -> list[Any]:
        mine = self._txs.get(bytes(sender), {})
        return [self._decoded[t] for t, _ in sorted(mine.items(), key=lambda kv: kv[1])]

    def ids_by_nonce(self, sender: bytes) -> list[bytes]:
        """The pooled ids of ``sender``, highest nonce first (pop() gives the lowest)."""
        mine = self._txs.get(sender, {})
        return [t for t, _ in sorted(mine.items(), key=lambda kv: kv[1], reverse=True)]

    def next_nonce(self, sender: bytes) -> int | None:
        highest = self._max.get(bytes(sender))
        return None if highest is None else highest + 1

    def __len__(self) -> int:
        return len(self._txs)


class _Results:
    """The answers to one add_many call, resolved together when the last one is known."""

    __slots__ = ("future", "left", "values")

    def __init__(self, count: int, future: asyncio.Future):
        self.values: list[Any] = [None] * count
        self.left = count
        self.future = future


class _Slot:
    """One transaction's place in a _Results (the subset of the Future API admission uses)."""

    __slots__ = ("index", "results")

    def __init__(self, results: _Results, index: int):
        self.results, self.index = results, index

    def done(self) -> bool:
        return self.results.future.done()

    def set_result(self, value: AddResult) -> None:
        r = self.results
        if r.values[self.index] is not None:
            return  # answered already (a failed batch answers only what is still open)
        r.values[self.index] = value
        r.left -= 1
        if not r.left and not r.future.done():
            r.future.set_result(r.values)

    def set_exception(self, error: BaseException) -> None:
        if not self.results.future.done():
            self.results.future.set_exception(error)

    def cancel(self) -> None:
        self.results.future.cancel()


class Mempool:
    """Pending transactions of one node. All methods run on the node's event loop."""

    def __init__(self, *, chain_id: bytes, check_tx: Callable[..., Any],
                 find_committed: Callable[[list[bytes]], list[bool]],
                 limits: MempoolLimits | None = None,
                 executor: Executor | None = None, verify_threads: int | None = None,
                 verify: Callable[..., list[bool]] = _default_verify,
                 decode: Callable[[bytes], Any] | None = None,
                 on_admitted: Callable[[list[bytes]], None] | None = None,
                 check_tx_pending: bool = False, nonces: Any = None, suite: Suite = DEFAULT,
                 check_txs: Callable[[list[Any]], list[Any]] | None = None):
        self.chain_id = chain_id
        #: The chain's crypto suite: tx ids, signatures, the envelope version admitted.
        self.suite = suite
        if verify is _default_verify and not suite.is_default:
            verify = (lambda envs, cid, threads: _default_verify(envs, cid, threads, suite))
        self.limits = limits or MempoolLimits()
        self._check_tx = check_tx
        self._find_committed = find_committed
        self._executor = executor
        self._threads = verify_threads
        self._verify = verify
        self._decode_with_id: Callable[[bytes, bytes], Any] = (
            _decode_with_id if decode is None else (lambda env, tx_id: decode(env)))
        #: Decoded transactions of the pool, so executing a block does not decode them again.
        self._decoded: dict[bytes, Any] = {}
        self._check_tx_pending = check_tx_pending
        #: The batch form of check_tx (one call per admission chunk), or None; the calls that
        #: raised or answered a wrong count (their chunk was then checked one by one).
        self._check_txs = None if check_tx_pending else check_txs
        self.batch_check_failures = 0
        #: The pool by sender (what ``check_tx(tx, pending)`` sees).
        self.pending = Senders(self._decoded)
        #: App priorities of pooled transactions (only the non-zero ones).
        self._priority: dict[bytes, int] = {}
        #: Senders whose pooled transactions arrived out of nonce order, and the ids of their
        #: pooled transactions: only those are reordered when a block is cut.
        self._disordered: set[bytes] = set()
        self._reorder_ids: set[bytes] = set()
        self._on_admitted = on_admitted or (lambda envelopes: None)
        #: Called with (step, envelopes) at the steps of admission (engine/node/txtrace.py:
        #: "queued_local", "queued_peer", "verified", "admitted"); None: no tracing.
        self.trace: Callable[[str, Sequence[bytes]], None] | None = None
        #: tx id -> envelope, in arrival order (a plain dict: _poolcore changes it natively).
        self._pool: dict[bytes, bytes] = {}
        self._pool_bytes = 0
        #: Verified ids that are not pooled, and recently committed ids (bounded FIFO sets).
        self._verified = _poolcore.RecentIds(self.limits.verified_cache_max)
        self._committed = _poolcore.RecentIds(self.limits.committed_cache_max)
        self._pending: list[tuple[bytes, _Slot | None, bool]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        #: Called with (batch size, seconds spent hashing + verifying) after every batch.
        self.observe_batch: Callable[[int, float], None] = lambda size, seconds: None
        #: Called with (stage, thread CPU seconds): "admission" and "verification"
        #: (engine/node/stagecpu.py).
        self.stage_cpu: Callable[[str, float], None] = lambda stage, seconds: None
        self.rejected: dict[str, int] = {}
        #: Replay protection (engine.nonces.NonceTable), or None: nonces not enforced.
        self._nonces = nonces
        self._pooled_nonces: dict[bytes, dict[int, bytes]] = {}  # sender -> nonce -> tx id

    # --------------------------------------------------------------- life cycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._admission_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for _, fut, _ in self._pending:
            if fut is not None and not fut.done():
                fut.cancel()
        self._pending.clear()

    # --------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._pool)

    @property
    def size_bytes(self) -> int:
        return self._pool_bytes

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._pool

    def envelope(self, tx_id: bytes) -> bytes | None:
        """The pooled envelope with this id, or None."""
        return self._pool.get(tx_id)

    def decoded(self, tx_id: bytes) -> Any | None:
        """The decoded transaction of a pooled id (None when not pooled)."""
        return self._decoded.get(tx_id)

    def decoded_many(self, tx_ids: Sequence[bytes]) -> list[Any | None]:
        """:meth:`decoded` of each id, in one call (a block's worth)."""
        return list(map(self._decoded.get, tx_ids))

    def envelopes(self, tx_ids: Sequence[bytes]) -> list[bytes | None]:
        """:meth:`envelope` of each id, in one call (a compact proposal's worth)."""
        return list(map(self._pool.get, tx_ids))

    def unverified(self, tx_ids: Sequence[bytes]) -> list[int]:
        """The indices of the ids this node has not verified (:meth:`is_verified`), in order."""
        pool, verified = self._pool, self._verified
        return [i for i, t in enumerate(tx_ids) if t not in pool and t not in verified]

    def is_verified(self, tx_id: bytes) -> bool:
        """Whether this node verified the transaction's signature (every pooled one was)."""
        return tx_id in self._pool or tx_id in self._verified

    def reap(self, txs_max: int, bytes_max: int) -> list[bytes]:
        """The pooled envelopes that fit in a block, oldest first (or highest priority first),
        each sender's in nonce order (they stay pooled until committed). With a nonce table, a
        transaction whose nonce an earlier one of the block moved out of its sender's window is
        left for later (the block must pass ``check_block``)."""
        ids = self._ordered_ids() if self._priority or self._disordered else iter(self._pool)
        out: list[bytes] = []
        total = 0
        windows: dict[bytes, Any] = {}
        pool, decoded, nonces = self._pool, self._decoded, self._nonces
        for tx_id in ids:
            envelope = pool[tx_id]
            if len(out) >= txs_max or total + len(envelope) > bytes_max:
                break
            if nonces is not None:
                tx = decoded[tx_id]
                sender, nonce = tx.sender, tx.nonce
                w = windows.get(sender)
                if w is None:
                    w = windows[sender] = nonces.window(sender).copy()
                if nonce == w.highest + 1:
                    w.highest = nonce  # the next in sequence (most): what use() would do
                else:
                    if w.refusal(nonce) is not None:
                        continue
                    w.use(nonce)
            out.append(envelope)
            total += len(envelope)
        return out

    def _ordered_ids(self) -> Iterator[bytes]:
        """Slots in priority (then arrival) order; a slot of a sender is filled with that
        sender's lowest pooled nonce not taken yet, so a block never runs a sender's
        transactions out of order nor skips one it could have carried."""
        ids: Iterable[bytes] = self._pool  # walked lazily: a block is far smaller than the pool
        every = bool(self._priority)  # priorities may reorder any sender's transactions
        if every:
            prio = self._priority
            ids = sorted(self._pool, key=lambda t: -prio.get(t, 0))  # stable: arrival order
        decoded, reorder = self._decoded, self._reorder_ids
        queues: dict[bytes, list[bytes]] = {}
        for tx_id in ids:
            sender = getattr(decoded.get(tx_id), "sender", None) \
                if every or tx_id in reorder else None
            if sender is not None:
                queue = queues.get(sender)
                if queue is None:
                    queue = queues[sender] = self.pending.ids_by_nonce(sender)
                tx_id = queue.pop()
            yield tx_id

    # --------------------------------------------------------------- admission
    async def add(self, envelope: bytes) -> AddResult:
        """Admit one envelope; resolves when its batch has been verified and checked."""
        return (await self.add_many([envelope]))[0]

    async def add_many(self, envelopes: Sequence[bytes], *, local: bool = True) -> list[AddResult]:
        if not envelopes:
            return []
        # One future for the whole request (a future and a gather callback per transaction
        # cost more than admitting it).
        results = _Results(len(envelopes), asyncio.get_running_loop().create_future())
        self._enqueue_many(envelopes, results, local)
        return await results.future

    def submit(self, envelopes: Sequence[bytes], *, local: bool = False) -> None:
        """Admit envelopes without waiting for the outcome (transactions gossiped by peers)."""
        self._enqueue_many(envelopes, None, local)

    def _enqueue_many(self, envelopes: Sequence[bytes], results: _Results | None,
                      local: bool) -> None:
        """Queue envelopes for admission (with ``results``, each answers its slot in it);
        beyond ``pending_txs_max`` waiting, refused as ``mempool_full`` at once."""
        pending = self._pending
        room = self.limits.pending_txs_max - len(pending)
        if results is None and type(envelopes) is list and len(envelopes) <= room \
                and set(map(type, envelopes)) <= {bytes}:
            # A peer's batch (nobody waits for its answers) that fits: queued in C-level
            # passes, the same items the loop below would queue.
            pending.extend(zip(envelopes, itertools.repeat(None), itertools.repeat(local)))
            if self.trace is not None:
                self.trace("queued_local" if local else "queued_peer", envelopes)
            if pending:
                self._wakeup.set()
            return
        queued_from = len(pending)
        try:
            for i, envelope in enumerate(envelopes):
                kind = type(envelope)
                if kind is not bytes:
                    if not isinstance(envelope, (bytes, bytearray)):
                        raise TypeError(f"envelope must be bytes, not {kind.__name__}")
                    envelope = bytes(envelope)
                slot = _Slot(results, i) if results is not None else None
                if room > 0:
                    pending.append((envelope, slot, local))
                    room -= 1
                    continue
                self.rejected[FULL] = self.rejected.get(FULL, 0) + 1
                if slot is not None:
                    slot.set_result(AddResult(FULL, self.suite.hash(envelope), "admission queue "
                                              f"is full ({len(pending)} transactions waiting)"))
        finally:  # what was queued before a refused argument is admitted as before
            if self.trace is not None and len(pending) > queued_from:
                self.trace("queued_local" if local else "queued_peer",
                           [env for env, _, _ in pending[queued_from:]])
            if pending:
                self._wakeup.set()

    async def _admission_loop(self) -> None:
        lim = self.limits
        while True:
            await self._wakeup.wait()
            if len(self._pending) < lim.batch_txs_max and lim.batch_wait_ms:
                await asyncio.sleep(lim.batch_wait_ms / 1000)
            batch = self._pending[: lim.batch_txs_max]
            del self._pending[: lim.batch_txs_max]
            if not self._pending:
                self._wakeup.clear()
            if batch:
                try:
                    await self._admit(batch)
                except Exception as e:  # noqa: BLE001 - a verifier failure must not wedge admission
                    # Each waiting caller gets a refusal it can report (never an exception
                    # that would surface as an HTTP 500).
                    for env, fut, _ in batch:
                        if fut is not None and not fut.done():
                            fut.set_result(self._reject(INTERNAL_ERROR, self.suite.hash(env),
                                                        f"admission failed: {e!r}"))

    def _reject(self, code: str, tx_id: bytes, log: str) -> AddResult:
        self.rejected[code] = self.rejected.get(code, 0) + 1
        return AddResult(code, tx_id, log)

    async def _admit(self, batch: list[tuple[bytes, _Slot | None, bool]]) -> None:
        envelopes = [env for env, _, _ in batch]
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        # A full pool refuses everything new: the signatures are then not worth checking
        # (under overload that work would be taken from consensus for nothing).
        full = len(self._pool) >= self.limits.txs_max or \
            self._pool_bytes >= self.limits.bytes_max
        ids, verdicts = await loop.run_in_executor(self._executor, self._hash_and_verify,
                                                   envelopes, full)
        self.observe_batch(len(batch), time.perf_counter() - started)
        trace = self.trace
        if trace is not None:
            trace("verified", envelopes)
        committed: set[bytes] = set()
        if self._nonces is None:
            # One store lookup for the whole batch (pooled and recently committed ids need
            # none). With nonces enforced there is none at all: a committed transaction
            # consumed its (sender, nonce), so the nonce check refuses it, and the store is
            # asked only then, to say "already committed" rather than "stale nonce".
            unknown = [t for t in ids if t not in self._pool and t not in self._committed]
            found = self._find_committed(unknown) if unknown else []
            committed = {t for t, hit in zip(unknown, found) if hit}
        step = self.limits.admit_chunk_txs
        for start in range(0, len(batch), step):
            if start:
                # Let consensus messages and RPC calls in between chunks: a big batch would
                # otherwise hold the loop for tens of milliseconds. The checks in _admit_chunk
                # are live, so a block committed meanwhile is still refused as a duplicate.
                await asyncio.sleep(0)
            t0 = time.thread_time()
            self._admit_chunk(batch[start:start + step], ids[start:start + step],
                              verdicts[start:start + step], committed)
            self.stage_cpu("admission", time.thread_time() - t0)
            if trace is not None:
                trace("admitted", envelopes[start:start + step])

    def _admit_chunk(self, batch: list[tuple[bytes, _Slot | None, bool]],
                     ids: list[bytes], verdicts: list[bool | None], committed: set[bytes]) -> None:
        """Pool a chunk of hashed and verified envelopes, in order. Every node runs this for
        every transaction: the verified envelopes are decoded in one native call and checked
        by the app in one batch call, then the common case (every check passes) runs in
        compiled code (engine/_poolcore.pyx ``admit_run``), which stops at any transaction that
        is not that case for ``_admit_one`` to take through the checks, in the order and with
        the reasons of the module docstring: size, pooled, committed, signature, layout, pool
        limits, nonces, check_tx."""
        lim = self.limits
        nonces = self._nonces
        admitted: list[bytes] = []
        # The verified envelopes decoded in one native call (None where not verified or off
        # the layout: those take the per-envelope decoder, which says why).
        envs = [env for env, _, _ in batch]
        txs = _decode_many(envs, ids) if self._decode_with_id is _decode_with_id \
            else [None] * len(envs)
        checks = self._batch_checks(txs, verdicts)
        pending = self.pending
        tx_type, check_type = _common_types()
        i, n = 0, len(batch)
        while i < n:
            i, self._pool_bytes = _poolcore.admit_run(
                i, batch, ids, verdicts, txs, checks, committed, self._pool, self._decoded,
                self._committed, self._priority, pending._txs, pending._max, self._disordered,
                self._reorder_ids, self._pooled_nonces if nonces is not None else None,
                nonces.windows if nonces is not None else None, lim.tx_bytes_max, lim.txs_max,
                lim.bytes_max, self._pool_bytes, admitted, tx_type, check_type, _ok_result)
            if i < n:
                env, fut, local = batch[i]
                self._admit_one(env, fut, local, ids[i], verdicts[i], txs[i], checks[i],
                                committed, admitted)
                i += 1
        if admitted:
            self._on_admitted(admitted)

    def _admit_one(self, env: bytes, fut: _Slot | None, local: bool, tx_id: bytes,
                   valid: bool | None, tx: Any, check: Any, committed: set[bytes],
                   admitted: list[bytes]) -> None:
        """One transaction of a chunk through every check (``tx``/``check``: from the batch
        calls, or None to decode / ask ``check_tx`` here), pooled or refused with its reason;
        a local pooled one is appended to ``admitted``. ``_poolcore.admit_run`` does the same
        for the common case, where every check passes."""
        lim = self.limits
        pool, nonces = self._pool, self._nonces
        refused: tuple[str, str] | None = None
        if not valid or len(env) > lim.tx_bytes_max or tx_id in pool \
                or tx_id in self._committed or tx_id in committed:
            refused = self._refusal(env, tx_id, valid, tx_id in committed)
        else:
            if tx is None:
                try:
                    tx = self._decode_with_id(env, tx_id)
                except (ValueError, TypeError) as e:
                    refused = (MALFORMED, f"malformed envelope: {e}")
            if tx is not None:
                if len(pool) >= lim.txs_max or self._pool_bytes + len(env) > lim.bytes_max:
                    refused = self._full()
                elif nonces is not None:
                    # Fresh for sure (the common case): above the sender's committed
                    # highest and no pooled transaction of the sender has this nonce.
                    mine = self._pooled_nonces.get(tx.sender)
                    if (mine is not None and tx.nonce in mine) \
                            or tx.nonce <= nonces.window(tx.sender).highest:
                        refused = self._nonce_refusal(tx, tx_id)
                if refused is None:
                    try:
                        if check is None:
                            check = self._check_tx(tx, self.pending) \
                                if self._check_tx_pending else self._check_tx(tx)
                        ok = check.ok
                    except Exception as e:  # noqa: BLE001 - app code: refuse this one only
                        check, ok = None, False
                        refused = (APP_ERROR, f"check_tx raised {type(e).__name__}: {e}")
                    if not ok and refused is None:
                        refused = (APP_REJECTED, check.log or f"code {check.code}")
                if refused is not None:
                    # Verified but not pooled: remembered, so that a proposal carrying it
                    # does not verify it again (pooled ones are known verified).
                    self._verified.add(tx_id)
                else:
                    self._pool_in(env, tx_id, tx, check)
        if refused is None:
            if local:
                admitted.append(env)
            if fut is not None and not fut.done():
                fut.set_result(AddResult(OK, tx_id))
        elif fut is not None and not fut.done():
            fut.set_result(self._reject(refused[0], tx_id, refused[1]))
        else:  # gossiped transactions need no result object: most of the load
            self.rejected[refused[0]] = self.rejected.get(refused[0], 0) + 1

    def _pool_in(self, env: bytes, tx_id: bytes, tx: Any, check: Any) -> None:
        """Pool an admitted transaction and index it (by sender, nonce, priority, order)."""
        self._pool[tx_id] = env
        self._decoded[tx_id] = tx
        self._pool_bytes += len(env)
        priority = getattr(check, "priority", 0)
        if priority:
            self._priority[tx_id] = priority
        sender = getattr(tx, "sender", None)
        if sender is None:
            return
        behind = self.pending.add(sender, tx.nonce, tx_id)
        if sender in self._disordered:
            self._reorder_ids.add(tx_id)
        elif behind:
            self._disordered.add(sender)
            self._reorder_ids.update(self.pending.ids_by_nonce(sender))
        if self._nonces is not None:
            mine = self._pooled_nonces.get(sender)
            if mine is None:
                self._pooled_nonces[sender] = {tx.nonce: tx_id}
            else:
                mine[tx.nonce] = tx_id

    def _batch_checks(self, txs: list[Any], verdicts: list[bool | None]) -> list[Any]:
        """The app's ``check_txs`` over a chunk's decoded, verified transactions (some may then
        be refused for the engine's own reasons, such as a duplicate, a nonce or the pool's
        bounds: their check is unused); None where ``check_tx`` is to be asked one by one (no
        batch form, a transaction not decoded yet, or a batch call that raised or answered a
        wrong count: logged, counted)."""
        batch = self._check_txs
        if batch is None:
            return [None] * len(txs)
        todo = [i for i, (tx, ok) in enumerate(zip(txs, verdicts)) if ok and tx is not None]
        out: list[Any] = [None] * len(txs)
        if not todo:
            return out
        try:
            results = batch([txs[i] for i in todo])
            if len(results) != len(todo):
                raise ValueError(f"{len(results)} results for {len(todo)} transactions")
        except Exception as e:  # noqa: BLE001 - app code: fall back to check_tx one by one
            self.batch_check_failures += 1
            log.warning("check_txs failed (%s: %s); checking one by one", type(e).__name__, e)
            return out
        for i, r in zip(todo, results):
            out[i] = r
        return out

    def _refusal(self, env: bytes, tx_id: bytes, valid: bool | None,
                 committed: bool) -> tuple[str, str]:
        """(code, reason) of an envelope refused before it is decoded (``_admit_chunk`` sends
        here only envelopes that are too large, pooled, committed or not verified)."""
        if len(env) > self.limits.tx_bytes_max:
            return TOO_LARGE, (f"envelope of {len(env)} bytes exceeds tx_bytes_max "
                               f"{self.limits.tx_bytes_max}")
        if tx_id in self._pool:
            return DUPLICATE, "already in the mempool"
        if committed or tx_id in self._committed:
            return DUPLICATE, "already committed"
        if valid is None:  # not verified: the pool was full when its batch came
            return self._full()
        if env[:1] in (b"\x01", b"\x02") and env[0] != self.suite.tx_version:
            return MALFORMED, _suite_refusal(env, self.suite)
        return BAD_SIGNATURE, "malformed envelope or signature does not verify"

    def _full(self) -> tuple[str, str]:
        return FULL, f"mempool is full ({len(self._pool)} txs, {self._pool_bytes} bytes)"

    def _nonce_refusal(self, tx: Any, tx_id: bytes) -> tuple[str, str] | None:
        """(code, reason) when the sender's nonce is pooled already, used or out of its
        window; None when it is fresh."""
        if tx.nonce in self._pooled_nonces.get(tx.sender, ()):
            return DUPLICATE, f"a pooled transaction of this sender has nonce {tx.nonce}"
        why = self._nonces.refusal(tx.sender, tx.nonce)
        if why is None:
            return None
        if self._find_committed([tx_id])[0]:
            return DUPLICATE, "already committed"
        return STALE_NONCE, f"nonce {tx.nonce} of this sender is {why}"

    def _hash_and_verify(self, envelopes: list[bytes], full: bool = False
                         ) -> tuple[list[bytes], list[bool | None]]:
        """Worker thread: one native hashing call and one native batch verification (none
        when the pool is ``full``: the verdicts are then None, refused as ``mempool_full``)."""
        t0 = time.thread_time()
        try:
            return self._hash_and_verify_timed(envelopes, full)
        finally:
            self.stage_cpu("verification", time.thread_time() - t0)

    def _hash_and_verify_timed(self, envelopes: list[bytes], full: bool
                               ) -> tuple[list[bytes], list[bool | None]]:
        ids = self.suite.hash_many(envelopes, threads=self._threads)
        if full:
            return ids, [None] * len(envelopes)
        # Already verified, or already committed (refused as a duplicate anyway): no check.
        fresh = _poolcore.unseen(ids, self._verified, self._committed, self._pool)
        verdicts: list[bool | None] = [True] * len(envelopes)
        if fresh:
            sizes_ok = [len(envelopes[i]) <= self.limits.tx_bytes_max for i in fresh]
            to_check = [envelopes[i] for i, ok in zip(fresh, sizes_ok) if ok]
            checked = iter(self._verify(to_check, self.chain_id, self._threads) if to_check
                           else [])
            for i, ok in zip(fresh, sizes_ok):
                verdicts[i] = next(checked) if ok else False
        return ids, verdicts

    def _remember_verified(self, tx_id: bytes) -> None:
        self._verified.add(tx_id)

    # --------------------------------------------------------------- blocks
    def verify_block_txs(self, envelopes: Sequence[bytes], tx_ids: Sequence[bytes]) -> list[bool]:
        """Signature verdicts for a proposed block's transactions, verifying only those this
        node has not verified before (call from a worker thread for large blocks)."""
        todo = self.unverified(tx_ids)
        verdicts = [True] * len(envelopes)
        if todo:
            checked = self._verify([envelopes[i] for i in todo], self.chain_id, self._threads)
            for i, ok in zip(todo, checked):
                verdicts[i] = bool(ok)
                if ok:  # the gossiped copy, when it arrives, is not verified again
                    self._remember_verified(tx_ids[i])
        return verdicts

    async def verify_ahead(self, envelopes: Sequence[bytes], tx_ids: Sequence[bytes]) -> None:
        """Verify, on the executor, the signatures of a proposal's transactions not verified
        yet; the valid ones are remembered, so ``verify_block_txs`` then costs lookups."""
        todo = self.unverified(tx_ids)
        if not todo:
            return
        envs = [envelopes[i] for i in todo]
        loop = asyncio.get_running_loop()
        verdicts = await loop.run_in_executor(self._executor, self._verify_timed, envs)
        for i, ok in zip(todo, verdicts):
            if ok:
                self._remember_verified(tx_ids[i])

    def _verify_timed(self, envelopes: list[bytes]) -> list[bool]:
        """Worker thread: ``verify`` of a proposal's transactions, timed as verification."""
        t0 = time.thread_time()
        try:
            return self._verify(envelopes, self.chain_id, self._threads)
        finally:
            self.stage_cpu("verification", time.thread_time() - t0)

    def remove_committed(self, tx_ids: Sequence[bytes]) -> None:
        self._drop_many(tx_ids)
        self._verified.discard_many(tx_ids)
        self._committed.add_many(tx_ids)

    def _drop(self, tx_id: bytes) -> None:
        self._drop_many((tx_id,))

    def _drop_many(self, tx_ids: Iterable[bytes]) -> None:
        """Take transactions out of the pool and every index of it (a commit drops a whole
        block's worth: one compiled loop, engine/_poolcore.pyx); ids not pooled are skipped."""
        self._pool_bytes -= _poolcore.drop_many(
            self._pool, self._decoded, self._priority,
            self._pooled_nonces if self._nonces is not None else None,
            self.pending._txs, self.pending._max, tx_ids, self._disordered, self._reorder_ids)

    def recheck(self, check: Callable[[Any, Senders], Any]) -> list[tuple[bytes, str]]:
        """Re-judge every pooled transaction, in pool order, with ``check(tx, pending)``
        (after a commit changed the state): evict those refused (or whose check raised).
        Returns the evicted (tx id, reason)."""
        evicted: list[tuple[bytes, str]] = []
        for tx_id in list(self._pool):
            tx = self._decoded.get(tx_id)
            if tx is None:
                continue
            try:
                result = check(tx, self.pending)
                ok, reason = result.ok, result.log or f"code {result.code}"
            except Exception as e:  # noqa: BLE001 - app code: evict this transaction only
                ok, reason = False, f"recheck_tx raised {type(e).__name__}: {e}"
            if not ok:
                self._drop(tx_id)
                evicted.append((tx_id, reason))
        if evicted:
            self.rejected[EVICTED] = self.rejected.get(EVICTED, 0) + len(evicted)
        return evicted

    # --------------------------------------------------------------- nonces
    def evict_stale_nonces(self, senders: Sequence[bytes]) -> int:
        """After a commit: drop the pooled transactions of ``senders`` whose nonce the block
        used or moved out of the window (they could never be included). Returns how many."""
        if self._nonces is None:
            return 0
        stale: list[bytes] = []
        window = self._nonces.window
        for sender in set(senders):
            mine = self._pooled_nonces.get(sender)
            if not mine:
                continue
            w = window(sender)
            if min(mine) > w.highest:
                continue  # every pooled nonce is above the committed highest: all fresh
            stale.extend(tx_id for nonce, tx_id in mine.items() if w.refusal(nonce) is not None)
        self._drop_many(stale)
        if stale:
            self.rejected[STALE_NONCE] = self.rejected.get(STALE_NONCE, 0) + len(stale)
        return len(stale)
