"""The README's curl walk-through runs against a live server and does what it says."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import Sim

README = Path(__file__).resolve().parent.parent / "README.md"


def _walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- walkthrough:start -->\s*```sh\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S
    )
    assert block is not None, "README lost its walk-through markers"
    return block.group(1)


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n# [^\n]*\n([^\n]*)\n```", text)
    assert commands[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/operator-sim serve",
        "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest",
    ]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_walkthrough_identifies_and_registers_a_code(sim: Sim, tmp_path: Path) -> None:
    base = str(sim.client.make_url("")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        _walkthrough(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OPSIM": base},
        cwd=tmp_path,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(x) for x in re.findall(r"\{.*?\}(?=\{|\n|$)", out.decode())]
    assert lines[0] == {"msisdn": "+79000000001", "operator_id": "alfa", "ported": False}
    assert (lines[1]["status"], lines[1]["result"]) == ("answered", "present")
    assert lines[2]["code"] == "user-42-7f3a9c"
    assert lines[2]["request_id"] == lines[1]["id"]
