"""The messenger library's proof of possession, against a real server on a manual clock."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from operator_sim.messenger import (
    Confirmation,
    InvalidPhone,
    Messenger,
    PossessionPolicy,
    RateLimited,
    Reason,
    SyncMessenger,
)
from operator_sim.testing import ThreadedOperatorSim
from tests.conftest import Sim
from tests.messenger_support import Recorder, make_messenger

DELIVERED = "+79000000011"
UNKNOWN = "+79000000012"
REPORT_LOST = "+79000000017"
SWAPPED = "+79000000018"


@dataclass
class LibraryClock:
    """The possession policy's clock, moved by hand."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> LibraryClock:
    return LibraryClock()


@pytest.fixture
async def messenger(
    sim: Sim, tmp_path: Path, clock: LibraryClock
) -> AsyncIterator[tuple[Messenger, Recorder]]:
    recorder = Recorder()
    m = make_messenger(
        sim, tmp_path / "m.db", recorder=recorder, possession=PossessionPolicy(clock=clock)
    )
    async with m:
        yield m, recorder


async def code_for(sim: Sim, msisdn: str) -> str:
    """The code the phone received, once the simulated network carried it."""
    await sim.advance(5)
    body = await sim.admin_ok("GET", f"/phones/{msisdn}/otp")
    code: str = body["code"]
    return code


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_a_code_typed_back_proves_possession_and_identify_requires_it(
    sim: Sim, messenger: tuple[Messenger, Recorder], clock: LibraryClock
) -> None:
    m, recorder = messenger
    verification = await m.start_verification("alice", "8 (900) 000-00-11")
    assert verification.msisdn == DELIVERED
    assert verification.sms_id.startswith("sms_")
    assert verification.sent_at.timestamp() == clock.now
    assert verification.expires_at - verification.sent_at == timedelta(minutes=10)
    code = await code_for(sim, DELIVERED)
    assert len(code) == 6
    assert code.isdigit()
    assert await m.confirm_phone("alice", code) is Confirmation.CONFIRMED
    outcome = await m.identify("alice", "+7 900 000 00 11", require_possession=True)
    assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
    assert await m.can_send("alice")
    assert recorder.kinds("alice")[:2] == ["code_sent", "phone_confirmed"]
    message = (await sim.admin_ok("GET", f"/phones/{DELIVERED}/messages"))["messages"][0]
    assert message["text"].startswith(code)


async def test_identify_requiring_possession_refuses_before_asking_anyone(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    outcome = await m.identify("bob", DELIVERED, require_possession=True)
    assert (outcome.identified, outcome.reason) == (False, Reason.POSSESSION_UNPROVEN)
    assert not await m.can_send("bob")
    assert (await sim.admin_ok("GET", "/journal/count"))["count"] == 0
    # Without the requirement the same user is identified as before.
    assert (await m.identify("bob", DELIVERED)).identified


async def test_possession_of_one_number_is_not_possession_of_another(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    await m.start_verification("carol", DELIVERED)
    assert await m.confirm_phone("carol", await code_for(sim, DELIVERED)) is Confirmation.CONFIRMED
    outcome = await m.identify("carol", "+79000000001", require_possession=True)
    assert outcome.reason is Reason.POSSESSION_UNPROVEN


async def test_a_wrong_code_can_be_followed_by_the_right_one(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, recorder = messenger
    await m.start_verification("dora", DELIVERED)
    code = await code_for(sim, DELIVERED)
    assert await m.confirm_phone("dora", _wrong(code)) is Confirmation.WRONG_CODE
    assert await m.confirm_phone("dora", f" {code[:3]}-{code[3:]} ") is Confirmation.CONFIRMED
    record = await m.verification("dora")
    assert record is not None
    assert (record.state, record.attempts) == ("confirmed", 2)
    assert "4 attempts left" in (await recorder.wait("code_refused", "dora")).message


async def test_the_fifth_wrong_code_voids_the_verification(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    await m.start_verification("eve", DELIVERED)
    code = await code_for(sim, DELIVERED)
    results = [await m.confirm_phone("eve", _wrong(code)) for _ in range(5)]
    assert results == [Confirmation.WRONG_CODE] * 4 + [Confirmation.TOO_MANY_ATTEMPTS]
    assert await m.confirm_phone("eve", code) is Confirmation.TOO_MANY_ATTEMPTS
    outcome = await m.identify("eve", DELIVERED, require_possession=True)
    assert outcome.reason is Reason.POSSESSION_UNPROVEN
    # A fresh code starts over.
    await m.start_verification("eve", DELIVERED)
    fresh = await code_for(sim, DELIVERED)
    assert await m.confirm_phone("eve", fresh) is Confirmation.CONFIRMED


async def test_a_code_expires_ten_minutes_after_it_was_sent_on_the_librarys_clock(
    sim: Sim, messenger: tuple[Messenger, Recorder], clock: LibraryClock
) -> None:
    m, _ = messenger
    await m.start_verification("fay", DELIVERED)
    code = await code_for(sim, DELIVERED)
    clock.now += 599.9
    assert await m.confirm_phone("fay", _wrong(code)) is Confirmation.WRONG_CODE
    clock.now += 0.1
    assert await m.confirm_phone("fay", code) is Confirmation.EXPIRED
    assert await m.confirm_phone("fay", code) is Confirmation.EXPIRED
    record = await m.verification("fay")
    assert record is not None
    assert (record.state, record.attempts) == ("expired", 1)


async def test_a_new_code_replaces_the_old_one(
    sim: Sim, messenger: tuple[Messenger, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = iter(["111111", "222222"])
    monkeypatch.setattr("operator_sim.messenger.possession.new_code", lambda: next(codes))
    m, _ = messenger
    first = await m.start_verification("gus", DELIVERED)
    second = await m.start_verification("gus", DELIVERED)
    assert first.sms_id != second.sms_id
    await sim.advance(5)
    assert await m.confirm_phone("gus", "111111") is Confirmation.WRONG_CODE
    assert await m.confirm_phone("gus", "222222") is Confirmation.CONFIRMED


async def test_nothing_pending_is_not_started(messenger: tuple[Messenger, Recorder]) -> None:
    m, _ = messenger
    assert await m.confirm_phone("hal", "123456") is Confirmation.NOT_STARTED
    assert await m.verification("hal") is None


async def test_a_confirmed_code_cannot_be_used_again(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    await m.start_verification("ian", DELIVERED)
    code = await code_for(sim, DELIVERED)
    assert await m.confirm_phone("ian", code) is Confirmation.CONFIRMED
    assert await m.confirm_phone("ian", code) is Confirmation.NOT_STARTED


async def test_a_report_that_never_comes_does_not_block_the_right_code(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    verification = await m.start_verification("jan", REPORT_LOST)
    code = await code_for(sim, REPORT_LOST)
    status = await m.client.get_sms(
        verification.sms_id, to=REPORT_LOST, text_length=len(_text(code))
    )
    assert status.status == "sent"  # and it stays so
    assert await m.confirm_phone("jan", code) is Confirmation.CONFIRMED
    assert (await m.identify("jan", REPORT_LOST, require_possession=True)).identified


def _text(code: str) -> str:
    return PossessionPolicy().template.format(code=code)


async def test_a_recent_sim_swap_refuses_when_asked_to_check(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, recorder = messenger
    await m.start_verification("kim", SWAPPED)
    assert await m.confirm_phone("kim", await code_for(sim, SWAPPED)) is Confirmation.CONFIRMED
    refused = await m.identify("kim", SWAPPED, require_possession=True, max_sim_swap_age=24)
    assert (refused.identified, refused.reason, refused.operator_id) == (
        False,
        Reason.SIM_SWAPPED,
        "alfa",
    )
    assert (await sim.admin_ok("GET", "/journal/count?endpoint=identification.create")) == {
        "count": 0
    }
    # The swap was an hour and a few seconds ago: a one-hour window does not see it.
    passed = await m.identify("kim", SWAPPED, require_possession=True, max_sim_swap_age=1)
    assert (passed.identified, passed.reason) == (True, Reason.PRESENT)
    assert "sim_checked" in recorder.kinds("kim")


async def test_a_sim_swap_check_that_fails_refuses(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    rule = {"id": "swap-down", "match": {"endpoint": "sim_swap.check"}}
    await sim.admin_ok("POST", "/rules", {**rule, "action": {"type": "http_error", "status": 403}})
    outcome = await m.identify("lou", "+79000000001", max_sim_swap_age=24)
    assert (outcome.identified, outcome.reason) == (False, Reason.OPERATOR_REFUSED)


async def test_max_sim_swap_age_is_checked_before_anything(
    messenger: tuple[Messenger, Recorder],
) -> None:
    m, _ = messenger
    for bad in (0, 2401):
        with pytest.raises(ValueError, match="max_sim_swap_age"):
            await m.identify("max", DELIVERED, max_sim_swap_age=bad)


async def test_an_undelivered_code_is_reported_by_webhook_and_cannot_confirm(
    sim: Sim, tmp_path: Path, unused_tcp_port: int, clock: LibraryClock
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}/hooks/"
    registered = await sim.new_messenger("hooked", webhook_url=url)
    recorder = Recorder()
    m = make_messenger(
        sim,
        tmp_path / "m.db",
        recorder=recorder,
        key=registered["api_key"],
        webhook_secret=registered["webhook_secret"],
        possession=PossessionPolicy(clock=clock),
    )
    backend = web.Application()
    backend.add_subapp("/hooks/", m.webhook_app())
    server = TestServer(backend, host="127.0.0.1", port=unused_tcp_port)
    await server.start_server()
    try:
        async with m:
            verification = await m.start_verification("ned", UNKNOWN)
            await sim.advance(5)
            step = await recorder.wait("sms_status", "ned", count=2)
            assert step.message == f"{verification.sms_id} undelivered (unknown_subscriber)"
            record = await m.verification("ned")
            assert record is not None
            assert record.sms_status == "undelivered"
            assert (await sim.admin("GET", f"/phones/{UNKNOWN}/otp")).status == 404
            assert await m.confirm_phone("ned", "000000") in (
                Confirmation.WRONG_CODE,
                Confirmation.CONFIRMED,  # one chance in a million to guess it
            )
    finally:
        await server.close()


async def test_sixteen_is_retried_once_with_its_key_and_sent_once(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, recorder = messenger
    await m.start_verification("oli", "+79000000016")
    await sim.advance(5)
    assert len((await sim.admin_ok("GET", "/phones/+79000000016/messages"))["messages"]) == 1
    assert recorder.kinds(None).count("retry") == 1
    journal = await sim.admin_ok("GET", "/journal?endpoint=sms.send")
    assert [e["http_status"] for e in journal["entries"]] == [202, 429]


async def test_too_many_codes_to_one_number_raise_rate_limited_and_keep_nothing(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, recorder = messenger
    for _ in range(5):
        await m.start_verification("pat", DELIVERED)
    before = await m.verification("pat")
    with pytest.raises(RateLimited) as refused:
        await m.start_verification("pat", DELIVERED)
    assert refused.value.retry_after == 600.0
    assert await m.verification("pat") is None  # the code that was never sent is gone
    assert before is not None
    assert "code_not_sent" in recorder.kinds("pat")


async def test_an_invalid_number_sends_nothing(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    with pytest.raises(InvalidPhone):
        await m.start_verification("quin", "call me maybe")
    assert (await sim.admin_ok("GET", "/journal/count"))["count"] == 0


@pytest.fixture
def library_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="operator_sim.messenger")
    return caplog


async def test_the_code_is_in_no_step_log_line_record_or_database_row(
    sim: Sim,
    messenger: tuple[Messenger, Recorder],
    tmp_path: Path,
    library_log: pytest.LogCaptureFixture,
) -> None:
    m, recorder = messenger
    verification = await m.start_verification("rob", DELIVERED)
    code = await code_for(sim, DELIVERED)
    await m.confirm_phone("rob", _wrong(code))
    await m.confirm_phone("rob", code)
    await m.identify("rob", DELIVERED, require_possession=True)
    shown: list[Any] = [s.message for s in recorder.steps]
    shown += [r.getMessage() for r in library_log.records if r.name.startswith("operator_sim")]
    shown += [repr(verification), repr(await m.verification("rob"))]
    assert [text for text in shown if code in str(text)] == []
    with sqlite3.connect(tmp_path / "m.db") as db:
        dump = "\n".join(db.iterdump())
    assert code not in dump.replace(verification.sms_id, "")
    assert "+7900*****11" in "\n".join(s.message for s in recorder.steps)


async def test_two_databases_keep_different_macs_of_one_code(tmp_path: Path) -> None:
    from operator_sim.messenger.otp import code_mac
    from operator_sim.messenger.store import MessengerStore

    macs = []
    for name in ("a.db", "b.db"):
        store = await MessengerStore.open(tmp_path / name)
        try:
            key = await store.secret_key()
            assert await store.secret_key() == key  # made once, then kept
            macs.append(code_mac(key, nonce="n", user_id="u", msisdn=DELIVERED, code="123456"))
        finally:
            await store.close()
    assert macs[0] != macs[1]
    reopened = await MessengerStore.open(tmp_path / "a.db")
    try:
        again = code_mac(
            await reopened.secret_key(), nonce="n", user_id="u", msisdn=DELIVERED, code="123456"
        )
    finally:
        await reopened.close()
    assert again == macs[0]


async def test_sms_report_reads_and_records_the_gateways_report(
    sim: Sim, messenger: tuple[Messenger, Recorder]
) -> None:
    m, _ = messenger
    assert await m.sms_report("sam") is None
    verification = await m.start_verification("sam", DELIVERED)
    accepted = await m.sms_report("sam")
    assert accepted is not None
    assert (accepted.id, accepted.status) == (verification.sms_id, "accepted")
    await sim.advance(5)
    delivered = await m.sms_report("sam")
    assert delivered is not None
    assert delivered.status == "delivered"
    record = await m.verification("sam")
    assert record is not None
    assert (record.sms_id, record.sms_status) == (verification.sms_id, "delivered")


def test_the_sync_messenger_proves_possession_too(
    opsim_server: ThreadedOperatorSim, tmp_path: Path
) -> None:
    with SyncMessenger(
        opsim_server.base_url, opsim_server.messenger_key, db_path=tmp_path / "m.db"
    ) as m:
        sent = m.start_verification("tia", "8 900 000-00-11")
        otp = opsim_server.wait_for_otp(sent.msisdn)
        assert otp.sms_id == sent.sms_id
        assert m.confirm_phone("tia", "x") is Confirmation.WRONG_CODE
        assert m.confirm_phone("tia", otp.code) is Confirmation.CONFIRMED
        report = m.sms_report("tia")
        assert report is not None
        assert report.status == "delivered"
        record = m.verification("tia")
        assert record is not None
        assert record.state == "confirmed"
        outcome = m.identify("tia", sent.msisdn, require_possession=True, max_sim_swap_age=24)
        assert (outcome.identified, outcome.reason) == (True, Reason.PRESENT)
