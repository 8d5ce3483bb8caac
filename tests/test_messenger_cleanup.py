"""A code the operator may hold but no user has is deleted there, however long it takes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from operator_sim.messenger import Messenger, OperatorUnavailable, Reason, TransportError
from operator_sim.messenger.client import OperatorClient
from tests.conftest import Sim
from tests.messenger_support import (
    FakeOperator,
    FakeTime,
    Recorder,
    fake_operator,
    json_reply,
    make_messenger,
    problem_reply,
    request_body,
)

__all__ = ["fake_operator"]  # the fixture, imported for pytest

NUMBER = "+79000000001"
ATTEMPTS = 6  # the retry policy's attempts per DELETE


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (a bounded poll of a fake's call log)
            await asyncio.sleep(0.01)


def _messenger(fake: FakeOperator, db: Path, **kwargs: Any) -> Messenger:
    return Messenger(fake.url, "key", db_path=db, retry=FakeTime().policy(), **kwargs)


async def _registration_lost(fake: FakeOperator, messenger: Messenger) -> str:
    """Identify through a registration whose answers are all dropped; returns the code."""
    fake.create.append(json_reply(request_body()))
    fake.codes.extend([None] * ATTEMPTS)
    outcome = await messenger.identify("ann", NUMBER)
    assert (outcome.identified, outcome.reason) == (False, Reason.OPERATOR_UNREACHABLE)
    codes = await messenger.store.codes("ann")
    assert [c.state for c in codes] == ["abandoned"]
    return codes[0].code


async def test_a_deletion_that_outlasts_its_retries_is_retried_after_a_restart(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    db = tmp_path / "m.db"
    fake_operator.deletes = [problem_reply(503, "operator_unavailable") for _ in range(ATTEMPTS)]
    async with _messenger(fake_operator, db) as messenger:
        code = await _registration_lost(fake_operator, messenger)
        await _until(lambda: len(fake_operator.calls("DELETE", code)) == ATTEMPTS)
    assert len(fake_operator.calls("DELETE", code)) == ATTEMPTS
    # The operator is back (the fake answers 204 from now on); the messenger restarts.
    async with _messenger(fake_operator, db) as messenger:
        await _until(lambda: len(fake_operator.calls("DELETE", code)) == ATTEMPTS + 1)
        assert await messenger.store.pending_deletions() == []
    async with _messenger(fake_operator, db):
        pass
    assert len(fake_operator.calls("DELETE", code)) == ATTEMPTS + 1  # confirmed: done


async def test_a_404_for_the_code_confirms_its_deletion(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    fake_operator.deletes = [problem_reply(404, "not_found")]
    recorder = Recorder()
    async with _messenger(fake_operator, tmp_path / "m.db", observer=recorder) as messenger:
        code = await _registration_lost(fake_operator, messenger)
        await recorder.wait("code_deleted")
        assert await messenger.store.pending_deletions() == []
    assert len(fake_operator.calls("DELETE", code)) == 1


class Clock:
    """Wall time for leases and back-off that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_failed_deletions_back_off_and_keep_being_retried(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    from operator_sim.messenger import LeasePolicy

    clock = Clock()
    fake_operator.deletes = [problem_reply(503, "busy") for _ in range(ATTEMPTS * 4)]
    recorder = Recorder()
    messenger = _messenger(
        fake_operator, tmp_path / "m.db", observer=recorder, lease=LeasePolicy(clock=clock)
    )
    async with messenger:
        code = await _registration_lost(fake_operator, messenger)
        await recorder.wait("cleanup_error")
        waits = []
        for round_ in range(1, 4):
            [pending] = await messenger.store.pending_deletions()
            assert (pending.code, pending.attempts) == (code, round_)
            waits.append(pending.next_at - clock.now)
            await messenger.recover()  # not due yet: nothing is sent
            assert len(fake_operator.calls("DELETE", code)) == ATTEMPTS * round_
            clock.now = pending.next_at
            await messenger.recover()  # due: tried again
            assert len(fake_operator.calls("DELETE", code)) == ATTEMPTS * (round_ + 1)
        assert waits[0] > 0
        assert waits[2] > waits[0]  # exponential, with jitter
        fake_operator.deletes = []  # 204 from now on
        [pending] = await messenger.store.pending_deletions()
        clock.now = pending.next_at
        await messenger.recover()
        assert await messenger.store.pending_deletions() == []
    errors = [s.message for s in recorder.steps if s.kind == "cleanup_error"]
    assert len(errors) == 4
    assert all(code not in message for message in errors)


async def test_the_real_operator_ends_up_holding_one_code_for_the_user(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registration reaches the operator but its answer is lost, and every DELETE of the
    # orphan code meets a 503 until the messenger restarts.
    db = tmp_path / "m.db"
    real_register, real_delete = OperatorClient.register_code, OperatorClient.delete_code

    async def lost(self: OperatorClient, *args: Any, **kwargs: Any) -> Any:
        await real_register(self, *args, **kwargs)
        raise TransportError("the answer was lost")

    async def unavailable(self: OperatorClient, *args: Any, **kwargs: Any) -> None:
        raise OperatorUnavailable(503, "operator_unavailable", "down for maintenance")

    monkeypatch.setattr(OperatorClient, "register_code", lost)
    monkeypatch.setattr(OperatorClient, "delete_code", unavailable)
    recorder = Recorder()
    async with make_messenger(sim, db, recorder=recorder) as messenger:
        first = await messenger.identify("ann", NUMBER)
        assert first.reason is Reason.OPERATOR_UNREACHABLE
        [orphan] = await messenger.store.codes("ann")
        monkeypatch.setattr(OperatorClient, "register_code", real_register)
        second = await messenger.identify("ann", NUMBER)
        assert second.identified
    monkeypatch.setattr(OperatorClient, "delete_code", real_delete)
    async with make_messenger(sim, db, recorder=recorder) as messenger:
        await recorder.wait("code_deleted")
        # The number's contract ends: the operator notifies once per code it holds.
        await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
        page = await messenger.client.events("alfa")
        ended = [
            e.data.code  # type: ignore[union-attr]
            for e in page.events
            if e.type == "subscriber.contract_terminated"
        ]
        assert ended == [second.code]
        assert orphan.code != second.code
        assert await messenger.sync_events() >= 1
        assert not await messenger.can_send("ann")


async def test_a_replaced_code_is_deleted_at_the_operator(sim: Sim, tmp_path: Path) -> None:
    other = "+79011110001"
    await sim.add_subscribers(
        {
            "msisdn": other,
            "operator_id": "alfa",
            "full_name": "Тестов Тест Тестович",
            "birth_date": "1990-01-01",
            "passport": "4500 000001",
        }
    )
    recorder = Recorder()
    async with make_messenger(sim, tmp_path / "m.db", recorder=recorder) as messenger:
        first = await messenger.identify("ben", NUMBER)
        second = await messenger.identify("ben", other)  # the user changes numbers
        assert first.identified
        assert second.identified
        await recorder.wait("code_deleted")
        assert await messenger.store.pending_deletions() == []
        assert [c.state for c in await messenger.store.codes("ben")] == ["ended", "active"]
        # The operator no longer holds the first code: ending its contract notifies nobody.
        await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
        page = await messenger.client.events("alfa")
        assert [e.type for e in page.events if e.type.startswith("subscriber.")] == []
