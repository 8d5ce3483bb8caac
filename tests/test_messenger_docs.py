"""Every example of docs/production.md runs, against a real server on loopback.

The convention: each fenced ``python`` block of the page follows a
``<!-- run: by tests/test_messenger_docs.py -->`` line (the docs harness's marker for a
block a named test runs), and runs on its own (a fresh directory, ``OPSIM`` set to the
server's root URL). The page may hold no other ``python`` block, so none escapes.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import Sim

PAGE = Path(__file__).resolve().parent.parent / "docs" / "production.md"
_MARKED = re.compile(
    r"^<!-- run: by tests/test_messenger_docs.py -->\n```python\n(.*?)^```$", re.S | re.M
)


def _examples() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    examples = _MARKED.findall(text)
    assert len(examples) == text.count("```python"), "a python block without its run marker"
    return examples


def test_the_page_has_examples_and_each_is_marked() -> None:
    assert len(_examples()) >= 5


@pytest.mark.parametrize("index", range(len(_examples())))
async def test_the_example_runs(sim: Sim, tmp_path: Path, index: int) -> None:
    code = _examples()[index]
    base = str(sim.client.make_url("")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "OPSIM": base},
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    said = out.decode() + err.decode()
    assert proc.returncode == 0, f"example {index} failed:\n{code}\n{said}"
    assert "9000000001" not in said  # numbers stay masked in what the examples print
