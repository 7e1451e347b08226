"""`store check`: verify everything the store can verify on its own, plus a node-supplied hook.

Problems are collected rather than raised, so one run reports every damaged record it can reach.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import lmdb
import numpy as np

from engine.hashing import blake3
from engine.store import _txindex, _valsets
from engine.store._records import HEIGHT, StoreError, describe_key, unseal
from engine.store.store import Store, StoredBlock

BlockVerifier = Callable[[StoredBlock, "StoredBlock | None"], Iterable[str]]
problems_max = 1000


@dataclass
class CheckReport:
    """What check found: ``problems`` (empty when the store is sound) and counts."""

    problems: list[str] = field(default_factory=list)
    blocks: int = 0
    txs: int = 0
    state_keys: int = 0
    wal_entries: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, text: str) -> None:
        if len(self.problems) < problems_max:
            self.problems.append(text)

    def summary(self) -> str:
        head = (f"{self.blocks} blocks, {self.txs} txs, {self.state_keys} state keys, "
                f"{self.wal_entries} WAL entries checked")
        if self.ok:
            return f"OK: {head}"
        lines = [f"FAILED: {len(self.problems)} problem(s); {head}"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def check_store(store: Store, verify_block: BlockVerifier | None = None) -> CheckReport:
    """Check ``store`` in one read transaction (a consistent snapshot)."""
    report = CheckReport()
    try:
        with store._env.begin(buffers=True) as txn:
            _Checker(store, txn, report, verify_block).run()
    except StoreError as e:
        report.add(str(e))
    except lmdb.Error as e:
        report.add(str(store._translate(e, "check")))
    return report


class _Checker:
    def __init__(self, store: Store, txn, report: CheckReport, verify_block):
        self.s, self.txn, self.r, self.verify_block = store, txn, report, verify_block
        self.dbs = store._dbs

    def run(self) -> None:
        latest = self._meta_height(b"latest")
        base = self._meta_height(b"base")
        if latest is None or base is None:
            return
        if (latest == 0) != (base == 0) or base > latest:
            self.r.add(f"meta: base height {base} and latest height {latest} are inconsistent")
        self._meta_records()
        indexed = self._meta_height(b"indexed")
        expected = self._blocks(base, latest, indexed or 0)
        self._hashes(base, latest)
        self._commits(base, latest)
        if indexed is not None:
            self._tx_index(expected, base, indexed, latest)
        self._simple("state", count_attr="state_keys")
        self._wal(latest)
        self._signer()

    def _meta_records(self) -> None:
        known = {b"magic", b"schema", b"latest", b"base", b"app_hash", b"tip", b"indexed",
                 b"genesis", b"crypto"}  # crypto: the suite of an sm2-sm3 chain
        for key, value in self.txn.cursor(db=self.dbs["meta"]):
            key = bytes(key)
            try:
                unseal("meta", key, value)
            except StoreError as e:
                self.r.add(str(e))
            if key not in known and not _valsets.is_key(key):
                self.r.add(f"meta: unknown key {describe_key('meta', key)}")

    def _meta_height(self, name: bytes) -> int | None:
        try:
            return self.s._meta_height(self.txn, name)
        except StoreError as e:
            self.r.add(str(e))
            return None

    def _blocks(self, base: int, latest: int, indexed: int) -> list[np.ndarray]:
        """Decode every block; returns the index entries of the blocks up to ``indexed`` (which
        the merged runs must hold); a newer block's own run must match its transactions."""
        entries: list[np.ndarray] = []
        prev: StoredBlock | None = None
        expect = base
        for key, value in self.txn.cursor(db=self.dbs["blocks"]):
            key = bytes(key)
            height = HEIGHT.unpack(key)[0] if len(key) == 8 else -1
            if height != expect:
                self.r.add(f"blocks: found {describe_key('blocks', key)} where height "
                           f"{expect} was expected (heights must be contiguous {base}..{latest})")
                expect = height
            expect += 1
            try:
                block = self.s._decode_block(self.txn, key, value)
            except StoreError as e:
                self.r.add(str(e))
                prev = None
                continue
            self.r.blocks += 1
            self.r.txs += len(block.txs)
            own = self._own_run(key, value)
            self._block(block, prev, entries if height <= indexed else None, own)
            prev = block
        if latest and expect - 1 != latest:
            self.r.add(f"blocks: the last stored height is {expect - 1}, meta says {latest}")
        if latest and prev is not None and prev.height == latest:
            app_hash = self.s._meta(self.txn, b"app_hash")
            if app_hash != prev.app_hash:
                self.r.add(f"meta: app_hash does not match block {latest}")
            if self.s._meta(self.txn, b"tip") != prev.block_hash + prev.app_chain:
                self.r.add(f"meta: tip does not match block {latest}")
        return entries

    def _own_run(self, key: bytes, value) -> np.ndarray | None:
        try:
            return self.s._block_run(key, value)
        except StoreError as e:
            self.r.add(str(e))
            return None

    def _block(self, block: StoredBlock, prev: StoredBlock | None, entries: list | None,
               own: np.ndarray | None) -> None:
        h = block.height
        ids = b"".join(self.s.suite.hash_many(block.txs)) if block.txs else b""
        if self.s.suite.tx_root(ids) != block.tx_root:
            self.r.add(f"blocks: height {h}: tx root does not match its transactions")
        if block.results and len(block.results) != len(block.txs):
            self.r.add(f"blocks: height {h}: {len(block.results)} results for "
                       f"{len(block.txs)} txs")
        if prev is not None and prev.height == h - 1:
            if block.parent_hash != prev.block_hash:
                self.r.add(f"blocks: height {h}: parent hash does not match block {h - 1}")
            chain = blake3(prev.app_chain + HEIGHT.pack(h) + block.app_hash)
            if chain != block.app_chain:
                self.r.add(f"blocks: height {h}: app-hash chain broken")
        want = _txindex.block_entries(h, ids)
        if own is not None and not np.array_equal(_sorted_rows([own]), _sorted_rows([want])):
            self.r.add(f"blocks: height {h}: the block's tx index run does not match its "
                       f"transactions")
        if block.txs and entries is not None:
            entries.append(want)
        if self.verify_block is not None:
            try:
                for problem in self.verify_block(block, prev if prev and prev.height == h - 1
                                                 else None):
                    self.r.add(f"blocks: height {h}: {problem}")
            except Exception as e:  # noqa: BLE001 - node code: report it, do not stop the check
                self.r.add(f"blocks: height {h}: block verifier raised {type(e).__name__}: {e}")

    def _hashes(self, base: int, latest: int) -> None:
        for key, value in self.txn.cursor(db=self.dbs["block_hashes"]):
            key = bytes(key)
            try:
                raw = unseal("block_hashes", key, value)
                height = HEIGHT.unpack(raw)[0] if len(raw) == 8 else -1
                if not base <= height <= latest:
                    self.r.add(f"block_hashes: {key.hex()} points at height {height}, outside "
                               f"{base}..{latest}")
                    continue
                fields = self.s._block_fields(self.txn, height)
                if fields["block_hash"] != key:
                    self.r.add(f"block_hashes: {key.hex()} points at height {height}, which "
                               f"holds another block")
            except StoreError as e:
                self.r.add(str(e))
        entries = self.txn.stat(self.dbs["block_hashes"])["entries"]
        if entries != self.r.blocks and latest:
            self.r.add(f"block_hashes: {entries} entries for {self.r.blocks} blocks")

    def _commits(self, base: int, latest: int) -> None:
        for key, value in self.txn.cursor(db=self.dbs["commits"]):
            key = bytes(key)
            try:
                unseal("commits", key, value)
            except StoreError as e:
                self.r.add(str(e))
            height = HEIGHT.unpack(key)[0] if len(key) == 8 else -1
            if not base <= height <= latest or height == 0:
                self.r.add(f"commits: certificate at {describe_key('commits', key)} outside "
                           f"the stored heights {base}..{latest}")

    def _tx_index(self, expected: list[np.ndarray], base: int, indexed: int,
                  latest: int) -> None:
        """The merged runs must hold exactly the entries of the blocks from ``base`` up to
        ``indexed``; a run that straddles the base may still hold entries of pruned heights
        (pruning rewrites it only once they span half of it), a run below the base may not
        exist."""
        if indexed > latest:
            self.r.add(f"meta: indexed height {indexed} is above the latest height {latest}")
        found: list[np.ndarray] = []
        last_height = -1
        for key, value in self.txn.cursor(db=self.dbs["tx_index"]):
            try:
                run = _txindex.Run(bytes(key), value)
                found.append(run.all_entries())
            except StoreError as e:
                self.r.add(str(e))
                continue
            if run.first <= last_height:
                self.r.add(f"tx_index: run {run.first}..{run.last} overlaps the run before it")
            if run.last < base:
                self.r.add(f"tx_index: run {run.first}..{run.last} lies below the base height "
                           f"{base}")
            if run.last > indexed:
                self.r.add(f"tx_index: run {run.first}..{run.last} reaches past the indexed "
                           f"height {indexed}")
            last_height = run.last
        want = _sorted_rows(expected)
        have = _sorted_rows(found)
        if len(have):  # pruned heights' entries left in a run that straddles the base
            have = have[(have[:, 1] >> np.uint64(_txindex.LOC_INDEX_BITS)) >= np.uint64(base)]
        if want.shape != have.shape or not np.array_equal(want, have):
            missing = _row_diff(want, have)
            extra = _row_diff(have, want)
            self.r.add(f"tx_index: does not match the blocks ({len(missing)} entries missing, "
                       f"{len(extra)} unexpected{_first_loc(missing or extra)})")

    def _simple(self, db: str, count_attr: str) -> None:
        for key, value in self.txn.cursor(db=self.dbs[db]):
            try:
                unseal(db, bytes(key), value)
                setattr(self.r, count_attr, getattr(self.r, count_attr) + 1)
            except StoreError as e:
                self.r.add(str(e))

    def _wal(self, latest: int) -> None:
        for key, value in self.txn.cursor(db=self.dbs["wal"]):
            key = bytes(key)
            try:
                unseal("wal", key, value)
            except StoreError as e:
                self.r.add(str(e))
                continue
            self.r.wal_entries += 1
            height = HEIGHT.unpack(key[:8])[0] if len(key) == 16 else -1
            if height <= latest:
                self.r.add(f"wal: {describe_key('wal', key)} belongs to a committed height "
                           f"(<= {latest}) and should have been discarded")

    def _signer(self) -> None:
        try:
            self.s._signer_record(self.txn)
        except StoreError as e:
            self.r.add(str(e))
        for key, _ in self.txn.cursor(db=self.dbs["signer"]):
            if bytes(key) != b"last" and not (bytes(key).startswith(b"h") and len(key) == 6):
                self.r.add(f"signer: unexpected key {bytes(key).hex()}")
        try:
            self.s._signer_history(self.txn)
        except StoreError as e:
            self.r.add(str(e))


def _sorted_rows(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros((0, 2), np.uint64)
    rows = np.concatenate(parts)
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


def _row_diff(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    bs = {(int(x), int(y)) for x, y in b}
    return [(int(x), int(y)) for x, y in a if (int(x), int(y)) not in bs]


def _first_loc(rows: list[tuple[int, int]]) -> str:
    if not rows:
        return ""
    height, index = _txindex.split_loc(rows[0][1])
    return f"; first at height {height} tx {index}"


