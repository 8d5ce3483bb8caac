"""The `operator-sim serve` process: address line, readiness, kill -9 recovery, SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ADMIN_TOKEN, DEMO_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MESSENGER = {"Authorization": f"Bearer {DEMO_KEY}"}
START_TIMEOUT = 15  # a bound for a slow CI machine, not a performance claim


class Proc:
    """A server process and its base URL."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()


async def start(*args: str, cwd: Path) -> Proc:
    """Start `python -m operator_sim serve ARGS` and wait for its address line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "operator_sim",
        "serve",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OPERATOR_SIM_LOG_FORMAT": "json"},
    )
    assert proc.stdout is not None
    async with asyncio.timeout(START_TIMEOUT):
        line = (await proc.stdout.readline()).decode().strip()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return Proc(proc, line.removeprefix("listening on "))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _json(resp: aiohttp.ClientResponse, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_serve_port_zero_prints_address_and_is_ready(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = await start("--port", "0", "--db", str(tmp_path / "a.db"), cwd=tmp_path)
    try:
        body = await _json(await http.get(f"{server.url}/readyz"), 200)
        assert body == {"status": "ready"}
        health = await _json(await http.get(f"{server.url}/healthz"), 200)
        assert health == {"status": "ok"}
    finally:
        server.proc.terminate()
        assert await server.proc.wait() == 0


async def test_default_db_is_created_in_the_working_directory(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = await start("--port", "0", cwd=tmp_path)
    server.proc.terminate()
    assert await server.proc.wait() == 0
    assert (tmp_path / "operator-sim.db").exists()


async def test_sigkill_then_restart_keeps_every_request_and_its_schedule(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    db = str(tmp_path / "crash.db")
    args = ("--port", "0", "--db", db, "--clock", "manual")
    server = await start(*args, cwd=tmp_path)
    ir = f"{server.url}/operators/alfa/v1/identification-requests"
    made: dict[str, dict[str, Any]] = {}
    for msisdn in ["+79000000001", "+79000000005", "+79000000006", "+79000000009"]:
        made[msisdn] = await _json(
            await http.post(ir, json={"msisdn": msisdn}, headers=MESSENGER), 201
        )
    await _json(
        await http.post(f"{server.url}/admin/v1/clock/advance", json={"by": 60}, headers=ADMIN), 200
    )
    before_kill = _ts(
        (await _json(await http.get(f"{server.url}/admin/v1/clock", headers=ADMIN), 200))["now"]
    )
    server.proc.send_signal(signal.SIGKILL)
    await server.proc.wait()

    server = await start(*args, cwd=tmp_path)
    try:
        ir = f"{server.url}/operators/alfa/v1/identification-requests"
        clock = await _json(await http.get(f"{server.url}/admin/v1/clock", headers=ADMIN), 200)
        assert _ts(clock["now"]) == before_kill  # a manual clock resumes where it stood
        for msisdn, created in made.items():
            got = await _json(await http.get(f"{ir}/{created['id']}", headers=MESSENGER), 200)
            assert got["id"] == created["id"]
            assert got["msisdn"] == msisdn
            assert got["status"] == ("answered" if msisdn == "+79000000001" else "pending")

        async def advance(seconds: int) -> None:
            await _json(
                await http.post(
                    f"{server.url}/admin/v1/clock/advance", json={"by": seconds}, headers=ADMIN
                ),
                200,
            )

        async def state(msisdn: str) -> dict[str, Any]:
            result: dict[str, Any] = await _json(
                await http.get(f"{ir}/{made[msisdn]['id']}", headers=MESSENGER), 200
            )
            return result

        await advance(240)  # five minutes after receipt
        slow = await state("+79000000009")
        assert (slow["status"], slow["result"]) == ("answered", "present")
        assert _ts(slow["answered_at"]) - _ts(slow["received_at"]) == timedelta(minutes=5)
        await advance(15 * 60)  # twenty minutes
        assert (await state("+79000000005"))["status"] == "expired"
        assert (await state("+79000000006"))["status"] == "expired"
        await advance(5 * 60)  # twenty-five minutes
        late = await state("+79000000006")
        assert late["status"] == "answered"
        assert _ts(late["answered_at"]) - _ts(late["received_at"]) == timedelta(minutes=25)
    finally:
        server.proc.terminate()
        assert await server.proc.wait() == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_sigterm_releases_long_polls_and_exits_zero(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = await start(
        "--port", "0", "--db", str(tmp_path / "t.db"), "--clock", "manual", cwd=tmp_path
    )
    ir = f"{server.url}/operators/alfa/v1/identification-requests"
    held = asyncio.create_task(
        http.post(ir, json={"msisdn": "+79000000005"}, headers={**MESSENGER, "Prefer": "wait=60"})
    )
    for _ in range(500):  # bounded poll until the request is in the journal
        journal = await _json(await http.get(f"{server.url}/admin/v1/requests", headers=ADMIN), 200)
        if journal["requests"]:
            break
        await asyncio.sleep(0.01)
    server.proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(START_TIMEOUT):
        resp = await held
        assert resp.status == 201
        assert (await resp.json())["status"] == "pending"
        assert await server.proc.wait() == 0
    errors = await server.stderr()
    assert "Task was destroyed" not in errors
    assert "Traceback" not in errors
    assert '"event": "stopped"' in errors


async def _run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "operator_sim",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(START_TIMEOUT):
        _out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_bad_clock_option_is_refused(tmp_path: Path) -> None:
    code, err = await _run_cli("serve", "--clock", "warp", "--port", "0", cwd=tmp_path)
    assert code == 2
    assert "clock 'warp'" in err


async def test_broken_fixture_names_file_field_and_problem(tmp_path: Path) -> None:
    fixture = tmp_path / "broken.toml"
    fixture.write_text(
        'name = "broken"\ndemo_admin_token = "long-enough-token"\n'
        '[[operators]]\nid = "x"\nname = "X"\nranges = [{ from = "+79000000000", to = "8" }]\n'
    )
    code, err = await _run_cli(
        "serve",
        "--fixture",
        str(fixture),
        "--port",
        "0",
        "--db",
        str(tmp_path / "f.db"),
        cwd=tmp_path,
    )
    assert code == 2
    assert f"{fixture}: operators[0].ranges[0].to: " in err
    assert not (tmp_path / "f.db").exists()  # rejected before anything was written


async def test_demo_credentials_are_refused_off_loopback(tmp_path: Path) -> None:
    env = {"OPERATOR_SIM_ADMIN_TOKEN": ""}
    everywhere = "0.0.0.0"  # noqa: S104 (the refusal is what is tested; nothing binds)
    code, err = await _run_cli(
        "serve",
        "--host",
        everywhere,
        "--port",
        "0",
        "--db",
        str(tmp_path / "d.db"),
        cwd=tmp_path,
        env=env,
    )
    assert code == 2
    assert "not loopback" in err


async def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    server = await start("--port", "0", "--db", str(db), cwd=tmp_path)
    server.proc.terminate()
    await server.proc.wait()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    code, err = await _run_cli("serve", "--port", "0", "--db", str(db), cwd=tmp_path)
    assert code == 2
    assert "schema version 99" in err


def _commands() -> list[str]:
    """Every subcommand the parser knows, so a new one is covered without editing this."""
    from operator_sim.cli import _parser

    for action in _parser()._actions:
        if action.dest == "command" and action.choices is not None:
            return sorted(action.choices)
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("command", ["", *_commands()])
async def test_help_of_every_command_works(tmp_path: Path, command: str) -> None:
    code, err = await _run_cli(*([command] if command else []), "--help", cwd=tmp_path)
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "token",
    ["short", "demo-admin-token-not-secret"],
    ids=["one-word", "the-demo-token"],
)
async def test_weak_admin_tokens_are_refused_off_loopback(tmp_path: Path, token: str) -> None:
    everywhere = "0.0.0.0"  # noqa: S104 (the refusal is what is tested; nothing binds)
    code, err = await _run_cli(
        "serve",
        "--host",
        everywhere,
        "--port",
        "0",
        "--db",
        str(tmp_path / "w.db"),
        cwd=tmp_path,
        env={"OPERATOR_SIM_ADMIN_TOKEN": token},
    )
    assert code == 2
    assert "at least 16 characters" in err
    assert not (tmp_path / "w.db").exists()


async def test_a_second_server_on_one_database_refuses_and_names_the_first(
    tmp_path: Path,
) -> None:
    db = tmp_path / "one.db"
    first = await start("--port", "0", "--db", str(db), cwd=tmp_path)
    try:
        code, err = await _run_cli(
            "serve", "--port", "0", "--db", str(db), "--clock", "manual", cwd=tmp_path
        )
        assert code == 2
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err  # one line, no traceback
        assert f"pid {first.proc.pid}" in lines[0]
        assert "another operator-sim" in lines[0]
        # The first one still serves, on its own clock.
        async with aiohttp.ClientSession() as session:
            clock = await _json(
                await session.get(f"{first.url}/admin/v1/clock", headers=ADMIN), 200
            )
        assert clock["mode"] == "real"
    finally:
        first.proc.kill()
        await first.proc.wait()
    # kill -9 released the lock: the next start is not blocked.
    again = await start("--port", "0", "--db", str(db), cwd=tmp_path)
    again.proc.terminate()
    assert await again.proc.wait() == 0
