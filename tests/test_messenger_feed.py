"""The pull feed never stalls: a stuck page, an unknown event type, a refused cursor."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from operator_sim.messenger import FeedStalled, Messenger
from operator_sim.messenger.store import MessengerStore
from tests.conftest import Sim
from tests.messenger_support import (
    FakeOperator,
    FakeTime,
    Recorder,
    event_body,
    fake_operator,
    identify_on,
    make_messenger,
    page_reply,
    problem_reply,
)

__all__ = ["fake_operator"]  # the fixture, imported for pytest

NUMBER = "+79000000001"


def _messenger(
    fake: FakeOperator, db: Path, recorder: Recorder, time: FakeTime, **kwargs: Any
) -> Messenger:
    return Messenger(fake.url, "key", db_path=db, observer=recorder, retry=time.policy(), **kwargs)


# --- a page that does not move the cursor -------------------------------------------------


def _stuck(_: object) -> web.Response:
    # Every read answers the same non-empty page with the same cursor.
    return page_reply([event_body("someone-elses-code")], "c1")


async def test_a_page_that_does_not_advance_the_cursor_ends_the_sync_with_an_error(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    recorder, time = Recorder(), FakeTime()
    async with _messenger(fake_operator, tmp_path / "m.db", recorder, time) as messenger:
        code = await identify_on(fake_operator, messenger, "ann")
        fake_operator.events_after = _stuck
        async with asyncio.timeout(10):
            with pytest.raises(FeedStalled) as raised:
                await messenger.sync_events()
        assert raised.value.operator_id == "alfa"
        assert raised.value.cursor == "c1"
        reads = fake_operator.calls("GET", "/events")
        assert len(reads) == 2  # the first page, then the same page again: no third read
        assert await messenger.can_send("ann")
        assert code  # the user's own code was never in the stuck page


async def test_an_empty_page_with_the_same_cursor_is_the_normal_end(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    recorder, time = Recorder(), FakeTime()
    async with _messenger(fake_operator, tmp_path / "m.db", recorder, time) as messenger:
        await identify_on(fake_operator, messenger, "ben")
        await messenger.store.save_cursor("alfa", "c7")
        fake_operator.events_after = lambda _: page_reply([], "c7")
        assert await messenger.sync_events() == 0
        assert await messenger.store.cursor("alfa") == "c7"


async def test_the_background_consumer_backs_off_from_a_stuck_feed(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    recorder, time = Recorder(), FakeTime()
    fake_operator.events_after = _stuck
    messenger = _messenger(
        fake_operator, tmp_path / "m.db", recorder, time, background_feed=True, feed_wait=1
    )
    async with messenger:
        await identify_on(fake_operator, messenger, "cat")
        await recorder.wait("feed_error", count=4)
    errors = [s.message for s in recorder.steps if s.kind == "feed_error"]
    assert all("did not advance" in message for message in errors)
    reads = len(fake_operator.calls("GET", "/events"))
    failures = len(errors)
    assert reads <= failures + 2  # one read per failure (and the first page): no spinning
    pauses = time.sleeps[: failures - 1]
    assert len(pauses) >= 3
    assert all(later >= earlier for earlier, later in itertools.pairwise(pauses))
    assert pauses[-1] > pauses[0]


# --- an event type this library does not know ---------------------------------------------


async def test_an_unknown_event_type_is_skipped_and_the_rest_of_the_page_applied(
    fake_operator: FakeOperator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, time = Recorder(), FakeTime()
    async with _messenger(fake_operator, tmp_path / "m.db", recorder, time) as messenger:
        code = await identify_on(fake_operator, messenger, "dan")
        novel = {**event_body(code, id_="evt_new"), "type": "subscriber.something_new"}
        novel["data"] = {"anything": ["the", "server", "adds"]}
        fake_operator.events = [
            page_reply([novel, event_body(code, id_="evt_end")], "c2"),
            page_reply([], "c2"),
        ]
        with caplog.at_level("WARNING", logger="operator_sim.messenger"):
            assert await messenger.sync_events() == 1
        assert not await messenger.can_send("dan")
        user = await messenger.user("dan")
        assert user is not None
        assert (user.state, user.reason) == ("suspended", "contract_terminated")
        assert await messenger.store.cursor("alfa") == "c2"
        skipped = [s for s in recorder.steps if s.kind == "event_skipped"]
        assert len(skipped) == 1
        assert "subscriber.something_new" in skipped[0].message
        assert "evt_new" in skipped[0].message
        assert any("subscriber.something_new" in r.getMessage() for r in caplog.records)


async def test_a_known_event_type_with_a_broken_body_still_refuses_the_page(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    recorder, time = Recorder(), FakeTime()
    async with _messenger(fake_operator, tmp_path / "m.db", recorder, time) as messenger:
        code = await identify_on(fake_operator, messenger, "eve")
        broken = event_body(code)
        del broken["data"]
        fake_operator.events = [page_reply([broken], "c3")]
        with pytest.raises(Exception, match="data"):
            await messenger.sync_events()
        assert await messenger.can_send("eve")
        assert await messenger.store.cursor("alfa") is None


# --- a stored cursor the operator refuses ------------------------------------------------


@pytest.mark.parametrize(
    "refusal",
    [
        problem_reply(409, "cursor_unknown", "restart from the oldest event (no after)"),
        problem_reply(422, "validation_error", "after is not a cursor this feed returned"),
    ],
    ids=["409_cursor_unknown", "422"],
)
async def test_a_refused_cursor_is_dropped_and_the_feed_read_from_the_oldest_event(
    fake_operator: FakeOperator, tmp_path: Path, refusal: object
) -> None:
    recorder, time = Recorder(), FakeTime()
    async with _messenger(fake_operator, tmp_path / "m.db", recorder, time) as messenger:
        code = await identify_on(fake_operator, messenger, "fin")
        await messenger.store.save_cursor("alfa", "c-from-another-database")
        fake_operator.events = [
            refusal,  # type: ignore[list-item]
            page_reply([event_body(code, id_="evt_old")], "c9"),
            page_reply([], "c9"),
        ]
        assert await messenger.sync_events() == 1
        assert not await messenger.can_send("fin")
        reads = fake_operator.calls("GET", "/events")
        assert "after=c-from-another-database" in reads[0]
        assert "after=" not in reads[1]  # from the oldest event
        assert "after=c9" in reads[2]
        assert await messenger.store.cursor("alfa") == "c9"
        reset = [s for s in recorder.steps if s.kind == "cursor_reset"]
        assert len(reset) == 1
        assert "alfa" in reset[0].message


async def test_a_refusal_of_the_oldest_read_is_not_retried_in_a_loop(
    fake_operator: FakeOperator, tmp_path: Path
) -> None:
    recorder, time = Recorder(), FakeTime()
    async with _messenger(fake_operator, tmp_path / "m.db", recorder, time) as messenger:
        await identify_on(fake_operator, messenger, "gil")
        await messenger.store.save_cursor("alfa", "c-stale")
        fake_operator.events_after = lambda _: problem_reply(409, "cursor_unknown")
        with pytest.raises(Exception, match="cursor_unknown"):
            await messenger.sync_events()
        assert len(fake_operator.calls("GET", "/events")) == 2


async def test_a_cursor_the_real_server_refuses_is_recovered_from(sim: Sim, tmp_path: Path) -> None:
    recorder = Recorder()
    async with make_messenger(sim, tmp_path / "m.db", recorder=recorder) as messenger:
        assert (await messenger.identify("hal", NUMBER)).identified
        await sim.admin_ok("POST", f"/subscribers/{NUMBER}/terminate")
        await messenger.store.save_cursor("alfa", "not a cursor of this feed")
        assert await messenger.sync_events() >= 1
        assert not await messenger.can_send("hal")
        assert await messenger.store.cursor("alfa") not in (None, "not a cursor of this feed")
        assert "cursor_reset" in recorder.kinds()


async def test_a_stored_cursor_survives_in_the_database(tmp_path: Path) -> None:
    # The cursor the feed keeps is the one read back, and it can be cleared.
    store = await MessengerStore.open(tmp_path / "m.db")
    try:
        await store.save_cursor("alfa", "c5")
        assert await store.cursor("alfa") == "c5"
        await store.save_cursor("alfa", None)
        assert await store.cursor("alfa") is None
    finally:
        await store.close()
