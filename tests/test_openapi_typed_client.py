"""A client generated from /openapi.json type-checks strictly and runs a messenger's flow.

openapi-python-client generates the client from the description a live server serves;
``tests/typed_client/flow.py`` (no casts, no hand-written types) is checked with
``mypy --strict`` against it, then run against the same server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

from tests.conftest import Sim

FLOW = Path(__file__).resolve().parent / "typed_client" / "flow.py"
BIN = Path(sys.executable).parent
BOUND = 300  # seconds: generation and a strict type check on a loaded machine


async def _run(*args: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    async with asyncio.timeout(BOUND):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_a_generated_client_type_checks_and_runs_the_flow(sim: Sim, tmp_path: Path) -> None:
    (tmp_path / "openapi.json").write_bytes(await (await sim.client.get("/openapi.json")).read())
    code, out = await _run(
        str(BIN / "openapi-python-client"),
        "generate",
        "--path",
        "openapi.json",
        "--meta",
        "none",
        "--output-path",
        "operator_sim_client",
        cwd=tmp_path,
    )
    assert code == 0, out
    assert "Warning" not in out, out  # nothing of the description was skipped
    shutil.copy(FLOW, tmp_path / "flow.py")
    package = tmp_path / "operator_sim_client"
    # The generator's own client.py template has typing slips of its own; everything
    # generated from the description (models, operations) and the flow is checked.
    code, out = await _run(
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--follow-imports=silent",
        "--cache-dir",
        str(tmp_path / ".mypy_cache"),
        "flow.py",
        str(package / "models"),
        str(package / "api"),
        str(package / "types.py"),
        str(package / "errors.py"),
        cwd=tmp_path,
    )
    assert code == 0, out
    assert "cast(" not in FLOW.read_text(encoding="utf-8")
    base = str(sim.client.make_url("")).rstrip("/")
    code, out = await _run(sys.executable, "flow.py", base, cwd=tmp_path)
    assert code == 0, out
    assert "typed flow: ok" in out
