"""The deadline is the one the operator gave first: a later read cannot move it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from operator_sim.messenger import Messenger, Reason
from tests.messenger_support import (
    NOW,
    FakeOperator,
    FakeTime,
    Recorder,
    fake_operator,
    json_reply,
    registered,
    request_body,
)

__all__ = ["fake_operator"]  # the fixture, imported for pytest

NUMBER = "+79000000001"
PENDING = request_body(status="pending", result=None, answered_after=None)  # due 12:20


@pytest.mark.parametrize(
    "later",
    [
        # Received 12:15, due 12:35, answered 12:30: timely by its own word, not by the first.
        request_body(received=NOW + timedelta(minutes=15), answered_after=timedelta(minutes=15)),
        # Only the deadline moves, to earlier: the answer is still a disagreement.
        request_body(deadline=timedelta(minutes=10), answered_after=timedelta(minutes=5)),
        # Only the receipt moves.
        request_body(received=NOW + timedelta(seconds=1), answered_after=timedelta(minutes=1)),
    ],
    ids=["both_moved_later", "deadline_moved_earlier", "receipt_moved"],
)
async def test_a_later_read_that_moves_the_deadline_is_refused(
    fake_operator: FakeOperator, tmp_path: Path, later: dict[str, object]
) -> None:
    fake_operator.create = [json_reply(PENDING)]
    fake_operator.get = [json_reply(later, 200)]
    fake_operator.codes = [registered]
    recorder = Recorder()
    messenger = Messenger(
        fake_operator.url,
        "key",
        db_path=tmp_path / "m.db",
        retry=FakeTime().policy(),
        observer=recorder,
    )
    async with messenger:
        outcome = await messenger.identify("ann", NUMBER)
        assert (outcome.identified, outcome.reason) == (False, Reason.INVALID_RESPONSE)
        assert outcome.request_id == "ir_fake1"
        assert outcome.detail is not None
        assert "first" in outcome.detail
        assert not await messenger.can_send("ann")
    assert fake_operator.posted("identification-codes") == []


async def test_a_later_read_that_keeps_the_deadline_identifies(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    # The control case: the same exchange with the times the first response gave.
    fake_operator.create = [json_reply(PENDING)]
    fake_operator.get = [json_reply(request_body(answered_after=timedelta(minutes=15)), 200)]
    fake_operator.codes = [registered]
    messenger = Messenger(
        fake_operator.url, "key", db_path=tmp_path / "m.db", retry=FakeTime().policy()
    )
    async with messenger:
        outcome = await messenger.identify("ben", NUMBER)
        assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
