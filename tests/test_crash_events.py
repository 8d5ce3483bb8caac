"""kill -9 with undelivered events: after a restart every event is still delivered."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Receiver
from tests.test_cli import ADMIN, _json, start


async def test_undelivered_events_survive_kill_9(
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    db = str(tmp_path / "events.db")
    args = ("--port", "0", "--db", db, "--clock", "manual")
    receiver.statuses = [500] * 100  # down until the restart
    server = await start(*args, cwd=tmp_path)
    async with aiohttp.ClientSession() as http:
        created = await _json(
            await http.post(
                f"{server.url}/admin/v1/messengers",
                json={"id": "hooked", "name": "Hooked", "webhook_url": receiver.url},
                headers=ADMIN,
            ),
            201,
        )
        key = {"Authorization": f"Bearer {created['api_key']}"}
        ir = f"{server.url}/operators/alfa/v1/identification-requests"
        answered: list[dict[str, Any]] = []
        for msisdn in ["+79000000001", "+79000000002", "+79000000009"]:
            answered.append(
                await _json(await http.post(ir, json={"msisdn": msisdn}, headers=key), 201)
            )
        code = await http.post(
            f"{server.url}/operators/alfa/v1/identification-codes",
            json={"request_id": answered[0]["id"], "code": "crash-code-01"},
            headers=key,
        )
        assert code.status == 201
        await _json(
            await http.post(
                f"{server.url}/admin/v1/subscribers/+79000000001/terminate", headers=ADMIN
            ),
            200,
        )
        await _json(
            await http.post(f"{server.url}/admin/v1/clock/advance", json={"by": 0}, headers=ADMIN),
            200,
        )
        events = await _json(
            await http.get(f"{server.url}/admin/v1/deliveries", headers=ADMIN), 200
        )
        expected = {d["event_id"] for d in events["deliveries"]}
        assert len(expected) == 3  # two answers now, one termination; ...09 answers later
        server.proc.send_signal(signal.SIGKILL)
        await server.proc.wait()

        receiver.statuses = []  # the receiver recovers
        server = await start(*args, cwd=tmp_path)
        try:
            await _json(
                await http.post(
                    f"{server.url}/admin/v1/clock/advance", json={"by": 600}, headers=ADMIN
                ),
                200,
            )
            after = await _json(
                await http.get(f"{server.url}/admin/v1/deliveries", headers=ADMIN), 200
            )
        finally:
            server.proc.terminate()
            assert await server.proc.wait() == 0
    states = {d["event_id"]: d["webhook"]["state"] for d in after["deliveries"]}
    assert len(states) == 4  # the 5-minute answer fired after the restart
    assert set(states.values()) == {"delivered"}
    assert expected <= set(states)
    delivered_ids = [h["webhook-id"] for h, _ in receiver.received]
    assert set(delivered_ids) == set(states)  # every event at least once, same ids
