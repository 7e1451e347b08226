"""``engine start``: run one node until SIGINT/SIGTERM (or until it halts), then stop cleanly."""
from __future__ import annotations

import asyncio
import logging
import signal

from engine.app import load_app
from engine.config import load_home
from engine.node.gctune import tune_gc
from engine.node.node import Node
from engine.node.ports import NodeSeams

__all__ = ["install_loop_policy", "run_node_forever"]


def install_loop_policy() -> None:
    """uvloop when it is installed (faster I/O), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_node_forever(home: str, *, app_spec: str | None = None, log_level: str = "WARNING",
                     seams: NodeSeams | None = None) -> int:
    """Run until a signal (exit 0) or a halt (exit 1)."""
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loaded = load_home(home)
    app = load_app(app_spec or loaded.config.app)
    install_loop_policy()

    async def main() -> int:
        node = Node(loaded, app=app, seams=seams)
        await node.start()
        tune_gc()  # after the start: the loaded state goes to the permanent generation
        print(f"node {loaded.config.moniker} running: p2p {loaded.config.p2p_host}:"
              f"{loaded.config.p2p_port}, rpc {loaded.rpc_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(node.wait_halted())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        await node.stop()
        return 1 if node.halted else 0

    return asyncio.run(main())
