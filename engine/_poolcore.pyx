# cython: language_level=3, boundscheck=False, wraparound=False
"""The mempool's per-transaction bookkeeping in compiled loops (engine/mempool.py).

A commit takes a block's worth of transactions out of the pool and out of every index of it
(the envelopes, the decoded transactions, priorities, pooled nonces by sender and the
``Senders`` view); every node does this for every transaction, so the loop runs here rather
than as bytecode. The maps are plain dicts, changed through the dict C API (an OrderedDict
must not be: its order bookkeeping would be bypassed), which is why the arguments are typed.
"""
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject


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
    elif nonce is not None and nonce == <object>PyDict_GetItem(highest, sender):
        # Rare: commits take the lowest nonces first.
        PyDict_SetItem(highest, sender, max((<dict?>mine).values()))
    return 0


def unindex_many(dict txs not None, dict highest not None, pairs):
    """``Senders.remove_many``: unindex each (sender, tx id) of ``pairs``."""
    for sender, tx_id in pairs:
        _unindex(txs, highest, sender, tx_id)


def drop_many(dict pool not None, dict decoded not None, dict priority not None,
              pooled_nonces, dict txs not None, dict highest not None, tx_ids,
              bint want_pairs):
    """Take ``tx_ids`` out of the pool (id -> envelope), the decoded transactions (id -> tx),
    the priorities (id -> priority), the pooled nonces (sender -> {nonce: id}, or None when
    nonces are not enforced) and the ``Senders`` maps; ids not pooled are skipped. Returns
    (envelope bytes freed, the (sender, tx id) pairs unindexed when ``want_pairs``, else [])."""
    cdef Py_ssize_t freed = 0
    cdef list pairs = []
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
        if want_pairs:
            pairs.append((sender, tx_id))
        if with_nonces:
            nonces = _get(by_sender, sender)
            if nonces is not None:
                (<dict?>nonces).pop(tx.nonce, None)
                if not nonces:
                    PyDict_DelItem(by_sender, sender)
        _unindex(txs, highest, sender, tx_id)
    return freed, pairs
