"""Where a node spends its time: summarise a py-spy ``--format raw`` (folded stacks) recording.

Each line of the recording is ``frame;frame;...;leaf count``; a frame reads
``function (path:line)``. We report the share of samples per leaf function (self time), per
function anywhere on the stack (inclusive time), and per area of the engine (the first engine
package on the stack from the leaf up, else the library the leaf is in).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^():]*)(?::\d+)?\)$")
TOP_COUNT = 25


def _frame_key(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), m.group("path")


def _library(path: str) -> str | None:
    p = path.replace("\\", "/")
    for lib in ("aiohttp", "asyncio", "uvloop", "msgpack", "lmdb", "cryptography", "selectors",
                "concurrent", "threading", "multidict", "yarl", "json", "prometheus_client"):
        if f"/{lib}/" in p or p.startswith(f"{lib}/") or p.endswith(f"/{lib}.py"):
            return lib
    return None


def _area(stack: list[tuple[str, str]]) -> str:
    """A library when the leaf is in one, else the engine package nearest the leaf."""
    func, path = stack[-1]
    lib = _library(path)
    if lib is not None:
        return lib
    for func, path in reversed(stack):
        p = path.replace("\\", "/")
        if "/engine/" in p or p.startswith("engine/"):
            part = p.split("engine/", 1)[1]
            return "engine/" + part.split("/")[0].removesuffix(".py")
    func, path = stack[-1]
    return path.rsplit("/", 1)[-1] if path else func


def summarise_folded(path: str) -> dict[str, Any]:
    """Shares (percent of samples) by leaf function, inclusive function and engine area."""
    self_t: Counter = Counter()
    incl: Counter = Counter()
    areas: Counter = Counter()
    total = 0
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            stack_text, _, count_text = line.rpartition(" ")
            if not stack_text or not count_text.isdigit():
                continue
            count = int(count_text)
            # py-spy puts the process and thread first; they are not code frames.
            frames = [fr for fr in stack_text.split(";")
                      if not fr.startswith(("process ", "thread "))]
            stack = [_frame_key(fr) for fr in frames]
            if not stack:
                continue
            total += count
            leaf = stack[-1]
            self_t[f"{leaf[0]} ({leaf[1]})"] += count
            for key in {f"{fn} ({p})" for fn, p in stack}:
                incl[key] += count
            areas[_area(stack)] += count

    def share(counter: Counter) -> list[list[Any]]:
        return [[name, round(100.0 * n / total, 2)] for name, n in counter.most_common(TOP_COUNT)]

    if total == 0:
        return {"samples": 0, "self": [], "inclusive": [], "areas": []}
    return {"samples": total, "self": share(self_t), "inclusive": share(incl),
            "areas": share(areas)}


def format_profile(summary: dict[str, Any], top: int = 15) -> str:
    if not summary.get("samples"):
        return f"profile: no samples ({summary.get('error', 'empty recording')})"
    lines = [f"profile of node0: {summary['samples']} samples"]
    for title, key in (("by area", "areas"), ("self time", "self"), ("inclusive", "inclusive")):
        lines.append(f"  {title}:")
        lines += [f"    {pct:6.2f}%  {name}" for name, pct in summary[key][:top]]
    return "\n".join(lines)
