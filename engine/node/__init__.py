"""The node wing: a validator (or observer) process around the sans-IO consensus core.

``Node`` (node.py) is the composition root; the driver (driver.py) is the one path into the
core and executes its actions through ports (ports.py), so the simulator runs it too. See
docs/architecture.md for the folder map and the layering rule.
"""
from engine.node.gctune import tune_gc
from engine.node.node import Node
from engine.node.ports import NodeSeams
from engine.node.run import run_node_forever

__all__ = ["Node", "NodeSeams", "run_node_forever", "tune_gc"]
