"""What the messenger keeps and says stays private: its database, its steps, its codes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import Sim
from tests.messenger_support import make_messenger

NUMBER = "+79000000001"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _database_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("m.db*"))


@pytest.fixture
def open_umask() -> object:
    """The usual umask of a service (022): files are world-readable unless made otherwise."""
    previous = os.umask(0o022)
    yield None
    os.umask(previous)


async def test_the_database_and_its_wal_and_shm_are_created_private(
    sim: Sim, tmp_path: Path, open_umask: object
) -> None:
    db = tmp_path / "m.db"
    async with make_messenger(sim, db) as messenger:
        assert (await messenger.identify("ann", NUMBER)).identified
        files = [db, tmp_path / "m.db-wal", tmp_path / "m.db-shm"]
        assert all(path.exists() for path in files)
        assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}


async def test_an_existing_world_readable_database_is_made_private(
    sim: Sim, tmp_path: Path, open_umask: object
) -> None:
    db = tmp_path / "m.db"
    async with make_messenger(sim, db) as messenger:
        await messenger.identify("ben", NUMBER)
    loose = _database_files(tmp_path)
    assert len(loose) >= 1
    for path in loose:
        path.chmod(0o644)
    async with make_messenger(sim, db) as messenger:
        assert await messenger.can_send("ben")
        for path in _database_files(tmp_path):
            assert _mode(path) == 0o600, path.name
