"""Show the database file staying flat under load once `--retention` is reached.

Starts `operator-sim serve` on a fresh database with `--clock scaled:60` (a simulated
minute per real second) and `--retention PT10M`, drives it for 60 s with `wrk` (as fast
as the server goes) or at a steady `--rate` from this process (POSTs of identification
requests, each with its own Idempotency-Key: every POST stores a request, a key, an
event and a journal entry), and every few seconds samples the size of the
database file and of its -wal file, the rows of the pruned tables (through a read-only
connection) and the server's counters. Ten simulated minutes are ten real seconds: from
then on pruning removes as much as the load adds and SQLite reuses the freed pages, so
the file should stop growing: it holds what the last ten simulated minutes brought, so
it stays flat while the rate does (a steady `--rate` shows it best on a busy machine).
For contrast the same load then runs with `--retention 0` (skip it with --no-baseline).

The journal is capped separately (`--journal-cap`, 100,000 entries by default): this
script passes a smaller cap (5,000) so that the journal reaches it early and its
growth does not hide what retention does; pass `--journal-cap 100000` to see the default.

Without `--rate` it needs `wrk` (Debian: `apt-get install wrk`). The server binds 127.0.0.1.

    python scripts/retention_load.py [--duration 60] [--interval 5] [--connections 50]
                                     [--rate N] [--retention PT10M] [--scale 60]
                                     [--journal-cap 5000] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
from bench import KEY, WRK_DIR, Server, start

ADMIN = {"Authorization": "Bearer demo-admin-token-not-secret"}
IR_PATH = "/operators/alfa/v1/identification-requests"
MB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One look at the server and its files."""

    real_s: float
    sim_min: float
    db_bytes: int
    wal_bytes: int
    rows: dict[str, int]
    created: int
    pruned: dict[str, int]

    def line(self) -> str:
        """One readable line."""
        pruned = sum(self.pruned.values())
        return (
            f"{self.real_s:5.0f} s  sim +{self.sim_min:5.1f} min  created {self.created:>8,}  "
            f"db {self.db_bytes / MB:6.1f} MB  wal {self.wal_bytes / MB:5.1f} MB  "
            f"requests {self.rows['identification_requests']:>7,}  "
            f"events {self.rows['events']:>7,}  keys {self.rows['idempotency_keys']:>7,}  "
            f"journal {self.rows['journal']:>7,}  pruned {pruned:>9,}"
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _rows(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 (fixed names)
            for table in ("identification_requests", "events", "idempotency_keys", "journal")
        }
    finally:
        conn.close()


def _counter(text: str, name: str) -> dict[str, int]:
    """A counter's samples by their only label's value ('' without labels)."""
    found: dict[str, int] = {}
    for labels, value in re.findall(
        rf"^{name}_total(?:\{{[^=]*=\"([^\"]*)\"\}})? (\S+)$", text, re.M
    ):
        found[labels] = found.get(labels, 0) + int(float(value))
    return found


async def _sample(
    http: aiohttp.ClientSession, server: Server, db: Path, t0: float, sim0: datetime
) -> Sample:
    async with http.get(f"{server.url}/admin/v1/clock", headers=ADMIN) as resp:
        now = datetime.fromisoformat((await resp.json())["now"])
    async with http.get(f"{server.url}/metrics") as resp:
        metrics = await resp.text()
    rows = await asyncio.to_thread(_rows, db)
    return Sample(
        real_s=time.monotonic() - t0,
        sim_min=(now - sim0).total_seconds() / 60,
        db_bytes=_size(db),
        wal_bytes=_size(db.with_name(db.name + "-wal")),
        rows=rows,
        created=sum(_counter(metrics, "operator_sim_identification_requests").values()),
        pruned=_counter(metrics, "operator_sim_retention_pruned"),
    )


def _numbers(path: Path, n: int = 2000) -> None:
    """Numbers at the first operator without a subscriber: answered absent at once."""
    rng = random.Random(1801)  # noqa: S311 (test data)
    path.write_text("\n".join(f"+7950{rng.randrange(10_000_000):07d}" for _ in range(n)) + "\n")


@dataclass(frozen=True)
class Run:
    """What one load run showed."""

    samples: list[Sample]
    load: str
    """One line on the load itself: rate, latency, errors."""


async def _wrk(args: argparse.Namespace, url: str, numbers: Path) -> str:
    """wrk at full speed for ``args.duration`` seconds; its summary."""
    wrk = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-s",
        str(WRK_DIR / "post_identification_keyed.lua"),
        f"{url}{IR_PATH}",
        stdout=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "OPSIM_WRK_DIR": str(WRK_DIR),
            "OPSIM_KEY": KEY,
            "OPSIM_NUMBERS": str(numbers),
            "OPSIM_PATH": IR_PATH,
        },
    )
    report = (await wrk.communicate())[0].decode()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", report)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", report, re.M))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    socket = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", report))
    return (
        f"wrk: {float(rps.group(1)) if rps else 0:,.0f} POST/s, p50 {latency.get('50', '?')}, "
        f"p99 {latency.get('99', '?')}, non-2xx {int(non_2xx.group(1)) if non_2xx else 0}, "
        f"socket errors {socket}"
    )


async def _paced(args: argparse.Namespace, url: str, numbers: Path) -> str:
    """``args.rate`` POSTs a second from this process for ``args.duration`` seconds."""
    msisdns = (await asyncio.to_thread(numbers.read_text)).split()
    rng = random.Random(1801)  # noqa: S311 (test data)
    prefix = f"{rng.getrandbits(32):08x}"
    statuses: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    in_flight = asyncio.Semaphore(args.connections)
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:

        async def post(n: int) -> None:
            began = loop.time()
            try:
                async with http.post(
                    f"{url}{IR_PATH}",
                    json={"msisdn": msisdns[n % len(msisdns)]},
                    headers={"Idempotency-Key": f"{prefix}-{n}"},
                ) as resp:
                    await resp.read()
                    statuses[str(resp.status)] += 1
            except aiohttp.ClientError:
                statuses["error"] += 1
            finally:
                latencies.append(loop.time() - began)
                in_flight.release()

        start_at = loop.time()
        sent = 0
        while (elapsed := loop.time() - start_at) < args.duration:
            # After a stall, at most a tenth of a second's POSTs are made up for: a burst
            # would swell what the retention window holds.
            sent = max(sent, int((elapsed - 0.1) * args.rate))
            while sent < int(elapsed * args.rate):
                await in_flight.acquire()  # at most --connections in flight
                task = asyncio.create_task(post(sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.005)  # the pacing tick
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start_at
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    others = {k: v for k, v in statuses.items() if k != "201"}
    return (
        f"paced: {statuses['201'] / elapsed:,.0f} POST/s created (asked {args.rate:g}/s, "
        f"{sent - sum(statuses.values()):,} skipped after stalls), "
        f"p50 {cuts[49] * 1000:.2f}ms, p99 {cuts[98] * 1000:.2f}ms, other answers {others or 0}"
    )


async def _run(args: argparse.Namespace, work: Path, retention: str) -> Run:
    db = work / f"retention-{retention}.db"
    numbers = work / "numbers.txt"
    _numbers(numbers)
    server = start(
        [
            sys.executable,
            "-m",
            "operator_sim",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            "--log-level",
            "warning",
            "--clock",
            f"scaled:{args.scale:g}",
            "--retention",
            retention,
            "--journal-cap",
            str(args.journal_cap),
        ],
        work,
    )
    samples: list[Sample] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/admin/v1/clock", headers=ADMIN) as resp:
                sim0 = datetime.fromisoformat((await resp.json())["now"])
            t0 = time.monotonic()
            drive = _paced if args.rate else _wrk
            load = asyncio.ensure_future(drive(args, server.url, numbers))
            while not load.done():
                done, _ = await asyncio.wait({load}, timeout=args.interval)
                if not done:
                    samples.append(await _sample(http, server, db, t0, sim0))
                    print(samples[-1].line(), flush=True)
            summary = await load
            samples.append(await _sample(http, server, db, t0, sim0))
            print(samples[-1].line(), flush=True)
    finally:
        server.stop()
    return Run(samples, summary)


def _growth(samples: list[Sample], after_s: float) -> str:
    later = [s for s in samples if s.real_s >= after_s]
    if len(later) < 2:
        return "too few samples to judge growth (run longer)"
    first, last = later[0], later[-1]
    size = [s.db_bytes + s.wal_bytes for s in later]
    grown = (size[-1] - size[0]) / MB
    per_minute = grown / (last.real_s - first.real_s) * 60
    return (
        f"db + wal from {first.real_s:.0f} s to {last.real_s:.0f} s: "
        f"{size[0] / MB:.1f} MB -> {size[-1] / MB:.1f} MB ({grown:+.1f} MB, "
        f"{per_minute:+.1f} MB a minute; range {min(size) / MB:.1f}..{max(size) / MB:.1f} MB), "
        f"{last.created - first.created:,} requests created meanwhile"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--connections", type=int, default=50, help="connections")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="POSTs a second, paced from this process (default 0: wrk, as fast as it goes)",
    )
    parser.add_argument("--retention", default="PT10M", help="--retention of the server")
    parser.add_argument("--scale", type=float, default=60.0, help="simulated seconds per second")
    parser.add_argument("--journal-cap", type=int, default=5_000, help="--journal-cap")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without retention")
    args = parser.parse_args()

    from operator_sim.settings import Settings

    keep_s = Settings(retention=args.retention).retention.total_seconds()
    # The retention is reached after keep_s / scale real seconds; judge growth from twice that.
    settle_s = 2 * keep_s / args.scale
    runs = [args.retention] + ([] if args.no_baseline else ["0"])
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for retention in runs:
            print(
                f"\n--retention {retention} --clock scaled:{args.scale:g} "
                f"--journal-cap {args.journal_cap}: {args.duration} s of keyed POSTs "
                f"({f'{args.rate:g}/s' if args.rate else 'wrk'}, {args.connections} "
                f"connections), sampled every {args.interval:g} s"
            )
            results[retention] = await _run(args, Path(tmp), retention)
            print(results[retention].load)
        print()
        for retention, run in results.items():
            print(f"--retention {retention}: {_growth(run.samples, settle_s)}")
            if run.samples[-1].pruned:
                pruned = ", ".join(f"{t} {n:,}" for t, n in sorted(run.samples[-1].pruned.items()))
                print(f"  pruned: {pruned}")


if __name__ == "__main__":
    asyncio.run(main())
