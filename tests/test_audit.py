"""The dependency audit: the advisory floors hold for the installed and declared versions."""

from __future__ import annotations

import asyncio
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOUND = 60  # seconds: a bound for a slow CI machine, not a performance claim


async def _audit(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "audit.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(BOUND):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_installed_and_declared_aiohttp_carry_the_latest_security_fixes() -> None:
    code, out = await _audit("--pip-audit", str(ROOT / "no-such-pip-audit"))
    assert code == 0, out
    assert "advisory floors (aiohttp>=3.14.3): ok" in out
    assert "only the advisory floors apply" in out  # said loudly when pip-audit is missing


async def test_strict_fails_when_pip_audit_cannot_check() -> None:
    code, out = await _audit("--pip-audit", str(ROOT / "no-such-pip-audit"), "--strict")
    assert code == 2, out


def test_pyproject_requires_the_floor() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "aiohttp>=3.14.3" in dependencies
