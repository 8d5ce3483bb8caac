"""``SyncMessenger`` from plain synchronous tests, against a real server on loopback."""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from standardwebhooks import Webhook

from operator_sim.messenger import (
    Messenger,
    MessengerOptions,
    Reason,
    Step,
    SyncMessenger,
)
from operator_sim.server.webhooks import signed_headers
from tests.messenger_support import FakeTime, ThreadedSim, event_body

NUMBER = "+79000000001"
SLOW = "+79000000009"  # answered present after 5 minutes


@pytest.fixture
def threaded_sim() -> Iterator[ThreadedSim]:
    """A real operator-sim on loopback, driven from synchronous code."""
    with ThreadedSim() as sim:
        yield sim


def _messenger(sim: ThreadedSim, db: Path, **options: Any) -> SyncMessenger:
    return SyncMessenger(sim.base_url, sim.key, db_path=db, retry=FakeTime().policy(), **options)


def test_sync_messenger_identifies_refuses_and_follows_events(
    threaded_sim: ThreadedSim, tmp_path: Path
) -> None:
    with _messenger(threaded_sim, tmp_path / "m.db") as messenger:
        outcome = messenger.identify("ann", "8 (900) 000-00-01")
        assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
        assert messenger.can_send("ann")
        refused = messenger.identify("bob", "+7 900 000 00 02")
        assert (refused.identified, refused.reason) == (False, Reason.ABSENT)
        assert not messenger.can_send("bob")
        threaded_sim.call(lambda sim: sim.terminate(NUMBER))
        assert messenger.sync_events() >= 1
        assert not messenger.can_send("ann")
        user = messenger.user("ann")
        assert user is not None
        assert (user.state, user.reason) == ("suspended", "contract_terminated")
        assert [h.state for h in messenger.history("ann")][-2:] == ["identified", "suspended"]
        assert messenger.call(lambda m: m.store.codes("ann"))[0].code == outcome.code
    # Closed: the state is in the database for the next start.
    with _messenger(threaded_sim, tmp_path / "m.db") as again:
        assert not again.can_send("ann")


def test_calls_from_several_threads_share_one_identification(
    threaded_sim: ThreadedSim, tmp_path: Path
) -> None:
    outcomes: list[Any] = []
    with _messenger(threaded_sim, tmp_path / "m.db") as messenger:
        threads = [
            threading.Thread(target=lambda: outcomes.append(messenger.identify("cat", NUMBER)))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(outcomes) == 4
        assert all(o.identified for o in outcomes)
        assert len({o.code for o in outcomes}) == 1
        assert len(messenger.call(lambda m: m.store.codes("cat"))) == 1


def test_close_from_another_thread_interrupts_a_blocked_identify(
    threaded_sim: ThreadedSim, tmp_path: Path
) -> None:
    sent = threading.Event()

    def observe(step: Step) -> None:
        if step.kind == "sent":
            sent.set()

    outcomes: list[Any] = []
    messenger = _messenger(threaded_sim, tmp_path / "m.db", observer=observe)
    messenger.start()
    caller = threading.Thread(target=lambda: outcomes.append(messenger.identify("dan", SLOW)))
    caller.start()
    assert sent.wait(timeout=10)
    messenger.close()
    caller.join(timeout=10)
    assert len(outcomes) == 1
    assert (outcomes[0].identified, outcomes[0].reason) == (False, Reason.INTERRUPTED)


def test_the_sync_webhook_entry_point_verifies_and_applies(
    threaded_sim: ThreadedSim, tmp_path: Path
) -> None:
    secret = "whsec_" + "c3luYy13ZWJob29rLXNlY3JldC1mb3ItdGVzdHM="
    with _messenger(threaded_sim, tmp_path / "m.db", webhook_secret=secret) as messenger:
        outcome = messenger.identify("eve", NUMBER)
        assert outcome.code is not None
        raw = json.dumps(event_body(outcome.code, id_="evt_sync"))
        headers = signed_headers(
            Webhook(secret), event_id="evt_sync", body=raw, sent_at=datetime.now(UTC)
        )
        forged = {**headers, "webhook-signature": "v1,AAAA"}
        assert messenger.receive_webhook(raw.encode(), forged).status == 401
        assert messenger.can_send("eve")
        assert messenger.receive_webhook(raw.encode(), headers).status == 204
        assert not messenger.can_send("eve")
        assert messenger.receive_webhook(raw.encode(), headers).status == 204  # redelivery


def test_an_observer_calling_back_gets_an_error_not_a_deadlock(
    threaded_sim: ThreadedSim, tmp_path: Path
) -> None:
    errors: list[BaseException] = []
    holder: list[SyncMessenger] = []

    def observe(step: Step) -> None:
        if step.kind == "identified":
            try:
                holder[0].can_send("fay")
            except RuntimeError as exc:
                errors.append(exc)

    with _messenger(threaded_sim, tmp_path / "m.db", observer=observe) as messenger:
        holder.append(messenger)
        assert messenger.identify("fay", NUMBER).identified
    assert len(errors) == 1
    assert "own loop" in str(errors[0])


def test_calls_before_start_and_after_close_are_refused(tmp_path: Path) -> None:
    messenger = SyncMessenger("http://127.0.0.1:9", "key", db_path=tmp_path / "m.db")
    with pytest.raises(RuntimeError, match="not started"):
        messenger.can_send("gus")
    messenger.start()
    messenger.close()
    with pytest.raises(RuntimeError, match="not started"):
        messenger.can_send("gus")
    messenger.close()  # twice is fine


def test_the_options_are_the_messengers() -> None:
    keyword = {
        name
        for name, parameter in inspect.signature(Messenger).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "db_path"
    }
    assert set(get_type_hints(MessengerOptions)) == keyword
