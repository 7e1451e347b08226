"""`make mutate-broad`: cosmic-ray over engine/consensus, engine/store and the mempool.

For each module or package named on the command line: a cosmic-ray config in .cosmic-ray/ (the
tests that cover it, a per-mutant timeout), a session database, a baseline run (the tests must
pass unmutated), every mutant executed in place (cosmic-ray restores each file after its run),
then the report: killed, survived, incompetent (timeouts) and the survivors' diffs. Survivors
are judged by hand in docs/mutation.md; this script only runs and reports. A full run over
engine/consensus or engine/store takes hours on two cores: give one module at a time. An
existing session is resumed (its finished mutants are kept); ``--fresh`` starts over. Operators
that can only make equivalent mutants in a target are filtered out before the run (EXCLUDE).
"""
from __future__ import annotations

import shlex
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
                     "tests/store/test_node_check.py"],
}


#: Operators left out per target, each with the reason its mutants are all equivalent there.
EXCLUDE = {
    # Every `|` in the mempool is in an annotation, never evaluated (PEP 563 is on).
    "engine/mempool.py": ["core/ReplaceBinaryOperator_BitOr_.*"],
}


def config_text(module: str, tests: list[str]) -> str:
    command = " ".join([shlex.quote(sys.executable), "-m", "pytest", "-x", "-q",
                        "-p", "no:cacheprovider", *tests])
    excluded = ", ".join(f'"{op}"' for op in EXCLUDE.get(module, []))
    return (f'[cosmic-ray]\nmodule-path = "{module}"\ntimeout = 120.0\n'
            f'excluded-modules = []\ntest-command = "{command}"\n\n'
            '[cosmic-ray.distributor]\nname = "local"\n\n'
            f'[cosmic-ray.filters.operators-filter]\nexclude-operators = [{excluded}]\n')


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, cwd=ROOT, check=True)


def main(argv: list[str]) -> int:
    fresh = "--fresh" in argv
    modules = [a for a in argv if a != "--fresh"]
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
        config, session = WORK / f"{name}.toml", WORK / f"{name}.sqlite"
        config.write_text(config_text(module, TESTS[module]))
        if fresh or not session.exists():
            session.unlink(missing_ok=True)
            run(str(bindir / "cosmic-ray"), "init", str(config), str(session))
            run(str(bindir / "cr-filter-operators"), str(session), str(config))
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
