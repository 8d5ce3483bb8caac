"""The messenger guide's examples (docs/messenger.md) run; `operator-sim demo` passes."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from operator_sim.server.webhooks import signed_headers
from tests.conftest import DEMO_KEY, Sim

GUIDE = Path(__file__).resolve().parent.parent / "docs/messenger.md"
DEMO_SECRET = "whsec_ZGVtby13ZWJob29rLXNlY3JldC1ub3Qtc2VjcmV0ISE="


def _examples() -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    section = re.search(r"<!-- messenger:start -->(.*?)<!-- messenger:end -->", text, re.S)
    assert section is not None, "docs/messenger.md lost its messenger markers"
    return re.findall(r"```python\n(.*?)```", section.group(1), re.S)


async def _python(code: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, **env},
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_guide_embedding_example_identifies_and_refuses(sim: Sim, tmp_path: Path) -> None:
    base = str(sim.client.make_url("")).rstrip("/")
    status, out, err = await _python(_examples()[0], tmp_path, {"OPSIM": base})
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("True present alfa ir_")
    assert lines[1] == "False absent"
    assert (tmp_path / "messenger.db").exists()


async def test_guide_webhook_example_mounts_a_verifying_receiver(
    sim: Sim, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(_examples()[1], namespace)  # noqa: S102 (our own guide)
    app = namespace["build_app"](str(sim.client.make_url("")), DEMO_KEY, DEMO_SECRET)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        body = (
            '{"id":"evt_readme","type":"subscriber.contract_terminated","operator_id":"alfa",'
            '"occurred_at":"2026-03-01T12:00:00.000Z","deliver_by":"2026-03-02T12:00:00.000Z",'
            '"data":{"msisdn":"+79000000001","code":"some-code-1234"}}'
        )
        url = str(server.make_url("/hooks/operator-sim/"))
        good = signed_headers(
            Webhook(DEMO_SECRET), event_id="evt_readme", body=body, sent_at=datetime.now(UTC)
        )
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=body, headers=good) as resp:
                assert resp.status == 204
            forged = {**good, "webhook-signature": "v1,AAAA"}
            async with session.post(url, data=body, headers=forged) as resp:
                assert resp.status == 401
            async with session.post(
                str(server.make_url("/messages")), headers={"X-User-Id": "nobody"}
            ) as resp:
                assert resp.status == 403
    finally:
        await server.close()


async def test_demo_command_passes_every_branch_in_plain_text(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "operator_sim",
        "demo",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert "\033[" not in text  # no colour when stdout is not a terminal
    assert "FAIL" not in text
    for branch in (
        "possession",
        "present",
        "SMS undelivered",
        "SMS phone off",
        "SMS blocked",
        "SMS throttled",
        "SMS report lost",
        "wrong code",
        "too many attempts",
        "SIM swapped",
        "absent",
        "incomplete data",
        "timeout",
        "late answer",
        "503 twice",
        "429 once",
        "termination: suspended",
        "porting: new operator",
    ):
        assert re.search(rf"^  PASS  {re.escape(branch)} ", text, re.M), branch
    assert re.search(r"all \d+ checks passed", text)


async def test_demo_exits_non_zero_when_a_branch_misbehaves(tmp_path: Path) -> None:
    # One branch whose expectation is wrong on purpose: the number answers absent.
    driver = (
        "import sys\n"
        "from operator_sim import demo\n"
        "from operator_sim.messenger import Reason\n"
        "async def wrong(self):\n"
        "    await self.identify('wrong', 'zed', '+79000000002', Reason.PRESENT)\n"
        "demo._Tour.branches = lambda self: [lambda: wrong(self), self.present]\n"
        "sys.exit(demo.run_demo())\n"
    )
    status, out, err = await _python(driver, tmp_path, {})
    assert status == 1, out + err
    assert re.search(r"^  FAIL  wrong ", out, re.M)
    assert re.search(r"^  PASS  present ", out, re.M)
    assert "1 of 3 checks FAILED" in out  # present opens with its possession check
