"""Count the CPU instructions one identification takes in the service, for comparisons.

On a shared machine, time per request drifts by tens of percent within a minute; an
instruction count does not. This script runs `Identification.create` in-process (no
HTTP: the database unit, the rule screen, the event, the journal entry and the
announcement) under Valgrind's cachegrind, with every database batch run on the event
loop's thread so that the batches, and so the count, are the same on every run. It runs
20 and 60 waves of 50 concurrent identifications (half present, half absent numbers, on
a database of `--subscribers` seeded subscribers) and prints the difference per
identification: start-up and warm-up cancel out. Repeated runs agree within about 0.1%.

`--baseline REV` also counts another revision (checked out into a temporary worktree and
imported from there with this environment's dependencies, so it must take the same
dependencies and have the same `Identification.create` and `Call`) and prints the ratio.
It measures the service only: aiohttp's part of a POST and the handler's are left out.

Needs `valgrind` (Debian: `apt-get install valgrind`); takes a few minutes a revision.

    python scripts/instructions.py [--baseline REV] [--subscribers 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAVE = 50
SHORT, LONG = 20, 60
KEY = "demo-messenger-key-not-secret"


def _inline_batches() -> None:
    """Run aiosqlite's calls on the calling thread: one thread, the same batches each run."""
    import aiosqlite

    connect = aiosqlite.connect

    def same_thread_connect(*args: object, **kwargs: object) -> aiosqlite.Connection:
        kwargs["check_same_thread"] = False
        return connect(*args, **kwargs)  # type: ignore[arg-type]

    async def execute(_self: object, fn: object, *args: object, **kwargs: object) -> object:
        return fn(*args, **kwargs)  # type: ignore[operator]

    aiosqlite.connect = same_thread_connect
    aiosqlite.Connection._execute = execute  # type: ignore[method-assign,assignment]


async def _workload(db: Path, numbers: list[str], waves: int) -> None:
    from aiohttp import web

    from operator_sim.logs import configure_logging
    from operator_sim.server.app import create_app
    from operator_sim.server.calls import Call
    from operator_sim.server.services import SERVICES
    from operator_sim.settings import Settings

    configure_logging("warning", "json")
    app = create_app(Settings(db=db, log_level="warning"))
    runner = web.AppRunner(app)
    await runner.setup()
    with sqlite3.connect(db) as conn:
        messenger_id = conn.execute("SELECT id FROM messengers LIMIT 1").fetchone()[0]
    identification = app[SERVICES].identification
    rng = random.Random(1801)  # noqa: S311 (test data)

    async def one() -> None:
        call = Call(
            endpoint="identification.create",
            method="POST",
            path="/operators/alfa/v1/identification-requests",
            messenger_id=messenger_id,
            received_at=int(time.time() * 1000),
            operator_id="alfa",
        )
        await identification.create(call, msisdn=rng.choice(numbers), idempotency_key=None)

    for _ in range(waves):
        await asyncio.gather(*(one() for _ in range(WAVE)))
    await runner.cleanup()


def _harness(db: Path, numbers_path: Path, waves: int) -> None:
    """The process cachegrind runs: one copy of the database, ``waves`` waves."""
    _inline_batches()
    numbers = numbers_path.read_text().split()
    asyncio.run(_workload(db, numbers, waves))


def _count(source: Path, base_db: Path, numbers: Path, work: Path, waves: int) -> int:
    """Instructions of a harness run of ``waves`` waves, importing operator_sim from
    ``source``."""
    db = work / f"run-{waves}.db"
    shutil.copy(base_db, db)
    out = work / f"cachegrind-{waves}.out"
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={out}",
            sys.executable,
            __file__,
            "--harness",
            str(db),
            str(numbers),
            str(waves),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    for leftover in work.glob(f"run-{waves}.db*"):
        leftover.unlink()
    return int(found.group(1).replace(",", ""))


def per_identification(source: Path, base_db: Path, numbers: Path, work: Path) -> float:
    """Instructions per identification of the operator_sim found at ``source``."""
    short = _count(source, base_db, numbers, work, SHORT)
    long = _count(source, base_db, numbers, work, LONG)
    return (long - short) / ((LONG - SHORT) * WAVE)


def _prepare(work: Path, subscribers: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import numbers_file

    db = work / "base.db"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "operator_sim",
            "seed",
            "--db",
            str(db),
            "--count",
            f"{subscribers}",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    numbers = work / "numbers.txt"
    numbers_file(db, numbers)
    return db, numbers


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--harness":
        _harness(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a git revision to count as well")
    parser.add_argument("--subscribers", type=int, default=200_000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: install it with `apt-get install valgrind`")
    with tempfile.TemporaryDirectory(prefix="opsim-instructions-") as tmp:
        work = Path(tmp)
        db, numbers = _prepare(work, args.subscribers)
        print(f"{args.subscribers:,} subscribers; {LONG - SHORT} waves of {WAVE} counted")
        this = per_identification(ROOT, db, numbers, work)
        print(f"this checkout  {this:12,.0f} instructions per identification")
        if args.baseline is None:
            return
        tree = work / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
            check=True,
            capture_output=True,
        )
        try:
            other = per_identification(tree, db, numbers, work)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
        print(f"{args.baseline:<14} {other:12,.0f} instructions per identification")
        print(f"this checkout / {args.baseline}: {this / other:.3f}x")


if __name__ == "__main__":
    main()
