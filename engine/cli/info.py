"""`engine native-info`: print what the native layer detected and which path each kernel runs."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("native-info", help="show CPU features and the native path of each kernel")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import engine

    print(json.dumps(engine.native_info(), indent=2))
    return 0
