"""The crash loop, short: three SIGKILL rounds under load lose nothing and leak nothing.

`scripts/crash_loop.py` runs the long version (20 rounds and more); this runs the same
code with three rounds and fails on any lost request, code or event, any request off its
schedule, any corrupted database and any personal data in a response, webhook or log.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOUND = 120  # seconds: a bound for a slow CI machine, not a performance claim


async def test_three_sigkill_rounds_lose_nothing(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "crash_loop.py"),
        "--rounds",
        "3",
        "--seed",
        "7",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(BOUND):
        out, err = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    tally = text.splitlines()[-1]
    assert tally.startswith("crash loop: crash rounds 3 (SIGKILLs 3)"), tally
    acked = _number(r"requests acknowledged (\d+)", tally)
    assert acked > 0
    assert f"found {acked}, lost 0, off schedule 0" in tally
    events = _number(r"events (\d+), delivered", tally)
    assert events > 0
    assert f"events {events}, delivered {events} " in tally
    assert re.search(r"codes acknowledged \d+, lost 0;", tally)
    assert "integrity failures 0; PII hits 0" in tally


def _number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match is not None, text
    return int(match.group(1))
