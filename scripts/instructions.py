"""Count the CPU instructions one identification takes in the service, for comparisons.

On a shared machine, time per request drifts by tens of percent within a minute; an
instruction count does not. This script runs `Identification.create` in-process (no
HTTP: the database unit, the rule screen, the event, the journal entry and the
announcement) under Valgrind's cachegrind, with every database batch run on the event
loop's thread so that the batches, and so the count, are the same on every run. It runs
20 and 60 waves of 50 concurrent identifications (half present, half absent numbers, on
a database of `--subscribers` seeded subscribers) and prints the difference per
identification: start-up and warm-up cancel out. String hashing, the ids' random bits
and the numbers are fixed, yet counts of the same code still differ by up to about 3%
from run to run (work that follows wall time, such as timers and the ids' time part,
comes out differently under Valgrind's slowdown): a smaller difference is noise.

`--baseline REV` also counts another revision (checked out into a temporary worktree and
imported from there with this environment's dependencies, so it must take the same
dependencies and have the same `Identification.create` and `Call`) and prints the ratio.
It measures the service only: aiohttp's part of a POST and the handler's are left out.

`--http` counts whole POSTs instead: the server in-process as `serve` builds it, on a
loopback port, and 50 keep-alive clients in the same process writing raw HTTP (their
part is included). `--log-cost` counts whole POSTs at `--log-level warning` and at the
default `info` (JSON lines to a file) and prints what the request line costs. Only
instructions in the process are counted, none in the kernel: system calls (a socket's,
a log file's writes) are left out.

Needs `valgrind` (Debian: `apt-get install valgrind`); takes a few minutes a revision.

    python scripts/instructions.py [--baseline REV] [--http] [--log-cost] [--subscribers 200000]
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
from typing import Literal, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
WAVE = 50
SHORT, LONG = 20, 60
KEY = "demo-messenger-key-not-secret"
IDENTIFICATION_PATH = "/operators/alfa/v1/identification-requests"


class Counted(NamedTuple):
    """What a count runs: the service alone, or whole POSTs through HTTP at a log level."""

    mode: Literal["service", "http"] = "service"
    log_level: str = "warning"


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
            path=IDENTIFICATION_PATH,
            messenger_id=messenger_id,
            received_at=int(time.time() * 1000),
            operator_id="alfa",
        )
        await identification.create(call, msisdn=rng.choice(numbers), idempotency_key=None)

    for _ in range(waves):
        await asyncio.gather(*(one() for _ in range(WAVE)))
    await runner.cleanup()


async def _http_workload(db: Path, numbers: list[str], waves: int, level: str, log: Path) -> None:
    """``waves`` POSTs on each of ``WAVE`` keep-alive connections to the server as `serve`
    runs it, at log level ``level`` (lines to ``log``)."""
    from aiohttp import web

    from operator_sim.logs import configure_logging
    from operator_sim.server import ProblemRunner, create_app
    from operator_sim.server.limits import server_options
    from operator_sim.settings import Settings

    settings = Settings(db=db, log_level=level)
    with log.open("w", encoding="utf-8") as stream:
        configure_logging(level, "json", stream)
        app = create_app(settings)
        runner = ProblemRunner(
            app, access_log=None, handle_signals=False, **server_options(settings)
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        rng = random.Random(1801)  # noqa: S311 (test data)
        head = (
            f"POST {IDENTIFICATION_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        ).encode()

        async def client() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(waves):
                body = b'{"msisdn": "%s"}' % rng.choice(numbers).encode()
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                answer = await reader.readuntil(b"\r\n\r\n")
                if not answer.startswith(b"HTTP/1.1 201"):
                    raise SystemExit(f"unexpected answer: {answer[:200]!r}")
                length = re.search(rb"(?i)\r\ncontent-length: (\d+)", answer)
                await reader.readexactly(int(length.group(1)) if length else 0)
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(client() for _ in range(WAVE)))
        await runner.cleanup()


def _harness(argv: list[str]) -> None:
    """The process cachegrind runs: one copy of the database, ``waves`` waves."""
    mode, db, numbers_path, waves, level, log = argv
    _inline_batches()
    from operator_sim import ids

    # The same ids in every run, so that rows land in the same places of the B-trees.
    ids._RANDOM.seed(1801)
    numbers = Path(numbers_path).read_text().split()
    if mode == "http":
        asyncio.run(_http_workload(Path(db), numbers, int(waves), level, Path(log)))
    else:
        asyncio.run(_workload(Path(db), numbers, int(waves)))


def _count(source: Path, base_db: Path, numbers: Path, work: Path, waves: int, how: Counted) -> int:
    """Instructions of a harness run of ``waves`` waves, importing operator_sim from
    ``source``."""
    db = work / f"run-{waves}.db"
    shutil.copy(base_db, db)
    out = work / f"cachegrind-{waves}.out"
    # The same string hashes in every run: dictionaries and sets lay out alike.
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={out}",
            sys.executable,
            __file__,
            "--harness",
            how.mode,
            str(db),
            str(numbers),
            str(waves),
            how.log_level,
            str(work / "server.log"),
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


def per_call(source: Path, base_db: Path, numbers: Path, work: Path, how: Counted) -> float:
    """Instructions per identification (or POST) of the operator_sim found at ``source``."""
    short = _count(source, base_db, numbers, work, SHORT, how)
    long = _count(source, base_db, numbers, work, LONG, how)
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
    if len(sys.argv) == 8 and sys.argv[1] == "--harness":
        _harness(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", action="store_true", help="count whole POSTs through HTTP")
    exclusive = parser.add_mutually_exclusive_group()
    exclusive.add_argument("--baseline", help="a git revision to count as well")
    exclusive.add_argument(
        "--log-cost",
        action="store_true",
        help="count whole POSTs at log levels warning and info, and print the difference",
    )
    parser.add_argument("--subscribers", type=int, default=200_000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: install it with `apt-get install valgrind`")
    with tempfile.TemporaryDirectory(prefix="opsim-instructions-") as tmp:
        work = Path(tmp)
        db, numbers = _prepare(work, args.subscribers)
        what = "POSTs" if args.http or args.log_cost else "identifications"
        print(f"{args.subscribers:,} subscribers; {LONG - SHORT} waves of {WAVE} {what} counted")
        if args.log_cost:
            quiet = per_call(ROOT, db, numbers, work, Counted("http", "warning"))
            print(f"log level warning  {quiet:12,.0f} instructions per POST")
            logged = per_call(ROOT, db, numbers, work, Counted("http", "info"))
            print(f"log level info     {logged:12,.0f} instructions per POST")
            print(
                f"the request line: {logged - quiet:,.0f} instructions, "
                f"{100 * (logged / quiet - 1):.1f}% of a POST at warning"
            )
            return
        how = Counted("http") if args.http else Counted()
        this = per_call(ROOT, db, numbers, work, how)
        unit = "POST" if args.http else "identification"
        print(f"this checkout  {this:12,.0f} instructions per {unit}")
        if args.baseline is None:
            return
        tree = work / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
            check=True,
            capture_output=True,
        )
        try:
            other = per_call(tree, db, numbers, work, how)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
        print(f"{args.baseline:<14} {other:12,.0f} instructions per {unit}")
        print(f"this checkout / {args.baseline}: {this / other:.3f}x")


if __name__ == "__main__":
    main()
