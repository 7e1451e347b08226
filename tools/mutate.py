"""`make mutate`: deliberate bugs in the invariants that matter, each required to fail a test.

Each mutant is (file, an exact snippet of its source, a replacement, the tests to run). The
driver first runs every listed test on the unmodified tree (they must pass, or a "killed"
mutant would prove nothing), then applies the mutants one at a time in place, runs the mutant's
tests, and restores the file byte for byte: in a ``finally``, on SIGINT/SIGTERM, and, should the
driver itself be killed, at the start of the next run from the backup it left in
``.mutate-backup/``. A snippet that is missing or not unique stops the run (exit 2): the list
must follow the code it mutates.

A mutant is *killed* when its tests fail (pytest exit 1) and *survives* when they pass; any other
pytest outcome (a collection error, an interrupted run) is an error. Exit status: 0 when every
mutant was killed, 1 when one survived, 2 on errors. ``--only NAME[,NAME]`` runs some of them;
``--list`` prints them. Python code only: the C kernels would need a rebuild per mutant (their
invariants are covered by differential tests against the references instead).

SLOTS are mutants named but not written yet: listed, never run, and not counted as survivors.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKUP = ROOT / ".mutate-backup"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str          # relative to the repository root
    original: str      # exact snippet, present exactly once in the file
    replacement: str
    tests: tuple[str, ...]
    why: str           # the invariant it breaks


@dataclass(frozen=True)
class Slot:
    name: str
    where: str
    why: str


MUTANTS = [
    Mutant("quorum-at-two-thirds", "engine/consensus/types.py",
           "        return 3 * power > 2 * self.total_power",
           "        return 3 * power >= 2 * self.total_power",
           ("tests/consensus/test_certificate.py", "tests/consensus/test_types.py",
            "tests/consensus/test_rules.py"),
           "a quorum is MORE than 2/3 of the power; exactly 2/3 must not decide or certify"),
    Mutant("sign-twice-at-one-step", "engine/store/store.py",
           '        raise DoubleSignRefused(f"refusing to sign different bytes at {hrs}")',
           "        return None  # mutant: a second, different signature at this step",
           ("tests/store/test_store.py", "tests/consensus/test_signer_proposer.py"),
           "the store's guard refuses different bytes at a (height, round, step) it signed"),
    Mutant("skip-checksum-on-read", "engine/store/_records.py",
           "    if tag(database, key, payload) != bytes(view[-TAG_BYTES:]):",
           "    if False:  # mutant: the tag is never compared",
           ("tests/store/test_corruption_named.py", "tests/store/test_corruption.py"),
           "every stored value is checked against its BLAKE3 tag when read"),
    Mutant("accept-batch-with-one-bad-signature", "engine/crypto.py",
           "    return _native_ed25519.verify_batch(public_keys, messages, signatures, "
           "threads_arg(threads))",
           "    out = _native_ed25519.verify_batch(public_keys, messages, signatures, "
           "threads_arg(threads))\n"
           "    return [True] * len(out) if out.count(False) == 1 else out  # mutant",
           ("tests/crypto/test_api.py", "tests/crypto/test_vectors.py",
            "tests/consensus/test_certificate.py"),
           "a batch verdict equals verify() on each entry; one forged signature is never "
           "accepted"),
    Mutant("certificate-without-power", "engine/consensus/certificate.py",
           "        if not validators.has_quorum(power):",
           "        if False:  # mutant: power is never compared with the quorum",
           ("tests/consensus/test_certificate.py",),
           "a block is applied only under a certificate of more than 2/3 of the power"),
    Mutant("mempool-bytes-bound-off-by-one", "engine/mempool.py",
           "self._pool_bytes + len(env) > lim.bytes_max",
           "self._pool_bytes + len(env) >= lim.bytes_max",
           ("tests/node/test_mempool_limits.py",),
           "the pool holds up to bytes_max bytes, not one less"),
    Mutant("send-before-persist", "engine/node/driver.py",
           "                v = action.vote\n                if self._persist(",
           "                v = action.vote\n                self.outbox.votes([v])  # mutant\n"
           "                if self._persist(",
           ("tests/node/test_driver.py",
            ("tests/node/test_node_inprocess.py::"
             "test_every_input_before_an_own_signature_is_durable_when_it_is_sent")),
           "an own vote leaves only after its signer record and WAL records are durable"),
    Mutant("drop-an-acknowledged-transaction", "engine/mempool.py",
           "    def remove_committed(self, tx_ids: Sequence[bytes]) -> None:\n"
           "        self._drop_many(tx_ids)\n",
           "    def remove_committed(self, tx_ids: Sequence[bytes]) -> None:\n"
           "        self._drop_many(list(tx_ids) + list(self._pool)[:1])  # mutant: one more "
           "vanishes\n",
           ("tests/faults/test_faults.py::test_scenario[kill-restart]",),
           "a transaction a client was told was accepted is committed (the fault runner's "
           "'nothing lost' set is what clients were told)"),
    Mutant("proposal-tx-bypasses-verification", "engine/node/validity.py",
           "        if ids and not all(self.mempool.verify_block_txs(list(b.txs), ids)):",
           "        if False:  # mutant: a proposal's transactions are not verified",
           ("tests/node/test_validity.py",),
           "a transaction inside a proposal is valid only with a valid signature"),
    Mutant("block-id-ignores-the-body", "engine/block.py",
           "    check_body(block, s.hash_many(list(block.txs)) if block.txs else [], s)\n",
           "",
           ("tests/node/test_block.py", "tests/node/test_validity.py"),
           "two blocks share an id only if they are the same block: the id (a header hash) "
           "must come with the check that the body is the header's"),
    Mutant("compact-ids-not-bound-to-the-header", "engine/node/compact.py",
           "        if b.tx_count != len(ids) or tx_root_of(ids, self.suite) != b.tx_root:",
           "        if b.tx_count != len(ids):  # mutant: any ids of the right count",
           ("tests/node/test_compact_proposals.py",),
           "a relayer must not be able to swap the transactions of a signed compact proposal"),
    Mutant("fetched-transaction-not-checked", "engine/node/compact.py",
           "            if i >= len(pending.ids) or pending.ids[i] != got:",
           "            if i >= len(pending.ids):  # mutant: any envelope fills the slot",
           ("tests/node/test_compact_proposals.py",),
           "a fetched transaction must be the one the block names at its index"),
    # Issue 13 leftovers: the slot attack end to end, and the soak's memory findings.
    Mutant("configured-peers-share-stranger-slots", "engine/net/peers.py",
           "        configured = source in self._configured_sources\n",
           "        configured = False  # mutant: no slot is reserved for configured peers\n",
           ("tests/net/test_handshake_slots.py",
            ("tests/faults/test_slot_attack.py::"
             "test_restarted_validators_reconnect_while_every_node_is_slot_attacked")),
           "idle reconnecting strangers cannot lock configured peers and validators out"),
    Mutant("heap-never-trimmed", "engine/allocator.py",
           "    lib.malloc_trim(0)  # ctypes releases the GIL for the call\n",
           "    pass  # mutant: freed heap pages are never returned\n",
           ("tests/test_allocator.py",),
           "a node returns freed heap pages to the OS (the soak's RSS levels off)"),
    Mutant("committed-id-cache-unbounded", "engine/mempool.py",
           "        self._committed = _poolcore.RecentIds(self.limits.committed_cache_max)",
           "        self._committed = _poolcore.RecentIds(4 * self.limits.committed_cache_max)",
           ("tests/test_allocator.py", "tests/node/test_mempool_paths.py"),
           "the committed-id cache stays within its named bound (engine/limits.py)"),
    Mutant("durable-write-without-meta-flush", "engine/store/store.py",
           "                if durable:\n                    self._env.sync(True)\n",
           "                if durable:\n                    pass  # mutant: meta page not flushed\n",
           ("tests/store/test_durability.py",),
           "with metasync off, a signature is durable only after a flush that follows its commit "
           "(a power cut would otherwise lose a signature already sent)"),
    Mutant("one-durable-write-per-signature", "engine/node/driver.py",
           "        if len(signed) < 2:\n            return\n",
           "        if len(signed) < 2 or True:  # mutant: never together\n            return\n",
           ("tests/node/test_node_inprocess.py::test_signatures_of_one_step_share_one_durable_write",),
           "the signatures of one consensus step share one durable transaction"),
    Mutant("reuse-early-execution-of-another-block", "engine/node/commit.py",
           "        if held is not None and held.height == decide.height \\\n"
           "                and held.block_hash == decide.block_hash:\n",
           "        if held is not None and held.height == decide.height:  # mutant\n",
           ("tests/node/test_optimistic_execution.py",),
           "a decision stores the early result only of the block decided, never of another one"),
    Mutant("early-execution-while-replaying", "engine/node/driver.py",
           "        if precommitted is not None and self._speculate is not None and not "
           "self.replaying \\\n",
           "        if precommitted is not None and self._speculate is not None \\\n",
           ("tests/sim/test_sim.py::test_early_executions_happen_under_faults_and_are_reused",),
           "nothing is executed early while the WAL is replayed (the simulator's checker)"),
    Mutant("kvstore-second-finalize-without-rollback", "engine/app.py",
           "            self.tree.rollback(self._finalized)\n",
           "            pass  # mutant: the early block stays in the state tree\n",
           ("tests/node/test_optimistic_execution.py",),
           "a second finalize_block for an uncommitted height replaces the first one"),
    Mutant("synced-block-read-before-its-certificate-binds-it", "engine/node/blocksync.py",
           "            if not self._is_certified(height, raw, cert, peer):\n                return\n",
           "",
           ("tests/node/test_blocksync_held.py",),
           "nothing in a synced block is believed (its app hash above all) before the block is "
           "the one its certificate signs: one peer must not halt a node"),
    Mutant("partition-that-cuts-nothing", "engine/faults/netns.py",
           "                        self.block(i, j)\n                        self.block(j, i)\n",
           "                        pass  # mutant: the partition installs no rule\n",
           ("tests/faults/test_faults.py::test_scenario[partition-minority]",),
           "a network fault scenario proves its fault happened (the rules dropped packets, "
           "the minority stood still)"),
    Mutant("held-sync-block-unverified", "engine/node/blocksync.py",
           "            self._buffer[height] = (raw, self._verified(height, cert_raw, vset), peer)\n"
           "            return True",
           "            self._buffer[height] = (raw, cs.CommitCertificate.decode(cert_raw, len(vset)),"
           " peer)\n            return True",
           ("tests/node/test_blocksync_held.py",),
           "a block synced from above the set horizon must have its certificate verified before "
           "it enters the WAL"),
]

#: Mutants not written yet (none: the node's three are above).
SLOTS: list[Slot] = []


def restore_leftovers() -> None:
    """Put back files a killed earlier run left mutated."""
    if not BACKUP.exists():
        return
    for saved in BACKUP.rglob("*"):
        if saved.is_file():
            target = ROOT / saved.relative_to(BACKUP)
            shutil.copyfile(saved, target)
            print(f"restored {target.relative_to(ROOT)} from an interrupted run")
    shutil.rmtree(BACKUP)


def pytest(tests: tuple[str, ...], timeout_s: float) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout_s,
                              check=False).returncode
    except subprocess.TimeoutExpired:
        return -1


def check_snippets(mutants: list[Mutant]) -> list[str]:
    problems = []
    for m in mutants:
        count = (ROOT / m.file).read_text().count(m.original)
        if count != 1:
            problems.append(f"{m.name}: snippet found {count} times in {m.file}")
    return problems


def run_mutant(m: Mutant, timeout_s: float) -> str:
    path = ROOT / m.file
    original = path.read_bytes()
    saved = BACKUP / m.file
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_bytes(original)
    try:
        path.write_text(original.decode().replace(m.original, m.replacement, 1))
        code = pytest(m.tests, timeout_s)
    finally:
        path.write_bytes(original)
        shutil.rmtree(BACKUP, ignore_errors=True)
    if code == 1:
        return "killed"
    if code == 0:
        return "SURVIVED"
    return f"ERROR (pytest exit {code})"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated mutant names")
    parser.add_argument("--list", action="store_true", help="list mutants and slots")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pytest run")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:<38} {m.file:<34} {m.why}")
        for s in SLOTS:
            print(f"{s.name:<38} {'(slot) ' + s.where:<34} {s.why}")
        return 0
    wanted = {n for n in args.only.split(",") if n}
    unknown = wanted - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutants: {sorted(unknown)}", file=sys.stderr)
        return 2
    mutants = [m for m in MUTANTS if not wanted or m.name in wanted]
    restore_leftovers()
    problems = check_snippets(mutants)
    if problems:
        print("the mutant list no longer matches the code:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 2
    # Restore on SIGTERM too (SIGINT already raises KeyboardInterrupt through the finally).
    signal.signal(signal.SIGTERM, _interrupt)
    tests = tuple(sorted({t for m in mutants for t in m.tests}))
    print(f"unmutated run of {len(tests)} test files ...", flush=True)
    code = pytest(tests, args.timeout)
    if code != 0:
        print(f"the tests fail without any mutant (pytest exit {code}): fix that first",
              file=sys.stderr)
        return 2
    results = {}
    for m in mutants:
        start = time.monotonic()
        results[m.name] = run_mutant(m, args.timeout)
        print(f"{results[m.name]:<9} {m.name:<38} {time.monotonic() - start:5.1f} s  "
              f"({m.why})", flush=True)
    for s in SLOTS:
        print(f"{'slot':<9} {s.name:<38} not written yet: {s.where}")
    killed = sum(r == "killed" for r in results.values())
    survived = [n for n, r in results.items() if r == "SURVIVED"]
    errors = [n for n, r in results.items() if r.startswith("ERROR")]
    print(f"\n{killed} killed, {len(survived)} survived, {len(errors)} errors, "
          f"{len(SLOTS)} slots open")
    if errors:
        return 2
    return 1 if survived else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: the mutated file was restored", file=sys.stderr)
        sys.exit(130)
