"""A crash between the operator's answer and the code's registration is finished on restart."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from operator_sim.messenger import Messenger, Reason
from operator_sim.messenger.client import OperatorClient
from tests.conftest import Sim
from tests.messenger_support import make_messenger

NUMBER = "+79000000001"


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, not even ``except Exception``."""


async def _crash_during_registration(
    sim: Sim, db: Path, monkeypatch: pytest.MonkeyPatch, *, after_sending: bool
) -> None:
    real = OperatorClient.register_code

    async def crashing(self: OperatorClient, *args: Any, **kwargs: Any) -> Any:
        if after_sending:
            await real(self, *args, **kwargs)
        raise Crash

    monkeypatch.setattr(OperatorClient, "register_code", crashing)
    messenger = make_messenger(sim, db)
    await messenger.start()
    with pytest.raises(Crash):
        await messenger.identify("uma", NUMBER)
    assert not await messenger.can_send("uma")  # half-way is never "identified"
    await messenger.close()
    monkeypatch.setattr(OperatorClient, "register_code", real)


@pytest.mark.parametrize("after_sending", [False, True], ids=["before", "after"])
async def test_restart_finishes_an_interrupted_registration_with_one_code(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_sending: bool
) -> None:
    db = tmp_path / "m.db"
    await _crash_during_registration(sim, db, monkeypatch, after_sending=after_sending)
    async with make_messenger(sim, db) as messenger:
        assert await messenger.can_send("uma")
        codes = await messenger.store.codes("uma")
        assert [c.state for c in codes] == ["active"]
        user = await messenger.user("uma")
        assert user is not None
        assert user.code == codes[0].code
    # The operator holds that one code for the request, and no other.
    assert user.request_id is not None
    assert (await sim.register_code(user.request_id, codes[0].code)).status == 200
    assert (await sim.register_code(user.request_id, "another-code-0001")).status == 409


async def test_restart_refuses_when_the_registration_can_no_longer_happen(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "m.db"
    await _crash_during_registration(sim, db, monkeypatch, after_sending=False)
    await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")  # while we were down
    async with make_messenger(sim, db) as messenger:
        assert not await messenger.can_send("uma")
        user = await messenger.user("uma")
        assert user is not None
        assert (user.state, user.reason) == ("refused", "code_rejected")
        assert [c.state for c in await messenger.store.codes("uma")] == ["abandoned"]


async def test_restart_refuses_an_identification_cut_off_while_waiting(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = OperatorClient.get_request

    async def crashing(self: OperatorClient, *args: Any, **kwargs: Any) -> Any:
        raise Crash

    monkeypatch.setattr(OperatorClient, "get_request", crashing)
    messenger = make_messenger(sim, tmp_path / "m.db")
    await messenger.start()
    with pytest.raises(Crash):
        await messenger.identify("vic", "+79000000009")  # answered only after 5 minutes
    await messenger.close()
    monkeypatch.setattr(OperatorClient, "get_request", real)
    async with make_messenger(sim, tmp_path / "m.db") as restarted:
        user = await restarted.user("vic")
        assert user is not None
        assert (user.state, user.reason) == ("refused", "interrupted")
        assert user.request_id is not None  # stored before any waiting began
        assert not await restarted.can_send("vic")
        # Identifying again works as usual.
        assert (await restarted.identify("vic", NUMBER)).reason is Reason.PRESENT


def test_messenger_is_importable_from_the_package() -> None:
    from operator_sim.messenger import Messenger as Imported

    assert Imported is Messenger


def _version_0_database(db: Path) -> None:
    """A database as the library wrote it before several instances could share one."""
    from operator_sim.messenger.database import BASE_SCHEMA

    conn = sqlite3.connect(db)
    try:
        conn.executescript(BASE_SCHEMA)
        conn.execute(
            "INSERT INTO users (user_id, state, msisdn, operator_id, updated_at) "
            "VALUES ('old', 'identifying', '+79000000001', 'alfa', '2026-03-01T12:00:00Z')"
        )
        conn.commit()
    finally:
        conn.close()


async def test_a_database_from_before_owners_is_migrated_and_recovered(
    sim: Sim, tmp_path: Path
) -> None:
    db = tmp_path / "m.db"
    await asyncio.to_thread(_version_0_database, db)
    async with make_messenger(sim, db) as messenger:
        user = await messenger.user("old")
        assert user is not None
        assert (user.state, user.reason) == ("refused", "interrupted")
        assert await messenger.store.pending_deletions() == []
        assert (await messenger.identify("old", NUMBER)).identified
