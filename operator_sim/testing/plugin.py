"""The pytest plugin: an ``opsim`` fixture giving each test a fresh in-process server.

Registered through the ``pytest11`` entry point, so installing operator-sim is enough.
The fixture is async: it needs pytest-asyncio (``pip install pytest-asyncio``), in
``auto`` mode or with ``@pytest.mark.asyncio`` on the test. The ``operator_sim_fixture``
ini option (a path relative to the rootdir) picks a fixture file other than the default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from operator_sim.testing.server import OperatorSim

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio the fixture cannot run anyway
    _async_fixture = pytest.fixture  # type: ignore[assignment]

__all__ = ["opsim", "pytest_addoption"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``operator_sim_fixture`` ini option."""
    parser.addini(
        "operator_sim_fixture",
        "fixture file for the opsim fixture (default: operator-sim's built-in one)",
        default="",
    )


@_async_fixture
async def opsim(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OperatorSim]:
    """A fresh operator-sim per test: free loopback port, temp database, manual clock."""
    from operator_sim.testing.server import OperatorSim  # imported on first use: aiohttp is heavy

    configured = str(request.config.getini("operator_sim_fixture") or "")
    fixture = request.config.rootpath / configured if configured else None
    async with OperatorSim(fixture=fixture, db_path=tmp_path / "operator-sim.db") as sim:
        yield sim
