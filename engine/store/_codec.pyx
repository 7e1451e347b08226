# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native encoding of block records and per-block tx index runs (engine/store/store.py).

Saving a block is dominated by a few hundred kilobytes of copies and one durable LMDB commit;
this module does the copies in one pass into a reusable buffer (no fresh allocation per block,
whose page faults cost more than the copy) and sorts a block's index entries with a radix sort.

Record layout (see Store for the head fields):
    prefix | result offsets (u32 x n_results+1) | result data | run (16 B x n) |
    tx offsets (u32 x n+1) | tx data | 16-byte tag slot
The tag covers everything before the tx data; the tx data is bound by the block's tx root.
"""
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

#: The record's offsets are u32: a block record must stay below 4 GiB.
record_bytes_max = (1 << 32) - 1
cdef enum:
    C_TAG_SLOT_BYTES = 16
    C_RUN_ENTRY_BYTES = 16
    C_LOC_INDEX_BITS = 24

TAG_SLOT_BYTES = C_TAG_SLOT_BYTES
RUN_ENTRY_BYTES = C_RUN_ENTRY_BYTES
LOC_INDEX_BITS = C_LOC_INDEX_BITS


cdef extern from *:
    """
    static inline uint64_t engine_bswap64(uint64_t v) { return __builtin_bswap64(v); }
    """
    uint64_t bswap64 "engine_bswap64"(uint64_t v) noexcept nogil


cdef inline void put_u32(char *p, uint32_t v) noexcept nogil:
    p[0] = <char>(v & 0xff)
    p[1] = <char>((v >> 8) & 0xff)
    p[2] = <char>((v >> 16) & 0xff)
    p[3] = <char>((v >> 24) & 0xff)


cdef inline void put_u64(char *p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = <char>((v >> (8 * i)) & 0xff)


cdef Py_ssize_t list_bytes(list items, str name) except -1:
    """Total length of ``items``; TypeError naming the first item that is not bytes-like."""
    cdef Py_ssize_t total = 0, i
    cdef Py_buffer view
    for i in range(len(items)):
        item = items[i]
        if PyBytes_CheckExact(item):
            total += PyBytes_GET_SIZE(item)
            continue
        if not isinstance(item, (bytearray, memoryview)):
            raise TypeError(f"{name}[{i}] must be bytes, not {type(item).__name__}")
        try:
            PyObject_GetBuffer(item, &view, PyBUF_SIMPLE | PyBUF_C_CONTIGUOUS)
        except (BufferError, TypeError):
            raise TypeError(f"{name}[{i}] must be a contiguous bytes-like object") from None
        total += view.len
        PyBuffer_Release(&view)
    return total


cdef Py_ssize_t write_list(char *out, list items, uint32_t n_offsets) except -1:
    """Offsets table then data; returns the bytes written. ``items`` passed list_bytes."""
    cdef Py_ssize_t n = len(items), i, size
    cdef char *table = out
    cdef char *data = out + 4 * n_offsets
    cdef uint32_t pos = 0
    cdef Py_buffer view
    put_u32(table, 0)
    for i in range(n):
        item = items[i]
        if PyBytes_CheckExact(item):
            size = PyBytes_GET_SIZE(item)
            memcpy(data + pos, PyBytes_AS_STRING(item), size)
        else:
            PyObject_GetBuffer(item, &view, PyBUF_SIMPLE | PyBUF_C_CONTIGUOUS)
            size = view.len
            memcpy(data + pos, view.buf, size)
            PyBuffer_Release(&view)
        pos += <uint32_t>size
        put_u32(table + 4 * (i + 1), pos)
    return 4 * n_offsets + pos


def check_items(list items, str name):
    """Total bytes of ``items``; TypeError naming ``name[i]`` for an item that is not bytes."""
    return list_bytes(items, name)


def encode_block(bytearray out, bytes prefix, list results, bytes run, list txs):
    """Write a block record into ``out`` (grown when too small); returns
    ``(record_length, tag_end)``: the record is ``out[:record_length]`` with its last 16 bytes
    left for the tag, which must cover ``out[:tag_end]`` (everything but the tx data)."""
    cdef Py_ssize_t n = len(txs), nr = len(results)
    if nr != 0 and nr != n:
        raise ValueError(f"results must be empty or hold one entry per tx ({n}), not {nr}")
    if len(run) != RUN_ENTRY_BYTES * n:
        raise ValueError(f"run must hold {n} entries of {RUN_ENTRY_BYTES} bytes")
    cdef Py_ssize_t res_bytes = list_bytes(results, "results")
    cdef Py_ssize_t tx_bytes = list_bytes(txs, "txs")
    cdef Py_ssize_t tag_end = (len(prefix) + 4 * (nr + 1) + res_bytes + len(run) + 4 * (n + 1))
    cdef Py_ssize_t total = tag_end + tx_bytes + C_TAG_SLOT_BYTES
    if total > record_bytes_max:
        raise ValueError(f"block record of {total} bytes exceeds {record_bytes_max}")
    if PyByteArray_GET_SIZE(out) < total:
        if PyByteArray_Resize(out, total) < 0:
            raise MemoryError()
    cdef char *p = PyByteArray_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(prefix), len(prefix))
    p += len(prefix)
    p += write_list(p, results, <uint32_t>(nr + 1))
    memcpy(p, PyBytes_AS_STRING(run), len(run))
    p += len(run)
    write_list(p, txs, <uint32_t>(n + 1))
    memset(PyByteArray_AS_STRING(out) + total - C_TAG_SLOT_BYTES, 0, C_TAG_SLOT_BYTES)
    return total, tag_end


def block_run(const uint8_t[::1] ids, uint64_t height):
    """The sorted index run of one block: for tx ``i`` with id ``ids[32i:32i+32]`` the entry
    (first 8 id bytes read big-endian, ``height << 24 | i``) as two little-endian u64; sorted
    by the first, ties in tx order (an LSD radix sort: 8 stable byte passes)."""
    cdef Py_ssize_t n = ids.shape[0] // 32, i, pass_, b
    if ids.shape[0] != 32 * n:
        raise ValueError(f"ids must be a multiple of 32 bytes, not {ids.shape[0]}")
    if n >= (1 << LOC_INDEX_BITS):
        raise ValueError(f"a block holds at most {(1 << LOC_INDEX_BITS) - 1} transactions")
    out = PyBytes_FromStringAndSize(NULL, RUN_ENTRY_BYTES * n)
    if n == 0:
        return out
    cdef uint64_t *keys = <uint64_t *>malloc(2 * n * sizeof(uint64_t))
    cdef uint32_t *idx = <uint32_t *>malloc(2 * n * sizeof(uint32_t))
    cdef size_t hist[8][256]
    cdef uint64_t *ka
    cdef uint64_t *kb
    cdef uint32_t *ia
    cdef uint32_t *ib
    cdef uint64_t *kt
    cdef uint32_t *it
    cdef size_t c
    cdef uint64_t k, base
    cdef size_t total
    cdef char *o = PyBytes_AS_STRING(out)
    if keys == NULL or idx == NULL:
        free(keys)
        free(idx)
        raise MemoryError()
    with nogil:
        ka = keys
        kb = keys + n
        ia = idx
        ib = idx + n
        memset(hist, 0, sizeof(hist))
        for i in range(n):
            memcpy(&k, &ids[32 * i], 8)
            k = bswap64(k)  # ids sort as big-endian numbers
            ka[i] = k
            ia[i] = <uint32_t>i
            for b in range(8):
                hist[b][(k >> (8 * b)) & 0xff] += 1
        for pass_ in range(8):
            if hist[pass_][(ka[0] >> (8 * pass_)) & 0xff] == <size_t>n:
                continue  # every key has this byte: the pass would not move anything
            total = 0
            for b in range(256):
                c = hist[pass_][b]
                hist[pass_][b] = total
                total += c
            for i in range(n):
                b = (ka[i] >> (8 * pass_)) & 0xff
                kb[hist[pass_][b]] = ka[i]
                ib[hist[pass_][b]] = ia[i]
                hist[pass_][b] += 1
            kt = ka
            ka = kb
            kb = kt
            it = ia
            ia = ib
            ib = it
        base = height << C_LOC_INDEX_BITS
        for i in range(n):
            put_u64(o + 16 * i, ka[i])
            put_u64(o + 16 * i + 8, base | ia[i])
    free(keys)
    free(idx)
    return out


def plain_changes_end(list changes, Py_ssize_t key_bytes_max):
    """How many leading items of ``changes`` have the common shape of a state change: an
    exact 2-tuple of a ``bytes`` key of 1..``key_bytes_max`` bytes and a ``bytes`` or None
    value (the caller checks the rest one by one, with errors that name them)."""
    cdef Py_ssize_t n = len(changes), i
    cdef object change, key, value
    for i in range(n):
        change = changes[i]
        if not PyTuple_CheckExact(change) or PyTuple_GET_SIZE(change) != 2:
            return i
        key = <object>PyTuple_GET_ITEM(change, 0)
        value = <object>PyTuple_GET_ITEM(change, 1)
        if not PyBytes_CheckExact(key) or PyBytes_GET_SIZE(key) == 0 \
                or PyBytes_GET_SIZE(key) > key_bytes_max \
                or not (value is None or PyBytes_CheckExact(value)):
            return i
    return n


def concat_many(bytes prefix, list heads, list tails, Py_ssize_t tail_bytes=-1):
    """``[prefix + heads[i] + tails[i][:tail_bytes] ...]`` (whole tails when ``tail_bytes`` is
    -1; each item ``bytes``) in one pass: the hashing inputs and the sealed records of
    engine/store/_records.py."""
    cdef Py_ssize_t n = len(heads), i, a = PyBytes_GET_SIZE(prefix), b, c
    if len(tails) != n:
        raise ValueError("heads and tails must have the same length")
    cdef list out = [None] * n
    cdef object m, t, r
    cdef char *p
    for i in range(n):
        m = heads[i]
        t = tails[i]
        if not PyBytes_CheckExact(m) or not PyBytes_CheckExact(t) \
                or PyBytes_GET_SIZE(t) < tail_bytes:
            raise TypeError(f"item {i} must be bytes (tails of at least {tail_bytes} bytes)")
        b = PyBytes_GET_SIZE(m)
        c = PyBytes_GET_SIZE(t) if tail_bytes < 0 else tail_bytes
        r = PyBytes_FromStringAndSize(NULL, a + b + c)
        p = PyBytes_AS_STRING(r)
        memcpy(p, PyBytes_AS_STRING(prefix), a)
        memcpy(p + a, PyBytes_AS_STRING(m), b)
        memcpy(p + a + b, PyBytes_AS_STRING(t), c)
        out[i] = r
    return out


def split_sealed(list keys, list values, Py_ssize_t tag_bytes):
    """Sealed records read in one transaction (``values[i]`` the buffer LMDB gave for
    ``keys[i]``, or None when absent), split in one pass before the transaction ends:
    ``(placed, found_keys, payloads, tags)`` where ``placed`` has each found record's payload
    (a ``bytes`` copy without its tag) at its key's index and None elsewhere, ``found_keys``
    and ``payloads`` list the found ones in order (for the batch tag check) and ``tags`` is
    their tags, concatenated. A record shorter than its tag: ValueError whose second argument
    is its key."""
    cdef Py_ssize_t n = len(keys), i, size, found = 0
    if len(values) != n:
        raise ValueError("keys and values must have the same length")
    cdef list placed = [None] * n, found_keys = [], payloads = []
    cdef Py_buffer view
    cdef object value, payload
    cdef object tags = PyBytes_FromStringAndSize(NULL, n * tag_bytes)
    cdef char *t = PyBytes_AS_STRING(tags)
    for i in range(n):
        value = values[i]
        if value is None:
            continue
        PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
        try:
            size = view.len
            if size < tag_bytes:
                raise ValueError(f"record of {size} bytes is shorter than its tag", keys[i])
            payload = PyBytes_FromStringAndSize(<const char *>view.buf, size - tag_bytes)
            memcpy(t + found * tag_bytes, <const char *>view.buf + size - tag_bytes, tag_bytes)
        finally:
            PyBuffer_Release(&view)
        placed[i] = payload
        found_keys.append(keys[i])
        payloads.append(payload)
        found += 1
    return placed, found_keys, payloads, tags[:found * tag_bytes]


def first_tag_mismatch(list digests, bytes tags, Py_ssize_t tag_bytes):
    """The index of the first digest whose first ``tag_bytes`` differ from its tag in
    ``tags`` (concatenated, as ``split_sealed`` gives them), or -1."""
    cdef Py_ssize_t n = len(digests), i
    if PyBytes_GET_SIZE(tags) != n * tag_bytes:
        raise ValueError("tags must hold one tag per digest")
    cdef const char *t = PyBytes_AS_STRING(tags)
    cdef object d
    for i in range(n):
        d = digests[i]
        if not PyBytes_CheckExact(d) or PyBytes_GET_SIZE(d) < tag_bytes:
            raise TypeError(f"digests[{i}] must be bytes of at least {tag_bytes}")
        if memcmp(PyBytes_AS_STRING(d), t + i * tag_bytes, tag_bytes) != 0:
            return i
    return -1
