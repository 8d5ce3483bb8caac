"""`operator-sim serve --unix PATH`: an identification over a Unix socket."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from operator_sim.settings import Settings
from tests.conftest import DEMO_KEY

START_TIMEOUT = 15  # a bound for a slow CI machine, not a performance claim
MESSENGER = {"Authorization": f"Bearer {DEMO_KEY}"}


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory: Unix socket paths are limited to about 100 bytes."""
    with tempfile.TemporaryDirectory(prefix="opsim-", dir="/tmp") as tmp:
        yield Path(tmp)


async def test_an_identification_completes_over_a_unix_socket(socket_dir: Path) -> None:
    sock = socket_dir / "sim.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "operator_sim",
        "serve",
        "--unix",
        str(sock),
        "--db",
        str(socket_dir / "sim.db"),
        "--clock",
        "manual",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "OPERATOR_SIM_LOG_FORMAT": "json"},
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            line = (await proc.stdout.readline()).decode().strip()
        assert line == f"listening on unix:{sock}"
        connector = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get("http://operator-sim/readyz") as resp:
                assert resp.status == 200
            async with http.post(
                "http://operator-sim/operators/alfa/v1/identification-requests",
                json={"msisdn": "+79000000001"},
                headers=MESSENGER,  # the demo key: a Unix socket is local
            ) as resp:
                assert resp.status == 201
                request = await resp.json()
            assert (request["status"], request["result"]) == ("answered", "present")
            async with http.post(
                "http://operator-sim/operators/alfa/v1/identification-codes",
                json={"request_id": request["id"], "code": "unix-code-0001"},
                headers=MESSENGER,
            ) as resp:
                assert resp.status == 201
                assert (await resp.json())["msisdn"] == "+79000000001"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT):
            code = await proc.wait()
    assert code == 0


def test_unix_setting_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPERATOR_SIM_UNIX", str(tmp_path / "x.sock"))
    monkeypatch.setenv("OPERATOR_SIM_JOURNAL_CAP", "7")
    monkeypatch.setenv("OPERATOR_SIM_SEED", "42")
    settings = Settings()
    assert settings.unix == tmp_path / "x.sock"
    assert (settings.journal_cap, settings.seed) == (7, 42)
    assert settings.loopback  # demo credentials are fine on a local socket
