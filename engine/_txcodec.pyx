# cython: language_level=3, boundscheck=False, wraparound=False
"""Native batch work on transactions: decoding verified envelopes (the mempool's admission
path), splitting blocks and request bodies, and the kvstore's block parse (``kv_writes``).

``decode_verified_many`` turns a list of envelopes that ``verify_txs`` accepted, with their ids,
into ``engine.tx.Tx`` named tuples in one call: the header is read in C and each tuple is
allocated and filled directly (no struct unpacking, slicing or tuple copying per transaction
in Python). Layout (docs/formats.md): ``version u8 | sender (32 B for version 1, 64 B for
version 2) | nonce u64 LE | payload length u32 LE | payload | signature 64``.

An envelope that does not follow that layout (or is not ``bytes``, or whose id is not 32
bytes) gets ``None`` in its place: the caller decodes it with ``engine.tx.decode_tx``, which
raises the error that says why.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_FromUnsignedLongLong
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy

cdef extern from "Python.h":
    # The allocator of tuple subclasses defined in Python (a named tuple's tp_alloc): a tuple
    # of ``nitems`` empty slots with the subclass's type. Returns a new reference.
    object PyType_GenericAlloc(PyTypeObject *type, Py_ssize_t nitems)

cdef extern from *:
    """
    static int engine_uses_generic_alloc(PyObject *type) {
        return ((PyTypeObject *)type)->tp_alloc == PyType_GenericAlloc;
    }
    """
    int engine_uses_generic_alloc(object type)

cdef enum:
    SIGNATURE_BYTES = 64
    TX_FIELDS = 6


cdef inline uint64_t _u64le(const uint8_t *p) noexcept:
    cdef uint64_t v = 0
    cdef int k
    for k in range(7, -1, -1):
        v = (v << 8) | p[k]
    return v


cdef inline void _put(object t, Py_ssize_t i, object item):
    Py_INCREF(item)  # PyTuple_SET_ITEM steals a reference
    PyTuple_SET_ITEM(t, i, item)


def decode_verified_many(object tx_type, list envelopes, list ids):
    """``[Tx(version, sender, nonce, payload, signature, tx_id), ...]`` for ``envelopes``
    (each ``bytes``) with their 32-byte ``ids``; ``None`` for an envelope off the layout."""
    if not isinstance(tx_type, type) or not issubclass(tx_type, tuple) \
            or len(getattr(tx_type, "_fields", ())) != TX_FIELDS \
            or not engine_uses_generic_alloc(tx_type):
        raise TypeError("tx_type must be a named tuple class of 6 fields (engine.tx.Tx)")
    cdef Py_ssize_t n = PyList_GET_SIZE(envelopes), i
    if PyList_GET_SIZE(ids) != n:
        raise ValueError(f"ids must hold one id per envelope ({n}), not {len(ids)}")
    cdef PyTypeObject *ttype = <PyTypeObject *>tx_type
    cdef list out = [None] * n
    cdef object env, tx_id, t
    cdef const uint8_t *p
    cdef Py_ssize_t size, sender_len, head
    cdef uint64_t payload_len
    cdef object one = 1, two = 2
    for i in range(n):
        env = <object>PyList_GET_ITEM(envelopes, i)
        tx_id = <object>PyList_GET_ITEM(ids, i)
        if not PyBytes_CheckExact(env) or not PyBytes_CheckExact(tx_id) \
                or PyBytes_GET_SIZE(tx_id) != 32:
            continue
        p = <const uint8_t *>PyBytes_AS_STRING(env)
        size = PyBytes_GET_SIZE(env)
        if size < 1 or (p[0] != 1 and p[0] != 2):
            continue
        sender_len = 32 if p[0] == 1 else 64
        head = 1 + sender_len + 8 + 4
        if size < head + SIGNATURE_BYTES:
            continue
        payload_len = (<uint64_t>p[head - 4] | (<uint64_t>p[head - 3] << 8)
                       | (<uint64_t>p[head - 2] << 16) | (<uint64_t>p[head - 1] << 24))
        if <uint64_t>(size - head - SIGNATURE_BYTES) != payload_len:
            continue
        t = PyType_GenericAlloc(ttype, TX_FIELDS)
        _put(t, 0, one if p[0] == 1 else two)
        _put(t, 1, PyBytes_FromStringAndSize(<const char *>p + 1, sender_len))
        _put(t, 2, PyLong_FromUnsignedLongLong(_u64le(p + 1 + sender_len)))
        _put(t, 3, PyBytes_FromStringAndSize(<const char *>p + head, <Py_ssize_t>payload_len))
        _put(t, 4, PyBytes_FromStringAndSize(<const char *>p + size - SIGNATURE_BYTES,
                                             SIGNATURE_BYTES))
        _put(t, 5, tx_id)
        out[i] = t
    return out


def split_chunks(const uint8_t[::1] data, Py_ssize_t offset, Py_ssize_t count):
    """``count`` length-prefixed fields (u32 LE length, then the bytes; a block's transaction
    list, docs/formats.md) from ``offset`` of ``data``: ``(fields as bytes, end offset)``.
    ValueError when a field runs past the end or is empty (a block carries no empty
    transaction), naming which."""
    if offset < 0 or count < 0:
        raise ValueError("offset and count must be non-negative")
    cdef Py_ssize_t size = data.shape[0], off = offset, i
    cdef uint64_t n
    if offset > size:
        raise ValueError(f"offset {offset} is past the end ({size} bytes)")
    cdef list out = [None] * count
    cdef const uint8_t *p = &data[0] if size else NULL
    for i in range(count):
        if size - off < 4:
            raise ValueError(f"field {i} of {count}: its length runs past the end")
        n = (<uint64_t>p[off] | (<uint64_t>p[off + 1] << 8) | (<uint64_t>p[off + 2] << 16)
             | (<uint64_t>p[off + 3] << 24))
        off += 4
        if n == 0:
            raise ValueError(f"field {i} of {count} is empty")
        if <uint64_t>(size - off) < n:
            raise ValueError(f"field {i} of {count}: its {n} bytes run past the end")
        out[i] = PyBytes_FromStringAndSize(<const char *>p + off, <Py_ssize_t>n)
        off += <Py_ssize_t>n
    return out, off


def senders_and_nonces(list envelopes):
    """``[(sender, nonce), ...]`` of envelopes whose signatures verified (so each has the
    header of its version: 1, a 32-byte sender; 2, a 64-byte one). ValueError naming the
    index of an envelope without such a header."""
    cdef Py_ssize_t n = PyList_GET_SIZE(envelopes), i, sender_len
    cdef list out = [None] * n
    cdef object env
    cdef const uint8_t *p
    for i in range(n):
        env = <object>PyList_GET_ITEM(envelopes, i)
        if not PyBytes_CheckExact(env):
            raise TypeError(f"envelopes[{i}] must be bytes, not {type(env).__name__}")
        p = <const uint8_t *>PyBytes_AS_STRING(env)
        if PyBytes_GET_SIZE(env) < 1 or (p[0] != 1 and p[0] != 2):
            raise ValueError(f"envelopes[{i}] has no version 1 or 2 header")
        sender_len = 32 if p[0] == 1 else 64
        if PyBytes_GET_SIZE(env) < 1 + sender_len + 8:
            raise ValueError(f"envelopes[{i}] is shorter than its header")
        out[i] = (PyBytes_FromStringAndSize(<const char *>p + 1, sender_len),
                  PyLong_FromUnsignedLongLong(_u64le(p + 1 + sender_len)))
    return out


def split_records(const uint8_t[::1] data, Py_ssize_t count_max):
    """Every length-prefixed record of ``data`` (u32 LE length, then the bytes: a
    ``POST /txs`` body), at most ``count_max`` of them. ValueError naming the byte offset of
    the first bad record, or saying the batch is empty or too long."""
    cdef Py_ssize_t size = data.shape[0], pos = 0
    cdef uint64_t n
    cdef list out = []
    cdef const uint8_t *p = &data[0] if size else NULL
    while pos < size:
        if size - pos < 4:
            raise ValueError(f"truncated length prefix at byte {pos}")
        n = (<uint64_t>p[pos] | (<uint64_t>p[pos + 1] << 8) | (<uint64_t>p[pos + 2] << 16)
             | (<uint64_t>p[pos + 3] << 24))
        pos += 4
        if n == 0 or <uint64_t>(size - pos) < n:
            raise ValueError(f"record at byte {pos - 4} announces {n} bytes, "
                             f"{size - pos} remain")
        if len(out) >= count_max:
            raise ValueError(f"more than {count_max} envelopes in one request")
        out.append(PyBytes_FromStringAndSize(<const char *>p + pos, <Py_ssize_t>n))
        pos += <Py_ssize_t>n
    if not out:
        raise ValueError("empty batch")
    return out


def join_chunks(bytes head, list items):
    """``head`` then each item as a length-prefixed field (u32 LE length, then the bytes): a
    block from its head and its transactions, in one allocation."""
    cdef Py_ssize_t n = len(items), i, total = PyBytes_GET_SIZE(head), size
    cdef object item
    for i in range(n):
        item = items[i]
        if not PyBytes_CheckExact(item):
            raise TypeError(f"items[{i}] must be bytes, not {type(item).__name__}")
        size = PyBytes_GET_SIZE(item)
        if size > 0xFFFFFFFF:
            raise ValueError(f"items[{i}] is longer than a u32 length can say")
        total += 4 + size
    cdef object out = PyBytes_FromStringAndSize(NULL, total)
    cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head))
    p += PyBytes_GET_SIZE(head)
    for i in range(n):
        item = items[i]
        size = PyBytes_GET_SIZE(item)
        p[0] = <uint8_t>(size & 0xff)
        p[1] = <uint8_t>((size >> 8) & 0xff)
        p[2] = <uint8_t>((size >> 16) & 0xff)
        p[3] = <uint8_t>((size >> 24) & 0xff)
        memcpy(p + 4, PyBytes_AS_STRING(item), size)
        p += 4 + size
    return out


cdef inline Py_ssize_t _kv_eq(const char *p, Py_ssize_t size, Py_ssize_t key_max,
                              Py_ssize_t value_max, const char *rp, Py_ssize_t rlen) noexcept:
    """The index of the ``=`` that splits a well-formed ``key=value`` payload (parse_kv's
    rule: 0 < len(key) <= key_max, len(value) <= value_max, key outside the reserved prefix
    ``rp``), or -1."""
    cdef const char *hit = <const char *>memchr(p, 61, <size_t>size)  # b"="
    cdef Py_ssize_t eq = hit - p if hit != NULL else -1
    if eq <= 0 or eq > key_max or size - eq - 1 > value_max \
            or (eq >= rlen and memcmp(p, rp, rlen) == 0):
        return -1
    return eq


def kv_writes(list txs, Py_ssize_t key_max, Py_ssize_t value_max, bytes reserved,
              bytes special):
    """The kvstore's block execution in one pass: ``(writes, malformed)`` for ``txs`` (named
    tuples whose field 3 is the payload, ``engine.tx.Tx``), where ``writes`` maps each key to
    its last value in first-write order (a dict filled in block order) and ``malformed`` lists
    the indices of payloads that are not ``key=value`` with ``0 < len(key) <= key_max``,
    ``len(value) <= value_max`` and a key outside ``reserved`` (``engine.app.parse_kv``'s
    rule). None, having written nothing, when a transaction is not such a tuple, a payload is
    not ``bytes``, or a payload starts with ``special`` (the caller's own loop handles those)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(txs), i, size, eq
    cdef Py_ssize_t rlen = PyBytes_GET_SIZE(reserved), slen = PyBytes_GET_SIZE(special)
    cdef const char *rp = PyBytes_AS_STRING(reserved)
    cdef const char *sp = PyBytes_AS_STRING(special)
    cdef const char *p
    cdef object tx, payload
    for i in range(n):
        tx = <object>PyList_GET_ITEM(txs, i)
        if not PyTuple_Check(tx) or PyTuple_GET_SIZE(tx) < TX_FIELDS:
            return None
        payload = <object>PyTuple_GET_ITEM(tx, 3)
        if not PyBytes_CheckExact(payload):
            return None
        if PyBytes_GET_SIZE(payload) >= slen and memcmp(PyBytes_AS_STRING(payload), sp, slen) == 0:
            return None
    cdef dict writes = {}
    cdef list malformed = []
    for i in range(n):
        payload = <object>PyTuple_GET_ITEM(<object>PyList_GET_ITEM(txs, i), 3)
        p = PyBytes_AS_STRING(payload)
        size = PyBytes_GET_SIZE(payload)
        eq = _kv_eq(p, size, key_max, value_max, rp, rlen)
        if eq < 0:
            malformed.append(i)
            continue
        writes[PyBytes_FromStringAndSize(p, eq)] = PyBytes_FromStringAndSize(p + eq + 1,
                                                                            size - eq - 1)
    return writes, malformed


def kv_verdicts(list txs, object ok, object malformed, Py_ssize_t key_max,
                Py_ssize_t value_max, bytes reserved, bytes special):
    """The kvstore's admission check over a chunk: for each transaction (a named tuple whose
    field 3 is the payload, ``engine.tx.Tx``) ``ok`` when its payload is ``key=value`` by
    ``engine.app.parse_kv``'s rule (see ``kv_writes``), ``malformed`` when not, and None when
    the payload starts with ``special`` or is not ``bytes``, or the item is not such a tuple
    (the caller checks those one by one)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(txs), i, size
    cdef Py_ssize_t rlen = PyBytes_GET_SIZE(reserved), slen = PyBytes_GET_SIZE(special)
    cdef const char *rp = PyBytes_AS_STRING(reserved)
    cdef const char *sp = PyBytes_AS_STRING(special)
    cdef const char *p
    cdef object tx, payload
    cdef list out = [None] * n
    for i in range(n):
        tx = <object>PyList_GET_ITEM(txs, i)
        if not PyTuple_Check(tx) or PyTuple_GET_SIZE(tx) < TX_FIELDS:
            continue
        payload = <object>PyTuple_GET_ITEM(tx, 3)
        if not PyBytes_CheckExact(payload):
            continue
        p = PyBytes_AS_STRING(payload)
        size = PyBytes_GET_SIZE(payload)
        if size >= slen and memcmp(p, sp, slen) == 0:
            continue
        out[i] = ok if _kv_eq(p, size, key_max, value_max, rp, rlen) >= 0 else malformed
    return out
