"""Count the disk flushes a command and its children make, as the kernel sees them.

    python tools/count_flushes.py [--out trace.txt] -- COMMAND ARGS...

Runs COMMAND under ``strace -f`` and counts, per process, every ``fdatasync`` / ``fsync`` /
``msync`` call and every pwrite to a file descriptor opened with ``O_DSYNC`` or ``O_SYNC`` (how
LMDB flushes a meta page when metasync is on: one synchronous write). Prints a JSON summary
(total flushes, per process) on the last line. Used for issue 14's "synced writes per height"
figure (docs/performance.md, "Fewer synced writes per height"): run ``engine bench tps``
under it and divide the node processes' flushes by the heights committed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

LINE = re.compile(r"^(\d+)\s+(.*)$")
OPEN = re.compile(r'openat\(.*?"([^"]*)", ([A-Z_|]+).*\)\s+=\s+(\d+)')
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
CLONE = re.compile(r"^clone3?\((.*)\)\s+=\s+(\d+)$")
FLUSH = re.compile(r"^(fdatasync|fsync|msync|pwrite64|pwritev)\((\d+)")


def count(trace_path: str) -> dict:
    """Flushes per process in an ``strace -f`` trace. Lines carry thread ids: threads are
    mapped to their process through the clone calls (CLONE_THREAD), since descriptors belong
    to the process; calls split by strace into "unfinished" and "resumed" halves are joined."""
    process: dict[str, str] = {}
    sync_fds: dict[str, set[str]] = collections.defaultdict(set)
    flushes: collections.Counter[str] = collections.Counter()
    unfinished: dict[str, str] = {}
    with open(trace_path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.strip())
            if not m:
                continue
            tid, call = m.groups()
            if call.endswith("<unfinished ...>"):
                unfinished[tid] = call[: -len("<unfinished ...>")]
                continue
            r = RESUMED.match(call)
            if r:
                call = unfinished.pop(tid, r.group(1) + "(") + r.group(2)
            pid = process.setdefault(tid, tid)
            c = CLONE.match(call)
            if c:
                child = c.group(2)
                process[child] = pid if "CLONE_THREAD" in c.group(1) else child
                continue
            o = OPEN.search(call)
            if o:
                _path, flags, fd = o.groups()
                if "O_DSYNC" in flags or "O_SYNC" in flags:
                    sync_fds[pid].add(fd)
                else:
                    sync_fds[pid].discard(fd)
                continue
            w = FLUSH.match(call)
            if w and (w.group(1) in ("fdatasync", "fsync", "msync") or
                      w.group(2) in sync_fds[pid]):
                flushes[pid] += 1
    return {"flushes": sum(flushes.values()), "per_process": dict(flushes)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="keep the strace output here")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the command after --")
    strace = shutil.which("strace")
    if strace is None:
        print("strace is not installed", file=sys.stderr)
        return 2
    out = a.out or tempfile.mktemp(prefix="flushes-", suffix=".txt")
    rc = subprocess.call([strace, "-f", "-qq", "--seccomp-bpf", "-o", out, "-e",
                          "trace=openat,fdatasync,fsync,msync,pwrite64,pwritev,clone,clone3", *cmd])
    summary = count(out)
    if a.out is None:
        os.unlink(out)
    print(json.dumps(summary))
    return rc


if __name__ == "__main__":
    sys.exit(main())
