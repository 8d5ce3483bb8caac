"""Test doubles: an in-process operator-sim with typed helpers, and its pytest plugin.

The pytest plugin (``operator_sim.testing.plugin``) is registered through the
``pytest11`` entry point: installing operator-sim makes the ``opsim`` fixture available.
The server is imported on first use, so the plugin costs a pytest session nothing until
a test asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operator_sim.testing.server import OperatorSim, SimCallError

__all__ = ["OperatorSim", "SimCallError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from operator_sim.testing import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
