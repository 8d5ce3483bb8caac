"""The test double's SMS helpers, async and blocking: codes, inboxes, SIM swaps."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from operator_sim.testing import OperatorSim, ThreadedOperatorSim


async def test_wait_for_otp_advances_a_manual_clock_until_the_code_arrives(
    opsim: OperatorSim,
) -> None:
    start = (await opsim.clock()).now
    sms = await opsim.send_sms("+79000000014", "Code 5511")  # delivered 2 minutes after sent
    otp = await opsim.wait_for_otp("+79000000014")
    assert (otp.code, otp.sms_id) == ("5511", sms.id)
    waited = (await opsim.clock()).now - start
    # Small steps: the clock stopped within a step of the delivery.
    assert timedelta(minutes=2) < waited <= timedelta(minutes=2, seconds=2)


async def test_wait_for_otp_after_a_message_waits_for_a_newer_one(opsim: OperatorSim) -> None:
    first = await opsim.send_sms("+79000000011", "Code 1111")
    assert (await opsim.wait_for_otp("+79000000011")).code == "1111"
    second = await opsim.send_sms("+79000000011", "Code 2222")
    otp = await opsim.wait_for_otp("+79000000011", after=first.id)
    assert (otp.code, otp.sms_id) == ("2222", second.id)
    [one, two] = await opsim.phone_messages("+79000000011")
    assert [(m.sms_id, m.text) for m in (one, two)] == [
        (first.id, "Code 1111"),
        (second.id, "Code 2222"),
    ]


async def test_wait_for_otp_gives_up_after_its_timeout(opsim: OperatorSim) -> None:
    await opsim.send_sms("+79000000013", "Code 3333")  # the phone is switched off
    with pytest.raises(TimeoutError):
        await opsim.wait_for_otp("+79000000013", timeout=30, step=10)
    assert await opsim.phone_messages("+79000000013") == []


async def test_wait_for_otp_long_polls_on_a_running_clock() -> None:
    async with OperatorSim(clock="scaled:600") as sim:
        await sim.send_sms("+79000000014", "Code 4444")  # two simulated minutes: 0.2 s
        otp = await asyncio.wait_for(sim.wait_for_otp("+79000000014", timeout=10), 15)
        assert otp.code == "4444"


async def test_record_sim_swap_is_seen_by_the_holder(opsim: OperatorSim) -> None:
    recorded = await opsim.record_sim_swap("+79000000011")
    assert recorded.operator_id == "alfa"
    resp = await opsim.session.post(
        "/operators/alfa/sim-swap/v1/check",
        json={"phoneNumber": "+79000000011", "maxAge": 1},
        headers=opsim.messenger_headers(),
    )
    assert await resp.json() == {"swapped": True}


def test_the_blocking_helpers_do_the_same(opsim_server: ThreadedOperatorSim) -> None:
    sms = opsim_server.send_sms("+79000000011", "Code 6060")
    otp = opsim_server.wait_for_otp("+79000000011")
    assert (otp.code, otp.sms_id) == ("6060", sms.id)
    assert [m.text for m in opsim_server.phone_messages("+79000000011")] == ["Code 6060"]
    assert opsim_server.record_sim_swap("+79000000011").msisdn == "+79000000011"
