"""Several Messenger instances on one database, and closing one in the middle of its work."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from operator_sim.messenger import Messenger, Reason
from operator_sim.messenger.client import OperatorClient
from operator_sim.messenger.store import MessengerStore
from tests.conftest import Sim
from tests.messenger_support import Recorder, make_messenger

NUMBER = "+79000000001"
SLOW = "+79000000009"  # answered present after 5 minutes


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, not even ``except Exception``."""


class Clock:
    """Wall time for leases that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- another instance starting does not touch live work ----------------------------------


async def test_a_second_instance_leaves_a_live_wait_alone(sim: Sim, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    seen_a, seen_b = Recorder(), Recorder()
    async with make_messenger(sim, db, recorder=seen_a) as a:
        waiting = asyncio.create_task(a.identify("ann", SLOW))
        await seen_a.wait("sent", "ann")
        async with make_messenger(sim, db, recorder=seen_b) as b:
            user = await b.user("ann")
            assert user is not None
            assert user.state == "identifying"
            assert "refused" not in seen_b.kinds()
            await sim.advance(5 * 60)
            outcome = await waiting
            assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
            assert await b.can_send("ann")
        states = [h.state for h in await a.history("ann")]
        assert "refused" not in states


async def test_a_second_instance_does_not_register_a_live_instances_code(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "m.db"
    real = OperatorClient.register_code
    sent: list[str] = []
    release = asyncio.Event()

    async def held(
        self: OperatorClient, operator_id: str, request_id: str, code: str, **kw: Any
    ) -> Any:
        sent.append(code)
        if len(sent) == 1:
            await release.wait()  # instance A's registration is slow to go out
        return await real(self, operator_id, request_id, code, **kw)

    monkeypatch.setattr(OperatorClient, "register_code", held)
    seen_b = Recorder()
    async with make_messenger(sim, db) as a:
        task = asyncio.create_task(a.identify("ben", NUMBER))
        async with asyncio.timeout(10):
            while not sent:  # noqa: ASYNC110 (a bounded poll until A is registering)
                await asyncio.sleep(0.01)
        async with make_messenger(sim, db, recorder=seen_b) as b:
            assert len(sent) == 1  # B did not register A's code
            assert not await b.can_send("ben")
            release.set()
            outcome = await task
            assert outcome.identified
            assert await b.can_send("ben")
        assert [c.state for c in await a.store.codes("ben")] == ["active"]
    assert len(sent) == 1
    assert "identified" not in seen_b.kinds()


async def test_work_of_an_instance_that_died_is_recovered_once_its_lease_expires(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from operator_sim.messenger import LeasePolicy

    db = tmp_path / "m.db"
    clock = Clock()
    policy = LeasePolicy(ttl=60.0, clock=clock)
    real = OperatorClient.get_request

    async def crashing(self: OperatorClient, *args: Any, **kwargs: Any) -> Any:
        raise Crash

    # A dies in the middle of a wait, without releasing its lease.
    monkeypatch.setattr(OperatorClient, "get_request", crashing)
    monkeypatch.setattr(MessengerStore, "release_owner", _never)
    a = make_messenger(sim, db, lease=policy)
    await a.start()
    with pytest.raises(Crash):
        await a.identify("cat", SLOW)
    await a.close()
    monkeypatch.setattr(OperatorClient, "get_request", real)
    seen = Recorder()
    async with make_messenger(sim, db, recorder=seen, lease=policy) as b:
        user = await b.user("cat")
        assert user is not None
        assert user.state == "identifying"  # A's lease still runs: its work is its own
        clock.now += 59
        await b.recover()
        assert (await b.user("cat")).state == "identifying"  # type: ignore[union-attr]
        clock.now += 2
        await b.recover()  # A is gone: its wait is refused, as after a restart
        user = await b.user("cat")
        assert user is not None
        assert (user.state, user.reason) == ("refused", "interrupted")
        assert "refused" in seen.kinds("cat")


async def _never(self: MessengerStore) -> None:
    """Stands for a process that died before it could say so."""


async def test_a_live_instance_renews_its_lease(sim: Sim, tmp_path: Path) -> None:
    from operator_sim.messenger import LeasePolicy

    db = tmp_path / "m.db"
    clock = Clock()
    policy = LeasePolicy(ttl=60.0, clock=clock)
    seen_a = Recorder()
    async with make_messenger(sim, db, recorder=seen_a, lease=policy) as a:
        waiting = asyncio.create_task(a.identify("dan", SLOW))
        await seen_a.wait("sent", "dan")
        async with make_messenger(sim, db, lease=policy) as b:
            for _ in range(5):  # five minutes pass; A renews as it goes
                clock.now += 50
                await a.recover()
                await b.recover()
            assert (await b.user("dan")).state == "identifying"  # type: ignore[union-attr]
            await sim.advance(5 * 60)
            assert (await waiting).identified


# --- close() in the middle of a wait -----------------------------------------------------


async def test_close_during_a_wait_returns_interrupted(sim: Sim, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    recorder = Recorder()
    messenger = make_messenger(sim, db, recorder=recorder)
    await messenger.start()
    waiting = asyncio.create_task(messenger.identify("eve", SLOW))
    also = asyncio.create_task(messenger.identify("eve", SLOW))  # a second caller, same input
    queued = asyncio.create_task(messenger.identify("eve", NUMBER))  # other input: waits
    await recorder.wait("sent", "eve")
    await messenger.close()
    late = await queued
    assert (late.identified, late.reason) == (False, Reason.INTERRUPTED)
    for task in (waiting, also):
        outcome = await task
        assert (outcome.identified, outcome.reason) == (False, Reason.INTERRUPTED)
        assert outcome.request_id is not None
        assert outcome.msisdn == SLOW
    async with make_messenger(sim, db) as again:
        user = await again.user("eve")
        assert user is not None
        assert (user.state, user.reason) == ("refused", "interrupted")
        assert not await again.can_send("eve")


async def test_close_during_a_registration_abandons_the_code_and_deletes_it_later(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "m.db"
    real = OperatorClient.register_code
    started = asyncio.Event()

    async def stuck(self: OperatorClient, *args: Any, **kwargs: Any) -> Any:
        await real(self, *args, **kwargs)  # the operator registers the code...
        started.set()
        await asyncio.Event().wait()  # ...and its answer never comes

    monkeypatch.setattr(OperatorClient, "register_code", stuck)
    messenger = make_messenger(sim, db)
    await messenger.start()
    task = asyncio.create_task(messenger.identify("fay", NUMBER))
    await started.wait()
    await messenger.close()
    outcome = await task
    assert (outcome.identified, outcome.reason) == (False, Reason.INTERRUPTED)
    monkeypatch.setattr(OperatorClient, "register_code", real)
    recorder = Recorder()
    async with make_messenger(sim, db, recorder=recorder) as again:
        assert [c.state for c in await again.store.codes("fay")] == ["abandoned"]
        await recorder.wait("code_deleted")
        assert not await again.can_send("fay")


async def test_a_caller_cancelled_alone_does_not_interrupt_the_identification(
    sim: Sim, tmp_path: Path
) -> None:
    recorder = Recorder()
    async with make_messenger(sim, tmp_path / "m.db", recorder=recorder) as messenger:
        impatient = asyncio.create_task(messenger.identify("gus", SLOW))
        await recorder.wait("sent", "gus")
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        patient = asyncio.create_task(messenger.identify("gus", SLOW))
        await sim.advance(5 * 60)
        assert (await patient).identified


async def test_a_start_that_fails_closes_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: MessengerStore, now: float, ttl: float) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    def open_connections() -> int:
        return sum("_connection_worker_thread" in t.name for t in threading.enumerate())

    before = open_connections()
    monkeypatch.setattr(MessengerStore, "hold_lease", broken)
    messenger = Messenger("http://127.0.0.1:9", "key", db_path=tmp_path / "m.db")
    with pytest.raises(sqlite3.OperationalError):
        await messenger.start()
    async with asyncio.timeout(10):
        while open_connections() > before:  # noqa: ASYNC110 (the thread ends as it closes)
            await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="not started"):
        await messenger.can_send("ann")
