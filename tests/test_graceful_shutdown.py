"""SIGTERM under load: accepted requests finish, new ones are refused, exit 0, nothing lost."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.test_cli import ADMIN, START_TIMEOUT, _json, start

BOUND = 30  # seconds: a bound for a slow CI machine, not a performance claim


async def _slow_receiver() -> tuple[TestServer, list[str]]:
    """A webhook endpoint that holds every delivery: the server is mid-POST at SIGTERM."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("webhook-id", ""))
        await asyncio.sleep(5)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = TestServer(app)
    await server.start_server()
    return server, seen


async def test_sigterm_under_load_finishes_accepted_requests_and_refuses_new_ones(
    tmp_path: Path,
) -> None:
    db = tmp_path / "term.db"
    receiver, seen = await _slow_receiver()
    server = await start(
        "--port", "0", "--db", str(db), "--clock", "manual", "--shutdown-timeout", "2",
        cwd=tmp_path,
    )  # fmt: skip
    host, port = server.url.removeprefix("http://").split(":")
    acked: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            created = await _json(
                await http.post(
                    f"{server.url}/admin/v1/messengers",
                    json={
                        "id": "hooked",
                        "name": "Hooked",
                        "webhook_url": str(receiver.make_url("/hook")),
                    },
                    headers=ADMIN,
                ),
                201,
            )
            key = {"Authorization": f"Bearer {created['api_key']}"}
            ir = f"{server.url}/operators/alfa/v1/identification-requests"

            # A request whose body is still arriving when SIGTERM comes: it was never
            # accepted (aiohttp stops reading at SIGTERM), but it keeps the server
            # draining until the shutdown timeout, so the refusal of new connections
            # can be observed while the accepted requests finish.
            body = b'{"msisdn": "+79000000001"}'
            head = (
                f"POST /operators/alfa/v1/identification-requests HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {created['api_key']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(head + body[:10])
            await writer.drain()
            # An accepted request held by Prefer: wait (answered in 5 simulated minutes).
            held = asyncio.create_task(
                http.post(ir, json={"msisdn": "+79000000009"}, headers={**key, "Prefer": "wait=60"})
            )

            async def client(n: int) -> None:
                for i in range(40):
                    try:
                        resp = await http.post(
                            ir, json={"msisdn": f"+7900000000{1 + (n + i) % 2}"}, headers=key
                        )
                    except aiohttp.ClientError:
                        return  # refused once the server stopped listening
                    assert resp.status == 201, await resp.text()
                    acked.append((await resp.json())["id"])

            load = [asyncio.create_task(client(n)) for n in range(4)]
            for _ in range(BOUND * 100):  # bounded poll: load running, a webhook in flight
                if len(acked) >= 20 and seen:
                    break
                await asyncio.sleep(0.01)
            server.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(BOUND):
                await asyncio.gather(*load)
                resp = await held
                assert resp.status == 201, await resp.text()
                pending = await resp.json()
                assert pending["status"] == "pending"
                acked.append(pending["id"])
                # New connections are refused while the server is still draining.
                refused = False
                while not refused:
                    try:
                        _r, w = await asyncio.open_connection(host, int(port))
                        w.close()
                        await asyncio.sleep(0.01)
                    except ConnectionRefusedError:
                        refused = True
                assert server.proc.returncode is None  # still draining the open request
                writer.write(body[10:])
                await writer.drain()
                answer = await reader.read()
                writer.close()
                assert answer == b""  # never accepted: cut off, nothing stored
                code = await server.proc.wait()
            assert code == 0
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
        await receiver.close()
    errors = await server.stderr()
    assert "Task was destroyed" not in errors
    assert "Traceback" not in errors
    assert '"event": "stopped"' in errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT id FROM identification_requests")}
    assert stored == set(acked)  # every 201 is stored, and nothing else

    # Restarted on the same database, every request is served and pending work resumes.
    again = await start("--port", "0", "--db", str(db), "--clock", "manual", cwd=tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            deliveries: Any = await _json(
                await http.get(f"{again.url}/admin/v1/deliveries", headers=ADMIN), 200
            )
            assert {d["event_id"] for d in deliveries["deliveries"]}
    finally:
        again.proc.terminate()
        async with asyncio.timeout(START_TIMEOUT):
            assert await again.proc.wait() == 0
