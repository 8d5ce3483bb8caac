"""Restarting on the same database: the clock, credentials and policies that survive it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from operator_sim.server import create_app
from operator_sim.settings import Settings
from tests.conftest import DEMO_KEY, AiohttpClient, Sim


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _start(aiohttp_client: AiohttpClient, db: Path, **settings: object) -> Sim:
    return Sim(await aiohttp_client(create_app(Settings(db=db, **settings))), db)  # type: ignore[arg-type]


async def test_new_mode_at_start_continues_from_the_stored_time(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    db = tmp_path / "clock.db"
    first = await _start(aiohttp_client, db, clock="manual")
    ahead = await first.advance(3 * 24 * 3600)
    await first.client.close()

    second = await _start(aiohttp_client, db, clock="real")
    clock = await second.admin_ok("GET", "/clock")
    assert clock["mode"] == "real"
    assert _ts(clock["now"]) >= _ts(ahead["now"])  # never backwards to wall time
    assert _ts(clock["now"]) > datetime.now(UTC) + timedelta(days=2)


async def test_registered_messengers_survive_a_restart(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    db = tmp_path / "keys.db"
    first = await _start(aiohttp_client, db, clock="manual")
    created = await first.new_messenger("acme")
    await first.client.close()
    second = await _start(aiohttp_client, db, clock="manual")
    assert (await second.identify("+79000000001", key=created["api_key"])).status == 201


async def test_demo_messenger_key_is_refused_when_not_on_loopback(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    sim = await _start(
        aiohttp_client,
        tmp_path / "public.db",
        clock="manual",
        host="0.0.0.0",  # noqa: S104 (only the policy is tested; the test server binds loopback)
        admin_token=SecretStr("a-real-admin-token-123"),
    )
    resp = await sim.identify("+79000000001", key=DEMO_KEY)
    assert resp.status == 401
    assert "loopback" in (await resp.json())["detail"]
    demo_admin = await sim.client.get(
        "/admin/v1/clock", headers=sim.auth("demo-admin-token-not-secret")
    )
    assert demo_admin.status == 401
    real_admin = await sim.client.get("/admin/v1/clock", headers=sim.auth("a-real-admin-token-123"))
    assert real_admin.status == 200
