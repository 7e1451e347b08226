# cython: language_level=3, boundscheck=False, wraparound=False
"""The mempool's per-transaction bookkeeping in compiled code (engine/mempool.py): the common
case of admission (``admit_run``), the drop loop of a commit and the bounded id caches
(``RecentIds``).

A commit takes a block's worth of transactions out of the pool and out of every index of it
(the envelopes, the decoded transactions, priorities, pooled nonces by sender and the
``Senders`` view); every node does this for every transaction, so the loop runs here rather
than as bytecode. The maps are plain dicts, changed through the dict C API (an OrderedDict
must not be: its order bookkeeping would be bypassed), which is why the arguments are typed.
"""
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject
from cpython.set cimport PySet_Add, PySet_Contains


cdef inline object _get(dict d, object key):
    cdef PyObject *v = PyDict_GetItem(d, key)
    return None if v == NULL else <object>v


cdef int _unindex(dict txs, dict highest, object sender, object tx_id) except -1:
    """Take ``tx_id`` out of ``sender``'s pooled transactions (``Senders``: sender -> {tx id:
    nonce}, sender -> highest pooled nonce)."""
    cdef object mine = _get(txs, sender)
    if mine is None:
        return 0
    cdef object nonce = (<dict?>mine).pop(tx_id, None)
    if not mine:
        PyDict_DelItem(txs, sender)
        PyDict_DelItem(highest, sender)
    elif nonce is not None and nonce == highest[sender]:
        # Rare: commits take the lowest nonces first.
        PyDict_SetItem(highest, sender, max((<dict?>mine).values()))
    return 0


def unindex_many(dict txs not None, dict highest not None, pairs):
    """``Senders.remove_many``: unindex each (sender, tx id) of ``pairs``."""
    for sender, tx_id in pairs:
        _unindex(txs, highest, sender, tx_id)


def drop_many(dict pool not None, dict decoded not None, dict priority not None,
              pooled_nonces, dict txs not None, dict highest not None, tx_ids,
              set disordered not None, set reorder_ids not None):
    """Take ``tx_ids`` out of the pool (id -> envelope), the decoded transactions (id -> tx),
    the priorities (id -> priority), the pooled nonces (sender -> {nonce: id}, or None when
    nonces are not enforced), the ``Senders`` maps and the reorder bookkeeping (the senders
    whose transactions arrived out of nonce order, while they have any pooled, and those
    transactions' ids); ids not pooled are skipped. Returns the envelope bytes freed."""
    cdef Py_ssize_t freed = 0
    cdef bint with_nonces = pooled_nonces is not None
    cdef dict by_sender = pooled_nonces if with_nonces else None
    cdef object env, tx, sender, nonces
    for tx_id in tx_ids:
        env = _get(pool, tx_id)
        if env is None:
            continue
        PyDict_DelItem(pool, tx_id)
        freed += len(env)
        tx = _get(decoded, tx_id)
        if tx is not None:
            PyDict_DelItem(decoded, tx_id)
        if priority and PyDict_GetItem(priority, tx_id) != NULL:
            PyDict_DelItem(priority, tx_id)
        sender = getattr(tx, "sender", None)
        if sender is None:
            continue
        if with_nonces:
            nonces = _get(by_sender, sender)
            if nonces is not None:
                (<dict?>nonces).pop(tx.nonce, None)
                if not nonces:
                    PyDict_DelItem(by_sender, sender)
        _unindex(txs, highest, sender, tx_id)
        if disordered:
            reorder_ids.discard(tx_id)
            if PyDict_GetItem(txs, sender) == NULL:
                disordered.discard(sender)
    return freed


def admit_run(Py_ssize_t start, list batch not None, list ids not None, list verdicts not None,
              list txs not None, list checks not None, set committed not None,
              dict pool not None, dict decoded not None, RecentIds recent not None,
              dict priorities not None, dict by_sender not None, dict highest not None,
              set disordered not None, set reorder_ids not None, pooled_nonces, windows,
              Py_ssize_t tx_bytes_max, Py_ssize_t txs_max, Py_ssize_t bytes_max,
              Py_ssize_t pool_bytes, list admitted not None, object tx_type,
              object check_type, object ok_result):
    """Pool the transactions of an admission chunk from index ``start`` on, in order, while
    each one is the common case; returns (the index of the first that is not, or the chunk's
    length; the pool's new byte count). ``Mempool._admit_one`` then takes that transaction
    through every check and refusal, and the chunk goes on here after it.

    The common case, in which every check of ``Mempool._admit_one`` passes: verified
    (``True``), within ``tx_bytes_max``, neither pooled nor recently committed (``recent``)
    nor in ``committed``; decoded (``tx_type``, fields 1 and 2 its sender and nonce) and
    checked (``check_type`` with ``code`` 0) by the batch calls; room in the pool; with nonces
    enforced (``pooled_nonces`` sender -> {nonce: id}, ``windows`` the committed records by
    sender), a nonce no pooled transaction of the sender has and above the sender's cached
    record (a sender not cached yet is read from the store by the slow path); not behind a
    pooled transaction of a sender whose transactions were in order so far (that sender's
    pooled ids must then be marked for reordering). Pooling is then what ``_admit_one``
    does: the envelope, the decoded transaction, a non-zero priority, the ``Senders`` maps
    (``by_sender``: sender -> {id: nonce}; ``highest``: sender -> highest pooled nonce), the
    reorder marks and the pooled nonces; a local one goes to ``admitted`` (for gossip) and
    a waiting caller gets ``ok_result(tx_id)``."""
    cdef Py_ssize_t i, n = len(batch), size
    cdef bint with_nonces = pooled_nonces is not None
    cdef dict nonces_by_sender = pooled_nonces if with_nonces else None
    cdef dict cached = windows if with_nonces else None
    cdef dict seq = recent._seq
    cdef tuple item, tx
    cdef object env, fut, tx_id, check, sender, nonce, mine, w, top, priority
    cdef bint ahead
    for i in range(start, n):
        if verdicts[i] is not True:
            return i, pool_bytes
        item = <tuple?>batch[i]
        env = item[0]
        size = len(env)
        tx_id = ids[i]
        if size > tx_bytes_max or PyDict_GetItem(pool, tx_id) != NULL \
                or PyDict_GetItem(seq, tx_id) != NULL or PySet_Contains(committed, tx_id):
            return i, pool_bytes
        if type(txs[i]) is not tx_type or type(checks[i]) is not check_type:
            return i, pool_bytes
        tx = <tuple>txs[i]
        check = checks[i]
        if len(pool) >= txs_max or pool_bytes + size > bytes_max or check.code != 0:
            return i, pool_bytes
        sender, nonce = tx[1], tx[2]
        if with_nonces:
            mine = _get(nonces_by_sender, sender)
            if mine is not None and PyDict_GetItem(<dict?>mine, nonce) != NULL:
                return i, pool_bytes
            w = _get(cached, sender)
            if w is None or nonce <= w.highest:
                return i, pool_bytes
        top = _get(highest, sender)
        ahead = top is None or nonce >= top
        if not ahead and not PySet_Contains(disordered, sender):
            return i, pool_bytes
        # Pooled: the same writes as Mempool._admit_one, in its order.
        PyDict_SetItem(pool, tx_id, env)
        PyDict_SetItem(decoded, tx_id, tx)
        pool_bytes += size
        priority = check.priority
        if priority:
            PyDict_SetItem(priorities, tx_id, priority)
        if top is None:
            PyDict_SetItem(by_sender, sender, {tx_id: nonce})
            PyDict_SetItem(highest, sender, nonce)
        else:
            PyDict_SetItem(<dict?>by_sender[sender], tx_id, nonce)
            if ahead:
                PyDict_SetItem(highest, sender, nonce)
        if PySet_Contains(disordered, sender):
            PySet_Add(reorder_ids, tx_id)
        if with_nonces:
            if mine is None:
                PyDict_SetItem(nonces_by_sender, sender, {nonce: tx_id})
            else:
                PyDict_SetItem(<dict>mine, nonce, tx_id)
        if item[2]:
            admitted.append(env)
        fut = item[1]
        if fut is not None and not fut.done():
            fut.set_result(ok_result(tx_id))
    return n, pool_bytes


def unseen(list ids not None, RecentIds verified not None, RecentIds committed not None,
           dict pool not None):
    """The indexes of ``ids`` in none of ``verified``, ``committed`` and ``pool``: the
    envelopes of an admission batch whose signatures are still to be checked."""
    cdef dict v = verified._seq, c = committed._seq
    cdef Py_ssize_t i
    cdef list out = []
    for i in range(len(ids)):
        t = ids[i]
        if PyDict_GetItem(v, t) == NULL and PyDict_GetItem(c, t) == NULL \
                and PyDict_GetItem(pool, t) == NULL:
            out.append(i)
    return out


cdef class RecentIds:
    """The newest ``max_ids`` ids, oldest forgotten first: an OrderedDict used as a bounded
    FIFO set (an id added again keeps its place), but adding a block's worth of ids is one
    compiled loop and forgetting the oldest walks a list instead of unlinking nodes.

    Each id maps to its sequence number; ``_order`` lists ids by sequence number from
    ``_first``. Discarding an id only removes it from the map, so ``_order`` may hold stale
    entries: an entry is live when the map gives its own sequence number. Stale entries are
    skipped when the oldest are forgotten and dropped when they outnumber the live ones."""

    cdef dict _seq
    cdef list _order
    cdef Py_ssize_t _first, _head
    cdef readonly Py_ssize_t max_ids

    def __init__(self, Py_ssize_t max_ids):
        if max_ids < 0:
            raise ValueError("max_ids must be >= 0")
        self.max_ids = max_ids
        self._seq = {}
        self._order = []
        self._first = self._head = 0

    def __contains__(self, key) -> bool:
        return key in self._seq

    def __len__(self) -> int:
        return len(self._seq)

    def __iter__(self):
        """The ids, oldest first (a snapshot)."""
        cdef Py_ssize_t i, n = len(self._order)
        cdef list out = []
        cdef PyObject *v
        for i in range(self._head, n):
            key = self._order[i]
            v = PyDict_GetItem(self._seq, key)
            if v != NULL and <Py_ssize_t><object>v == self._first + i:
                out.append(key)
        return iter(out)

    cdef inline void _append(self, object key) except *:
        if PyDict_GetItem(self._seq, key) != NULL:
            return
        PyDict_SetItem(self._seq, key, self._first + len(self._order))
        self._order.append(key)

    cdef void _trim(self) except *:
        cdef Py_ssize_t n = len(self._order)
        cdef PyObject *v
        while len(self._seq) > self.max_ids:
            key = self._order[self._head]
            v = PyDict_GetItem(self._seq, key)
            if v != NULL and <Py_ssize_t><object>v == self._first + self._head:
                PyDict_DelItem(self._seq, key)
            self._head += 1
        live = len(self._seq)
        if self._head > 1024 and 2 * self._head > n:
            del self._order[:self._head]
            self._first += self._head
            self._head = 0
        elif n - self._head > 2 * live + 1024:
            self._compact()

    cdef void _compact(self) except *:
        """Rebuild ``_order`` from the live ids (many were discarded)."""
        cdef list live = list(self)
        self._first += len(self._order)
        self._head = 0
        self._order = live
        for i, key in enumerate(live):
            PyDict_SetItem(self._seq, key, self._first + i)

    def backlog(self) -> int:
        """Entries of the order list from the oldest live id on, stale ones included (bounded
        by twice the live ids plus 1,024)."""
        return len(self._order) - self._head

    def add(self, key) -> None:
        self._append(key)
        self._trim()

    def add_many(self, keys) -> None:
        for key in keys:
            self._append(key)
        self._trim()

    def discard_many(self, keys) -> None:
        """Forget these ids (absent ones are skipped)."""
        cdef dict seq = self._seq
        for key in keys:
            if PyDict_GetItem(seq, key) != NULL:
                PyDict_DelItem(seq, key)
        if len(self._order) - self._head > 2 * len(seq) + 1024:
            self._compact()
