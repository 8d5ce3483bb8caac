"""The pytest plugin: a fresh in-process operator-sim per test, in two flavours.

Registered through the ``pytest11`` entry point, so installing operator-sim is enough.
Pick the fixture by how the code under test talks to the server:

- ``opsim`` (:class:`~operator_sim.testing.OperatorSim`): async code under pytest-asyncio
  (a messenger built on aiohttp or ``httpx.AsyncClient``). The server runs on the test's
  own event loop and the helpers are awaited. Needs pytest-asyncio, in ``auto`` mode or
  with ``@pytest.mark.asyncio`` on the test.
- ``opsim_server`` (:class:`~operator_sim.testing.ThreadedOperatorSim`): blocking clients
  (requests, ``httpx.Client``, Django, Flask) and plain sync tests. The server runs on a
  thread of its own and the helpers block; no asyncio plugin is needed. A blocking client
  pointed at ``opsim`` would hold the very loop that has to answer it, and time out.

Both give a free loopback port, a temporary database and a manual clock, and register a
messenger for the code under test. The ``operator_sim_fixture`` ini option (a path
relative to the rootdir) picks a fixture file other than the default for both. Override
the ``opsim_options`` fixture to pass more keyword arguments to both servers: ``ssl`` to
serve HTTPS, ``client_ssl``, ``webhook_ca``, ``webhook_secret``, ``clock``...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from operator_sim.testing.server import OperatorSim
    from operator_sim.testing.threaded import ThreadedOperatorSim

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio the fixture cannot run anyway
    _async_fixture = pytest.fixture  # type: ignore[assignment]

__all__ = ["opsim", "opsim_options", "opsim_server", "pytest_addoption"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``operator_sim_fixture`` ini option."""
    parser.addini(
        "operator_sim_fixture",
        "fixture file for the opsim and opsim_server fixtures (default: operator-sim's "
        "built-in one)",
        default="",
    )


def _fixture_file(config: pytest.Config) -> Path | None:
    configured = str(config.getini("operator_sim_fixture") or "")
    return config.rootpath / configured if configured else None


@pytest.fixture
def opsim_options() -> dict[str, Any]:
    """More keyword arguments for the ``opsim`` and ``opsim_server`` servers (none here).

    Override it in a ``conftest.py``, e.g. to return ``{"ssl": server_context,
    "client_ssl": client_context}`` for HTTPS.
    """
    return {}


def _arguments(
    request: pytest.FixtureRequest, tmp_path: Path, options: dict[str, Any]
) -> dict[str, Any]:
    return {
        "fixture": _fixture_file(request.config),
        "db_path": tmp_path / "operator-sim.db",
        **options,
    }


@_async_fixture
async def opsim(
    request: pytest.FixtureRequest, tmp_path: Path, opsim_options: dict[str, Any]
) -> AsyncIterator[OperatorSim]:
    """A fresh operator-sim per test: free loopback port, temp database, manual clock."""
    from operator_sim.testing.server import OperatorSim  # imported on first use: aiohttp is heavy

    async with OperatorSim(**_arguments(request, tmp_path, opsim_options)) as sim:
        yield sim


@pytest.fixture
def opsim_server(
    request: pytest.FixtureRequest, tmp_path: Path, opsim_options: dict[str, Any]
) -> Iterator[ThreadedOperatorSim]:
    """A fresh operator-sim per test on its own thread, with blocking helpers (sync tests)."""
    from operator_sim.testing.threaded import ThreadedOperatorSim

    with ThreadedOperatorSim(**_arguments(request, tmp_path, opsim_options)) as sim:
        yield sim
