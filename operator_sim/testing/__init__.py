"""Test doubles: an in-process operator-sim with typed helpers, and its pytest plugin.

The pytest plugin (``operator_sim.testing.plugin``) is registered through the
``pytest11`` entry point: installing operator-sim makes the ``opsim`` fixture available.
"""

from operator_sim.testing.server import OperatorSim, SimCallError

__all__ = ["OperatorSim", "SimCallError"]
