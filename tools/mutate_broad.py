"""`make mutate-broad`: cosmic-ray over engine/consensus, engine/store, the mempool and the
node modules (block sync, compact proposals, the WAL journal, block validity, the committer,
the peer router, state sync, the consensus driver, the validator-set history, snapshots, the
evidence pool and pruning).

For each module or package named on the command line: a cosmic-ray config in .cosmic-ray/ (the
tests that cover it, a per-mutant timeout), a session database, a baseline run (the tests must
pass unmutated), every mutant executed in place (cosmic-ray restores each file after its run),
then the report: killed, survived, incompetent (timeouts) and the survivors' diffs. Survivors
are judged by hand in docs/mutation.md; this script only runs and reports. A full run over
engine/consensus or engine/store takes hours on two cores: give one module at a time. An
existing session is resumed (its finished mutants are kept); ``--fresh`` starts over. Operators
that can only make equivalent mutants in a target are filtered out before the run (EXCLUDE).

``--sample N [--seed S]`` bounds the run time: after the operator filter, a fixed-seed uniform
sample of N of the remaining mutants is kept in a new session and the rest are deleted from it,
so the report counts only the mutants that ran (issue 19: the full consensus core is about 1,100
mutants and the store about 2,500, an hour or more each on this machine).
"""
from __future__ import annotations

import random
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cosmic-ray"

#: The tests that cover each target, fast enough to run once per mutant.
TESTS = {
    "engine/mempool.py": ["tests/node/test_mempool.py", "tests/node/test_mempool_limits.py",
                          "tests/node/test_mempool_paths.py"],
    "engine/consensus": ["tests/consensus"],
    "engine/store": ["tests/store/test_store.py", "tests/store/test_corruption_named.py",
                     "tests/node/test_check.py"],
    "engine/consensus/core.py": ["tests/consensus"],
    # The random byte-flip sweep (8 s) is left out of the per-mutant run; the named-corruption
    # tests cover the same checks one database at a time.
    "engine/store/store.py": ["tests/store/test_store.py", "tests/store/test_corruption_named.py",
                              "tests/store/test_corruption.py", "tests/node/test_signer_history.py",
                              "-k", "not random_byte_flips"],
    "engine/node/compact.py": ["tests/node/test_compact_proposals.py"],
    "engine/node/validity.py": ["tests/node/test_validity.py"],
    "engine/node/wal.py": ["tests/node/test_wal.py", "tests/node/test_driver.py",
                           "tests/node/test_replay.py",
                           "tests/node/test_wal_loss_resume.py"],
    "engine/node/blocksync.py": ["tests/node/test_blocksync_window.py",
                                 "tests/node/test_blocksync_held.py",
                                 "tests/node/test_insider_claims.py"],
    "engine/node/commit.py": ["tests/node/test_commit_checks.py",
                              "tests/node/test_optimistic_execution.py",
                              "tests/node/test_app_lifecycle.py",
                              "tests/node/test_app_interface.py"],
    "engine/node/router.py": ["tests/node/test_router_unit.py", "tests/node/test_fast_paths.py",
                              "tests/node/test_valset_rules.py",
                              "tests/node/test_compact_proposals.py"],
    "engine/node/driver.py": ["tests/node/test_driver.py", "tests/node/test_wal.py",
                              "tests/node/test_replay.py", "tests/node/test_signer_history.py",
                              "tests/node/test_height_phases.py"],
    "engine/node/valset.py": ["tests/node/test_valset_rules.py", "tests/node/test_validity.py",
                              "tests/node/test_commit_unit.py"],
    "engine/node/snapshots.py": ["tests/node/test_snapshots_unit.py",
                                 "tests/node/test_statesync.py"],
    "engine/node/evidence.py": ["tests/node/test_evidence_pool.py"],
    "engine/node/pruning.py": ["tests/node/test_pruning.py"],
    # The unit tests first: with -x most mutants die there in seconds, before the networks.
    "engine/node/statesync.py": ["tests/node/test_statesync_unit.py",
                                 "tests/node/test_statesync.py"],
    "engine/node/check.py": ["tests/node/test_check_unit.py", "tests/node/test_check.py"],
    "engine/node/events.py": ["tests/node/test_events_unit.py",
                              "tests/node/test_app_interface.py"],
    "engine/node/queries.py": ["tests/node/test_queries_unit.py",
                               "tests/node/test_app_interface.py",
                               "tests/node/test_app_config.py"],
    "engine/node/apphooks.py": ["tests/node/test_apphooks_unit.py",
                                "tests/node/test_app_interface.py",
                                "tests/node/test_app_blocks.py"],
    "engine/node/production.py": ["tests/node/test_production_unit.py",
                                  "tests/node/test_height_phases.py",
                                  "tests/node/test_node_inprocess.py"],
    "engine/node/phases.py": ["tests/node/test_height_phases.py"],
    "engine/node/wire.py": ["tests/node/test_wire_unit.py"],
    "engine/node/signatures.py": ["tests/node/test_signatures_unit.py",
                                  "tests/node/test_router_unit.py"],
    # The light client: the synthetic-chain tests of both suites (the SM2 testnet run is left
    # out: seconds per mutant for what the synthetic chains already cover).
    "engine/light/verify.py": ["tests/light/test_verify_rules.py", "tests/light/test_client.py",
                               "tests/sm/test_light_sm2.py", "-k", "not testnet"],
    "engine/light/block.py": ["tests/light/test_block_decoding.py", "tests/light/test_client.py",
                              "tests/sm/test_light_sm2.py", "-k", "not testnet"],
    "engine/light/client.py": ["tests/light/test_client_rules.py", "tests/light/test_client.py",
                               "tests/sm/test_light_sm2.py", "-k", "not testnet"],
    "engine/node/join.py": ["tests/node/test_join_unit.py"],
    # The node's assembly: in-process networks and a single embedded validator, each a second
    # or two (the fast files first: with -x most mutants stop there).
    "engine/node/node.py": ["tests/node/test_genesis_checks.py", "tests/node/test_app_lifecycle.py",
                            "tests/node/test_rpc_contract.py", "tests/node/test_app_interface.py",
                            "tests/node/test_node_inprocess.py",
                            "tests/node/test_wal_loss_resume.py", "tests/node/test_statesync.py"],
    "engine/statetree.py": ["tests/light/test_statetree.py", "tests/sm/test_statetree_sm3.py",
                            "tests/light/test_crosschain.py", "-k", "not two_chains"],
    "engine/light/proofs.py": ["tests/light/test_proofs_unit.py", "tests/light/test_crosschain.py",
                               "tests/sm/test_light_sm2.py", "-k", "not two_chains and not testnet"],
}


#: Operators left out per target, each with the reason its mutants are all equivalent there.
EXCLUDE = {
    # Every `|` in the mempool is in an annotation, never evaluated (PEP 563 is on).
    "engine/mempool.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    # Likewise in the store: every `|` is in an annotation.
    "engine/store/store.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    # And in the node modules (block sync, compact proposals, WAL, validity, commit, router, ...).
    "engine/node/blocksync.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/compact.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/wal.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/validity.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/commit.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/router.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/statesync.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/driver.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/snapshots.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    # Its `|=` set unions are code, but augmented assignments are not this operator's (the
    # unfiltered run of 2026-12-06 mutated only the `|` of annotations).
    "engine/node/valset.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/evidence.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/pruning.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/check.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/events.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/queries.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/apphooks.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/production.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/phases.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/wire.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/signatures.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/node.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/light/verify.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/light/block.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/light/client.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/node/join.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/statetree.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
    "engine/light/proofs.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
}


def config_text(module: str, tests: list[str]) -> str:
    command = " ".join([shlex.quote(sys.executable), "-m", "pytest", "-x", "-q",
                        "-p", "no:cacheprovider", *map(shlex.quote, tests)])
    excluded = ", ".join(f'"{op}"' for op in EXCLUDE.get(module, []))
    return (f'[cosmic-ray]\nmodule-path = "{module}"\ntimeout = 120.0\n'
            f'excluded-modules = []\ntest-command = "{command}"\n\n'
            '[cosmic-ray.distributor]\nname = "local"\n\n'
            f'[cosmic-ray.filters.operators-filter]\nexclude-operators = [{excluded}]\n')


def keep_sample(session: Path, count: int, seed: int) -> tuple[int, int]:
    """Delete all but a seeded uniform sample of ``count`` not-yet-run mutants from ``session``;
    returns (kept, total before). Mutants already skipped by the operator filter are deleted too,
    so every mutant left in the session is one that runs."""
    db = sqlite3.connect(session)
    with db:
        todo = sorted(r[0] for r in db.execute(
            "SELECT job_id FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results)"))
        keep = set(random.Random(seed).sample(todo, min(count, len(todo))))
        drop = [j for j in db.execute("SELECT job_id FROM work_items") if j[0] not in keep]
        for table in ("work_results", "mutation_specs", "work_items"):
            db.executemany(f"DELETE FROM {table} WHERE job_id = ?", drop)
    db.close()
    return len(keep), len(todo)


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, cwd=ROOT, check=True)


def main(argv: list[str]) -> int:
    fresh = "--fresh" in argv
    sample, seed, modules = 0, 19, []
    args = iter(argv)
    for a in args:
        if a == "--sample":
            sample = int(next(args))
        elif a == "--seed":
            seed = int(next(args))
        elif a != "--fresh":
            modules.append(a)
    if not modules:
        print(f"usage: {sys.argv[0]} MODULE [...]; known: {', '.join(TESTS)}", file=sys.stderr)
        return 2
    WORK.mkdir(exist_ok=True)
    bindir = Path(sys.executable).parent
    for module in modules:
        if module not in TESTS:
            print(f"no tests listed for {module}; known: {', '.join(TESTS)}", file=sys.stderr)
            return 2
        name = module.replace("/", "_").removesuffix(".py")
        if sample:
            name += f"-sample{sample}-seed{seed}"
        config, session = WORK / f"{name}.toml", WORK / f"{name}.sqlite"
        config.write_text(config_text(module, TESTS[module]))
        if fresh or not session.exists():
            session.unlink(missing_ok=True)
            run(str(bindir / "cosmic-ray"), "init", str(config), str(session))
            run(str(bindir / "cr-filter-operators"), str(session), str(config))
            if sample:
                kept, total = keep_sample(session, sample, seed)
                print(f"sampled {kept} of {total} mutants (seed {seed})", flush=True)
        run(str(bindir / "cosmic-ray"), "--verbosity=WARNING", "baseline", str(config))
        run(str(bindir / "cosmic-ray"), "exec", str(config), str(session))
        report = subprocess.run([str(bindir / "cr-report"), "--show-output", "--show-diff",
                                 str(session)], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout
        (WORK / f"{name}.report.txt").write_text(report)
        print(report.splitlines()[-1] if report else "(empty report)")
        # Leave the tree as found: cosmic-ray restores each file itself; check nothing is left.
        diff = subprocess.run(["git", "diff", "--stat", "--", module], cwd=ROOT,
                              capture_output=True, text=True, check=False).stdout
        if diff.strip():
            print(f"warning: {module} differs from git after the run:\n{diff}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
