"""README "Storage": a checksum mismatch raises StoreCorruption naming the database and the key,
and LMDB's own corruption errors become StoreCorruption too.

test_corruption.py covers `blocks` on the read path and every database through check_store;
here each of the seven other databases is damaged in one known record (through py-lmdb, not the
Store) and the public read that touches it must raise StoreCorruption carrying that database and
that key. LMDB-level damage runs in forked children (a damaged map may fault)."""
from __future__ import annotations

import os

import lmdb
import pytest

from engine.hashing import blake3
from engine.store import Store, StoreCorruption
from engine.store._records import describe_key
from tests.store.helpers import block_args, save

HEIGHT_BYTES = 8


def height_key(h: int) -> bytes:
    return h.to_bytes(HEIGHT_BYTES, "big")


def build(path: str) -> None:
    with Store(path) as s:
        for h in range(1, 21):
            save(s, h)
        assert s.compact_index() >= 1  # heights 1..16 merged into tx_index
        s.wal_append(21, b"wal entry")
        s.sign_guarded(21, 0, 1, b"sign bytes", lambda b: b"s" * 64)


def flip_value(path: str, db: str, pick) -> bytes:
    """Flip one bit in the middle of the value of ``pick(keys)`` in database ``db``, bypassing
    the Store; returns the key."""
    env = lmdb.open(path, max_dbs=16, subdir=True)
    try:
        dbi = env.open_db(db.encode(), create=False)
        with env.begin(write=True) as txn:
            keys = [bytes(k) for k, _ in txn.cursor(db=dbi)]
            key = pick(keys)
            value = bytearray(txn.get(key, db=dbi))
            value[len(value) // 3] ^= 0x04
            txn.put(key, bytes(value), db=dbi)
    finally:
        env.close()
    return key


def wal_key(keys):
    (key,) = keys
    return key


CASES = {
    # database: (which key to damage, the public read that must notice)
    "commits": (lambda keys: height_key(5), lambda s: s.load_block(5)),
    "block_hashes": (lambda keys: block_args(7)["block_hash"],
                     lambda s: s.load_block_by_hash(block_args(7)["block_hash"])),
    "tx_index": (lambda keys: keys[0], lambda s: s.find_tx(blake3(block_args(3)["txs"][4]))),
    "state": (lambda keys: b"last", lambda s: s.state_get(b"last")),
    # the batch read checks every record's tag too (and names the damaged one among others)
    "state/many": (lambda keys: b"last", lambda s: s.state_get_many([b"nope", b"last"])),
    "meta": (lambda keys: b"latest", lambda s: s.latest_height()),
    "wal": (wal_key, lambda s: s.wal_replay(21)),
    "signer": (lambda keys: b"last", lambda s: s.signer_record()),
}


@pytest.mark.parametrize("db", sorted(CASES))
def test_a_damaged_record_is_named_by_database_and_key(tmp_path, db):
    path = str(tmp_path / "s")
    build(path)
    pick, read = CASES[db]
    db = db.split("/")[0]
    key = flip_value(path, db, pick)
    with Store(path, readonly=True) as s, pytest.raises(StoreCorruption) as e:
        read(s)
    assert (e.value.database, e.value.key) == (db, key)
    assert f"database {db!r} at key {describe_key(db, key)}" in str(e.value)


def _in_child(fn) -> str:
    """Run ``fn()`` in a forked child; its outcome as text ('signal N' if it died)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = fn()
        except StoreCorruption as e:
            out = f"StoreCorruption {e.database}: {e}"
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which judges it
            out = f"{type(e).__name__}: {e}"
        os.write(w, out.encode()[:4000])
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return out if os.WIFEXITED(status) else f"signal {os.WTERMSIG(status)}"


PAGE_BYTES = 4096  # LMDB's page size on x86-64 and aarch64 Linux
PAGE_FLAGS_OFFSET = 10  # MDB_page: pgno u64, pad u16, flags u16
DB_ROOT_OFFSET = 40  # MDB_db: pad u32, flags u16, depth u16, 4 x u64 counts, root u64


def _clobber_page(path: str, page: int) -> None:
    """Zero a page's type flags: LMDB then finds a page of no type there (MDB_CORRUPTED)."""
    with open(os.path.join(path, "data.mdb"), "r+b") as f:
        f.seek(page * PAGE_BYTES + PAGE_FLAGS_OFFSET)
        f.write(b"\x00\x00")


def _clobber_page_headers(path: str) -> None:
    """Every page but the two meta pages, the main database included."""
    for page in range(2, os.path.getsize(os.path.join(path, "data.mdb")) // PAGE_BYTES):
        _clobber_page(path, page)


def _root_page(path: str, db: str) -> int:
    """The root page of a named database, read from its record in LMDB's main database."""
    env = lmdb.open(path, readonly=True, subdir=True)
    try:
        with env.begin() as txn:
            record = txn.get(db.encode())
    finally:
        env.close()
    return int.from_bytes(record[DB_ROOT_OFFSET:DB_ROOT_OFFSET + 8], "little")


def test_lmdb_corruption_on_open_is_store_corruption(tmp_path):
    path = str(tmp_path / "s")
    build(path)
    _clobber_page_headers(path)
    out = _in_child(lambda: f"opened: {Store(path, readonly=True).latest_height()}")
    assert out.startswith("StoreCorruption lmdb:") and "MDB_CORRUPTED" in out, out


def test_lmdb_corruption_after_open_is_store_corruption(tmp_path):
    path = str(tmp_path / "s")
    build(path)

    root = _root_page(path, "commits")

    def read_after_damage() -> str:
        with Store(path, readonly=True) as s:
            # The map is shared: the open store sees the damage to the root of `commits`.
            _clobber_page(path, root)
            return f"read: {s.load_block(12)}"

    out = _in_child(read_after_damage)
    assert out.startswith("StoreCorruption lmdb:") and "MDB_CORRUPTED" in out, out


def test_a_foreign_file_is_store_corruption_not_a_crash(tmp_path):
    path = tmp_path / "s"
    build(str(path))
    data = path / "data.mdb"
    data.write_bytes(b"\x00" * 8192 + data.read_bytes()[8192:])  # both meta pages gone
    out = _in_child(lambda: f"opened: {Store(str(path), readonly=True).latest_height()}")
    assert out.startswith("StoreCorruption lmdb:") and "MDB_INVALID" in out, out
