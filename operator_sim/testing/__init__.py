"""Test doubles: an in-process operator-sim with typed helpers, and its pytest plugin.

Two faces of one server, with the same helpers returning the same wire models:

- :class:`OperatorSim` serves on the caller's event loop; its helpers are coroutines. For
  asyncio code: a messenger built on aiohttp or ``httpx.AsyncClient``.
- :class:`ThreadedOperatorSim` serves from a thread of its own; its helpers block. For
  blocking clients: requests, ``httpx.Client``, Django or Flask backends, plain scripts.

The pytest plugin (``operator_sim.testing.plugin``) is registered through the
``pytest11`` entry point: installing operator-sim makes the ``opsim`` (async) and
``opsim_server`` (blocking) fixtures available. The server is imported on first use, so
the plugin costs a pytest session nothing until a test asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operator_sim.testing.server import OperatorSim, SimCallError
    from operator_sim.testing.threaded import ThreadedOperatorSim

__all__ = ["OperatorSim", "SimCallError", "ThreadedOperatorSim"]


def __getattr__(name: str) -> Any:
    if name == "ThreadedOperatorSim":
        from operator_sim.testing import threaded

        return threaded.ThreadedOperatorSim
    if name in __all__:
        from operator_sim.testing import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
