"""The Messenger against a real server on a manual clock: every branch of the decree's flow."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from operator_sim.messenger import Messenger, Reason
from tests.conftest import Sim
from tests.messenger_support import FakeTime, Recorder, make_messenger

TWENTY_MINUTES = 20 * 60


async def requests_for(sim: Sim, msisdn: str) -> list[dict[str, Any]]:
    """The server's journal of identification POSTs for a number, oldest first."""
    body = await sim.admin_ok("GET", f"/requests?msisdn=%2B{msisdn[1:]}")
    return list(reversed(body["requests"]))


async def identify_while(
    sim: Sim, messenger: Messenger, recorder: Recorder, user: str, phone: str, advance: float
) -> Any:
    """Run identify as a task, advance the clock once the request is sent, return the outcome."""
    task = asyncio.create_task(messenger.identify(user, phone))
    await recorder.wait("sent", user)
    await sim.advance(advance)
    return await task


async def test_timely_present_identifies_with_a_registered_code(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcome = await messenger.identify("alice", "8 (900) 000-00-01")
        assert outcome.identified
        assert outcome.reason is Reason.PRESENT
        assert (outcome.msisdn, outcome.operator_id) == ("+79000000001", "alfa")
        assert outcome.code is not None
        assert len(outcome.code) >= 32
        assert await messenger.can_send("alice")
    # The operator holds exactly this code for the request: the same pair is idempotent.
    assert outcome.request_id is not None
    assert (await sim.register_code(outcome.request_id, outcome.code)).status == 200


async def test_absent_refuses(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcome = await messenger.identify("bob", "+7 900 000 00 02")
        assert not outcome.identified
        assert outcome.reason is Reason.ABSENT
        assert outcome.code is None
        assert not await messenger.can_send("bob")
        user = await messenger.user("bob")
        assert user is not None
        assert (user.state, user.reason) == ("refused", "absent")


async def test_incomplete_subscriber_data_refuses(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcome = await messenger.identify("carol", "9000000003")
        assert (outcome.identified, outcome.reason) == (False, Reason.ABSENT)
        assert not await messenger.can_send("carol")


async def test_no_answer_by_the_deadline_refuses_as_expired(sim: Sim, tmp_path: Path) -> None:
    recorder = Recorder()
    async with make_messenger(sim, tmp_path / "m.db", recorder=recorder) as messenger:
        outcome = await identify_while(
            sim, messenger, recorder, "dave", "+79000000005", TWENTY_MINUTES
        )
        assert (outcome.identified, outcome.reason) == (False, Reason.EXPIRED)
        assert not await messenger.can_send("dave")


async def test_late_present_is_refused_and_never_registered(sim: Sim, tmp_path: Path) -> None:
    recorder = Recorder()
    async with make_messenger(sim, tmp_path / "m.db", recorder=recorder) as messenger:
        # 25 minutes at once: the expiry and the late present both fire before we read.
        outcome = await identify_while(sim, messenger, recorder, "erin", "+79000000006", 25 * 60)
        assert not outcome.identified
        assert outcome.reason in (Reason.EXPIRED, Reason.LATE_ANSWER)
        assert outcome.request_id is not None
        late = await sim.get_request(outcome.request_id)
        assert (late["status"], late["result"]) == ("answered", "present")
        assert not await messenger.can_send("erin")
        assert await messenger.store.codes("erin") == []


async def test_slow_present_within_the_deadline_identifies(sim: Sim, tmp_path: Path) -> None:
    recorder = Recorder()
    async with make_messenger(sim, tmp_path / "m.db", recorder=recorder) as messenger:
        outcome = await identify_while(sim, messenger, recorder, "fay", "+79000000009", 5 * 60)
        assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
        assert await messenger.can_send("fay")


async def test_503_twice_is_retried_with_retry_after_then_identifies(
    sim: Sim, tmp_path: Path
) -> None:
    time, recorder = FakeTime(), Recorder()
    async with make_messenger(sim, tmp_path / "m.db", recorder=recorder, time=time) as messenger:
        outcome = await messenger.identify("gus", "+79000000007")
        assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
    assert len(time.sleeps) == 2
    assert all(pause >= 1 for pause in time.sleeps)  # Retry-After: 1 is a floor
    assert recorder.kinds("gus").count("retry") == 2
    assert [r["http_status"] for r in await requests_for(sim, "+79000000007")] == [503, 503, 201]


async def test_429_is_retried_after_retry_after_then_identifies(sim: Sim, tmp_path: Path) -> None:
    time = FakeTime()
    async with make_messenger(sim, tmp_path / "m.db", time=time) as messenger:
        outcome = await messenger.identify("hal", "+79000000008")
        assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
    assert len(time.sleeps) == 1
    assert time.sleeps[0] >= 1
    assert [r["http_status"] for r in await requests_for(sim, "+79000000008")] == [429, 201]


async def test_termination_suspends_until_identified_again(sim: Sim, tmp_path: Path) -> None:
    number = "+79000000001"
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        first = await messenger.identify("ivy", number)
        assert first.identified
        await sim.admin_ok("POST", f"/subscribers/{number}/terminate")
        assert await messenger.can_send("ivy")  # nothing applied yet
        assert await messenger.sync_events() >= 1
        assert not await messenger.can_send("ivy")
        user = await messenger.user("ivy")
        assert user is not None
        assert (user.state, user.reason) == (
            "suspended",
            "contract_terminated",
        )
        # The contract has ended: identifying again is refused...
        again = await messenger.identify("ivy", number)
        assert (again.identified, again.reason) == (False, Reason.ABSENT)
        # ...until the subscriber signs a new contract.
        await sim.add_subscribers(
            {
                "msisdn": number,
                "operator_id": "alfa",
                "full_name": "Иванов Иван Иванович",
                "birth_date": "1985-04-12",
                "passport": "4510 123456",
            }
        )
        third = await messenger.identify("ivy", number)
        assert third.identified
        assert third.code not in (None, first.code)
        assert await messenger.can_send("ivy")
        states = [h.state for h in await messenger.history("ivy")]
        assert "suspended" in states
        assert states[-1] == "identified"


async def test_port_suspends_and_reidentifies_with_the_new_operator(
    sim: Sim, tmp_path: Path
) -> None:
    number = "+79000000001"
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        first = await messenger.identify("jan", number)
        assert (first.identified, first.operator_id) == (True, "alfa")
        await sim.admin_ok("POST", f"/subscribers/{number}/port", {"to_operator_id": "beta"})
        await messenger.sync_events()
        assert not await messenger.can_send("jan")
        user = await messenger.user("jan")
        assert user is not None
        assert user.reason == "number_ported"
        again = await messenger.identify("jan", number)
        assert (again.identified, again.operator_id) == (True, "beta")
        assert again.code != first.code
        assert await messenger.can_send("jan")


async def test_events_are_applied_once_and_old_codes_do_not_suspend(
    sim: Sim, tmp_path: Path
) -> None:
    number = "+79000000001"
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        await messenger.identify("kim", number)
        await sim.admin_ok("POST", f"/subscribers/{number}/port", {"to_operator_id": "beta"})
        await messenger.sync_events()
        await messenger.identify("kim", number)  # now with beta
        await messenger.sync_events()
        # Reading alfa's feed from the start again replays the port: the event was seen
        # and its code is no longer the user's, so the user stays identified.
        first_page = await messenger.client.events("alfa")
        assert [e.type for e in first_page.events].count("subscriber.number_ported") == 1
        assert [await messenger.apply_event(e) for e in first_page.events] == [False] * len(
            first_page.events
        )
        assert await messenger.can_send("kim")
        assert [h.state for h in await messenger.history("kim")].count("suspended") == 1


async def test_invalid_phone_is_refused_without_asking(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcome = await messenger.identify("lea", "call me maybe")
        assert (outcome.identified, outcome.reason) == (False, Reason.INVALID_PHONE)
        assert not await messenger.can_send("lea")
    assert (await sim.admin_ok("GET", "/requests"))["requests"] == []


async def test_number_no_operator_serves_is_refused(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcome = await messenger.identify("max", "+44 20 7946 0958")
        assert (outcome.identified, outcome.reason) == (False, Reason.UNROUTABLE)


async def test_silent_operator_is_refused_when_our_own_timer_ends(sim: Sim, tmp_path: Path) -> None:
    # The manual clock never moves: the operator never answers nor expires the request.
    async with make_messenger(sim, tmp_path / "m.db", answer_timeout=0.3) as messenger:
        outcome = await messenger.identify("ned", "+79000000005")
        assert (outcome.identified, outcome.reason) == (False, Reason.NO_ANSWER)
        assert outcome.request_id is not None
        assert not await messenger.can_send("ned")


async def test_unreachable_operator_is_refused(tmp_path: Path, unused_tcp_port: int) -> None:
    time = FakeTime()
    messenger = Messenger(
        f"http://127.0.0.1:{unused_tcp_port}",
        "key",
        db_path=tmp_path / "m.db",
        retry=time.policy(),
    )
    async with messenger:
        outcome = await messenger.identify("ola", "+79000000001")
        assert (outcome.identified, outcome.reason) == (False, Reason.OPERATOR_UNREACHABLE)
    assert len(time.sleeps) == 5  # six attempts in all, with back-off between


async def test_concurrent_identify_for_one_user_makes_one_request_and_one_code(
    sim: Sim, tmp_path: Path
) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        outcomes = await asyncio.gather(
            *(messenger.identify("pia", "+79000000001") for _ in range(5))
        )
        assert {o.code for o in outcomes} == {outcomes[0].code}
        assert all(o.identified for o in outcomes)
        assert len(await messenger.store.codes("pia")) == 1
        # A later call for the same number keeps the identification and its code.
        later = await messenger.identify("pia", "+7 900 000-00-01")
        assert (later.reason, later.code) == (Reason.ALREADY_IDENTIFIED, outcomes[0].code)
    assert len(await requests_for(sim, "+79000000001")) == 1


async def test_concurrent_identify_with_other_input_runs_after_the_first(
    sim: Sim, tmp_path: Path
) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        first, second = await asyncio.gather(
            messenger.identify("ria", "+79000000001"),
            messenger.identify("ria", "+79000000002"),
        )
        assert (first.reason, second.reason) == (Reason.PRESENT, Reason.ABSENT)
        assert not await messenger.can_send("ria")
        # The first code was retired when the user moved to a number that failed.
        assert [c.state for c in await messenger.store.codes("ria")] == ["ended"]


async def test_state_survives_a_restart(sim: Sim, tmp_path: Path) -> None:
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        await messenger.identify("quin", "+79000000001")
        await messenger.identify("rob", "+79000000002")
    async with make_messenger(sim, tmp_path / "m.db") as messenger:
        assert await messenger.can_send("quin")
        assert not await messenger.can_send("rob")
        assert [h.state for h in await messenger.history("quin")][-1] == "identified"
